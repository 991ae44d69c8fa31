"""Label cleaning (``TrainConfig.clean_noisy_sources``) before the real training.

A first-pass model that never saw the noisy sources scores their films, and the ones it calls
normal are dropped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from covidgui.core.analysis.batch import predict_files
from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.errors import ImageLoadError
from covidgui.core.training.fit_loop import ProgressListener, fit_classifier
from covidgui.core.training.recipe import TrainConfig, source_counts


def _normal_class(classes: list[str]) -> str | None:
    return next((c for c in classes if c.lower() == "normal"), None)


def clean_noisy_labels(train_files: LabelledFiles, val_files: LabelledFiles, config: TrainConfig,
                       listener: ProgressListener | None = None) -> tuple[LabelledFiles, dict]:
    """(the training files without the noisy sources' films that look normal, what was done).

    A first-pass model of the same recipe (cleaning off; ``config.clean_epochs`` epochs, 0: as many
    as ``config.epochs``) trains on every training file outside ``config.noisy_sources`` and
    calibrates on the validation files outside them (so it never saw the noisy sources: its scores
    of their films are out of sample), on the classes those files still hold. It scores the noisy
    sources' training films, and those whose calibrated probability of the Normal class is
    >= ``config.clean_threshold`` are dropped. Nothing is dropped (``skipped`` says why) when no
    noisy source is among the training files, when there is no Normal class, or when fewer than two
    classes (or Normal) remain without the noisy sources. Unreadable films are kept (training
    gives them weight 0 anyway). Film names of dropped files are listed per source.
    """
    names = [n.strip() for n in config.noisy_sources.split(",") if n.strip()]
    groups = np.array(train_files.group_names())
    noisy = np.isin(groups, names)
    info = {"sources": names, "threshold": config.clean_threshold,
            "first_pass_epochs": config.clean_epochs or config.epochs,
            "scored": {}, "dropped": {}, "dropped_files": {}}
    normal = _normal_class(train_files.classes)
    first_classes = [c for i, c in enumerate(train_files.classes)
                     if any(lab == i and not n for lab, n in zip(train_files.labels, noisy))]
    if not noisy.any():
        return train_files, {**info, "skipped": "no noisy source among the training files"}
    if normal is None or normal not in first_classes or len(first_classes) < 2:
        return train_files, {**info, "skipped": "without the noisy sources there is no Normal class "
                                                "or fewer than two classes to learn"}
    first_train = train_files.subset(~noisy, first_classes)
    val_noisy = np.isin(val_files.group_names(), names)
    val_lower = [c.lower() for c in first_classes]
    val_keep = [not n and val_files.classes[lab].lower() in val_lower
                for lab, n in zip(val_files.labels, val_noisy)]
    first_val = val_files.subset(val_keep, [c for c in val_files.classes if c.lower() in val_lower])
    to_score = train_files.subset(noisy)
    info["first_pass_classes"] = first_classes
    info["first_pass_train_sources"] = source_counts(first_train)
    p_normal = first_pass_normal_probability(first_train, first_val, to_score, config, listener)
    drop = np.zeros(len(train_files), dtype=bool)
    drop[np.flatnonzero(noisy)] = p_normal >= config.clean_threshold  # NaN (unreadable) stays
    for name in names:
        in_source = groups == name
        if in_source.any():
            info["scored"][name] = int(in_source.sum())
            info["dropped"][name] = int((drop & in_source).sum())
            info["dropped_files"][name] = sorted(Path(p).name for p, d in zip(train_files.paths, drop & in_source)
                                                 if d)
    return train_files.subset(~drop), info


def first_pass_normal_probability(first_train: LabelledFiles, first_val: LabelledFiles,
                                  to_score: LabelledFiles, config: TrainConfig,
                                  listener: ProgressListener | None = None) -> np.ndarray:
    """(N,) calibrated Normal probability of each ``to_score`` file under a first-pass model trained
    by the fit loop (:func:`covidgui.core.training.fit_loop.fit_classifier`) on ``first_train`` (calibrated on ``first_val``); NaN for unreadable files."""
    first = replace(config, clean_noisy_sources=False, epochs=config.clean_epochs or config.epochs)
    result = fit_classifier(first_train, first_val, first, listener, name="first-pass", version="0")
    card = result.classifier.card
    normal = card.display_name(_normal_class(card.classes))
    out = np.full(len(to_score), np.nan)
    # Through the one batch engine, as every user of a model scores files.
    for i, scored in enumerate(predict_files(result.classifier, to_score.paths)):
        if not isinstance(scored, ImageLoadError):
            out[i] = scored.probabilities[normal]
    return out
