"""Measuring a model: metrics, calibration, evaluation of labelled folders, and by source (the locked test split, leave-one-source-out)."""
