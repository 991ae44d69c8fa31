"""Measuring a model: metrics, calibration, evaluation on labelled folders and by source."""
