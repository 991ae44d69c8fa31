"""Running a model on one image or a batch: preprocessing, classifier, input gate, lung fields."""
