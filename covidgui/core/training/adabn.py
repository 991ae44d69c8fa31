"""Adapting without labels: a model's BatchNorm statistics re-estimated on a site's own films.

Each BatchNorm layer normalises with the mean and variance it saw in training. A new hospital's
machines and processing shift those statistics; re-estimating them on the hospital's unlabelled
films ("AdaBN", Li et al. 2016, "Revisiting batch normalization for practical domain
adaptation") moves the model toward the new look without a single label. Every weight stays; the
temperature, band and input gate stay the starting model's (there are no labels to refit them).
Whether it helps is an empirical question: ``benchmarks/adapt.py`` measures it. Measured on SIIM
(benchmarks/results/adapt-siim.md) it moved the AUC by about 0.01 and the starting model's input
gate, whose feature statistics no longer match, withheld almost every film: so the app does not
offer it; it stays a benchmark arm.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from covidgui.core.errors import DatasetError, ImageLoadError
from covidgui.core.inference.classifier import Classifier
from covidgui.core.inference.preprocess import load_prepared
from covidgui.core.inference.runtime import load_keras
from covidgui.core.training.fit_loop import BATCH_NORM_BATCHES, recalibrate_batch_norm

BATCH = 32


def adapt_batch_norm(start_path: str | Path, paths) -> Classifier:
    """The model at ``start_path`` with its BatchNorm statistics re-estimated on the films
    ``paths`` (labels unused; unreadable files skipped). Raises DatasetError when none is readable."""
    start = Classifier.load(start_path)
    inputs = []
    for path in paths:
        try:
            inputs.append(load_prepared(path, start.input_size, harmonise=start.harmonises)[1].input)
        except ImageLoadError:
            continue
    if not inputs:
        raise DatasetError("None of the films for BatchNorm adaptation could be read.")
    network = load_keras(Path(start_path), "model to adapt")
    inputs = np.stack(inputs).astype(np.float32)[..., None]
    recalibrate_batch_norm(network, (inputs[i:i + BATCH] for i in range(0, len(inputs), BATCH)[:BATCH_NORM_BATCHES]))
    card = replace(start.card, version=f"{start.card.version}-adabn",
                   training={**start.card.training,
                             "batchnorm_adaptation": {"films": len(inputs), "from": str(start_path)}})
    return Classifier(network, card, gate=start.gate, lungs=start.lungs)
