"""Refit a classifier's calibration (temperature, logit offsets, indeterminate band) on chosen films.

A model trained on sources that each hold one class learns, among other things, how common each
class was in its training mix; its decision threshold then sits where that mix put it. Films from
one group of hospitals with both classes (siim-covid) are the one place where a threshold means
what it says, so the temperature and the per-class logit offsets are fitted on their calibration
part, and the indeterminate band on the whole calibration part with the new probabilities.
"""

from __future__ import annotations

import numpy as np

from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.errors import ImageLoadError
from covidgui.core.inference.classifier import Classifier
from covidgui.core.inference.preprocess import load_prepared
from covidgui.core.scoring.calibration import fit_indeterminate_band, fit_temperature_and_bias
from covidgui.core.scoring.metrics import expected_calibration_error


def logits_of(classifier: Classifier, files: LabelledFiles, batch: int = 64) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(logits (N, C), labels (N,) in the card's class order, groups (N,)) of the readable files,
    decoded and prepared as inference does."""
    card = classifier.card
    to_card = [card.classes.index(name) for name in files.classes]
    logits, labels, groups, inputs = [], [], [], []

    def flush():
        if inputs:
            logits.append(classifier.logits(np.stack(inputs)))
            inputs.clear()

    for path, label, group in zip(files.paths, files.labels, files.group_names()):
        try:
            _, prepared = load_prepared(path, classifier.input_size, harmonise=classifier.harmonises)
        except ImageLoadError:
            continue
        inputs.append(prepared.input)
        labels.append(to_card[label])
        groups.append(group)
        if len(inputs) == batch:
            flush()
    flush()
    return (np.concatenate(logits) if logits else np.zeros((0, len(card.classes))),
            np.asarray(labels, dtype=int), groups)


def recalibrate(classifier: Classifier, calibration: LabelledFiles, on_sources: list[str]) -> dict:
    """Fit the card's temperature and logit offsets on the calibration files of ``on_sources``,
    then its indeterminate band on every calibration file; returns what was fitted and the
    calibration figures before and after (ECE on the chosen films)."""
    if classifier.masks_lungs:  # its logits need the lung blanking that predict_inputs does
        raise ValueError("recalibrating a lung-fields-only model is not supported")
    logits, labels, groups = logits_of(classifier, calibration)
    chosen = np.isin(groups, on_sources)
    if len(set(labels[chosen].tolist())) < 2:
        raise ValueError(f"the calibration files of {on_sources} do not hold two classes")
    card = classifier.card
    before = expected_calibration_error(classifier.calibrated(logits[chosen]), labels[chosen])
    card.temperature, card.logit_bias = fit_temperature_and_bias(logits[chosen], labels[chosen])
    probs = classifier.calibrated(logits)
    card.indeterminate_band = fit_indeterminate_band(probs, labels)
    return {"fitted_on": list(on_sources), "n": int(chosen.sum()), "temperature": card.temperature,
            "logit_bias": card.logit_bias, "indeterminate_band": list(card.indeterminate_band),
            "ece_before": round(float(before), 4),
            "ece_after": round(float(expected_calibration_error(probs[chosen], labels[chosen])), 4)}
