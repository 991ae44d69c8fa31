"""Labelled images: class folders as clinicians keep them, their summary before training, the reference split."""
