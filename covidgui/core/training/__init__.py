"""Training a classifier (and the lung segmenter), and one training run as a job."""
