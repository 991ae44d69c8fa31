"""Adapting a saved classifier to one site's own films, with an honest estimate of what it gained.

A hospital has a few dozen labelled films and a model trained elsewhere. :func:`adapt` fine-tunes
the model gently on them (:func:`adaptation_config`) and, when there is no separate validation
folder, first estimates the gain by k-fold cross-validation (:func:`cross_validate`): every film is
judged once, by a model adapted (and calibrated) on the other folds only, beside the starting
model's judgement of the same film. The final model is then adapted on all the films.

Plain Python around :func:`covidgui.core.training.train.train`; no Qt.
"""

from __future__ import annotations

import csv
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from covidgui.core.data.dataset import LabelledFiles, short_file_hashes
from covidgui.core.errors import DatasetError, ModelError
from covidgui.core.inference.classifier import HEATMAP_LAYER, Classifier
from covidgui.core.models.model_files import bundled_model_path, file_digest, save_model
from covidgui.core.models.modelcard import FILE_HASHES_KEY, ModelCard, read_card
from covidgui.core.scoring.comparison import score_files
from covidgui.core.scoring.metrics import auc_interval, classification_report
from covidgui.core.training.progress import RunEvent
from covidgui.core.training.recipe import TrainConfig
from covidgui.core.training.train import ProgressListener, train

# Gentle fine-tuning: a tenth of a new network's learning rate, few epochs, every epoch kept (the
# calibration films are too few to choose an epoch on), the early layers left as they were.
GENTLE_EPOCHS = 8
GENTLE_LEARNING_RATE = 2e-4
GENTLE_FREEZE_BEFORE = HEATMAP_LAYER
# Share of each class of a training part held out to refit temperature, band and gate.
CALIBRATION_SHARE = 0.2
# A CSV in the data folder, columns "file" (path below the folder, or a file name) and
# "patient": films of one patient then never sit on both sides of a fold.
PATIENTS_FILE = "patients.csv"


def resolve_start(spec: str | Path) -> Path:
    """The .keras file to start from: "active" (the model chosen in the app), "bundled", or a
    path. Raises ModelError naming the file when it or its card is missing."""
    from covidgui.core.models.registry import active_model_path

    text = str(spec)
    path = {"active": active_model_path, "bundled": bundled_model_path}.get(text.lower(), lambda: Path(text))()
    if not path.is_file():
        raise ModelError(f"The model to start from, {path}, does not exist.")
    read_card(path)  # raises ModelError naming the missing card
    return path


def adaptation_config(start_path: str | Path, base: TrainConfig | None = None,
                      gentle: bool = True) -> TrainConfig:
    """The recipe to adapt the model at ``start_path``: its input size and preprocessing flags
    (what it was trained to see must be what it keeps seeing), ``start_from`` set, and with
    ``gentle`` the gentle schedule (epochs, learning rate, no early stopping, the early layers
    frozen); the rest (augmentation, lung guidance, batch size, seed) from ``base``."""
    card = read_card(start_path)
    config = replace(base or TrainConfig(), input_size=card.input_size, start_from=str(start_path),
                     harmonise_storage=card.harmonises_storage,
                     lung_mask=bool(card.preprocessing.get("lung_mask")))
    if gentle:
        config = replace(config, epochs=GENTLE_EPOCHS, learning_rate=GENTLE_LEARNING_RATE, patience=0,
                         freeze_before=GENTLE_FREEZE_BEFORE)
    return config


def match_model_classes(files: LabelledFiles, card: ModelCard) -> LabelledFiles:
    """``files`` relabelled in the model's class order (names matched case-insensitively).
    Raises DatasetError when the folder's classes are not the model's."""
    lower = {c.lower(): c for c in card.classes}
    if sorted(c.lower() for c in files.classes) != sorted(lower):
        raise DatasetError(f"The model {card.name} knows {', '.join(card.classes)}; the folder has "
                           f"{', '.join(files.classes) or 'no classes'}. Adapting needs one subfolder per class "
                           f"of the model, named as its classes.")
    rename = {c: lower[c.lower()] for c in files.classes}
    return files.subset([True] * len(files), classes=list(card.classes), rename=rename)


def patient_groups(root: str | Path, files: LabelledFiles) -> list[str] | None:
    """Each file's patient from ``root/patients.csv`` (see PATIENTS_FILE), a file it does not
    list being a patient of its own; None when there is no such file (every film is then taken
    as its own patient). Raises DatasetError for a file without the two columns."""
    table = Path(root) / PATIENTS_FILE
    if not table.is_file():
        return None
    with open(table, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"file", "patient"} <= set(rows[0]):
        raise DatasetError(f"{table} needs the columns 'file' and 'patient'.")
    patient = {row["file"].strip(): row["patient"].strip() for row in rows}
    out = []
    for path in files.paths:
        relative = Path(path).relative_to(root).as_posix() if Path(path).is_relative_to(root) else Path(path).name
        out.append(patient.get(relative) or patient.get(Path(path).name) or f"file:{relative}")
    return out


def fold_indices(labels, folds: int, seed: int, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, test indices) of each of ``folds`` stratified folds, grouped when
    ``groups`` (one per film) is given. Raises DatasetError when a class has fewer films than folds."""
    labels = np.asarray(labels)
    smallest = int(np.bincount(labels).min()) if labels.size else 0
    if smallest < folds:
        raise DatasetError(f"Cross-validation with {folds} folds needs at least {folds} films of each class; "
                           f"the smallest class has {smallest}. Use fewer folds.")
    x = np.zeros(len(labels))
    if groups is not None:
        return list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, labels, groups))
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, labels))


def split_for_calibration(files: LabelledFiles, seed: int, groups=None) -> tuple[LabelledFiles, LabelledFiles]:
    """(fitted on, calibrated on): about CALIBRATION_SHARE of each class (whole patients when
    ``groups`` is given) held out, where temperature, indeterminate band and gate are refitted."""
    fit, held = fold_indices(files.labels, round(1 / CALIBRATION_SHARE), seed, groups)[0]
    return _take(files, fit), _take(files, held)


def _take(files: LabelledFiles, indices) -> LabelledFiles:
    keep = np.zeros(len(files), bool)
    keep[np.asarray(indices, int)] = True
    return files.subset(keep)


def figures(labels, probs, classes: list[str], positive: str) -> dict:
    """The headline figures of (N,) labels and (N, C) probabilities: n, auc, sensitivity,
    specificity, their 95 % intervals and the confusion matrix (rows: true, columns: called)."""
    report = classification_report(labels, probs, classes, positive)
    pos = classes.index(positive)
    n_pos = int((np.asarray(labels) == pos).sum())
    auc = report["auc"]
    return {"n": report["n"], "auc": auc,
            "auc_ci95": auc_interval(auc, n_pos, report["n"] - n_pos) if auc is not None else None,
            "sensitivity": report["sensitivity"], "sensitivity_ci95": report["per_class"][positive]["sensitivity_ci95"],
            "specificity": report["specificity"], "specificity_ci95": report["per_class"][positive]["specificity_ci95"],
            "classes": list(classes), "positive_class": positive, "confusion_matrix": report["confusion_matrix"]}


def _listener(on_event, stop: threading.Event, epochs: int) -> ProgressListener:
    class Listener(ProgressListener):
        def on_epoch(self, epoch, n_epochs, logs):
            on_event(RunEvent("epoch", epoch=epoch, epochs=epochs, logs={k: float(v) for k, v in logs.items()}))

        def should_stop(self):
            return stop.is_set()

    return Listener()


def cross_validate(files: LabelledFiles, start_path: str | Path, config: TrainConfig, folds: int = 5,
                   seed: int = 0, groups=None, on_event: Callable[[RunEvent], None] | None = None,
                   stop: threading.Event | None = None) -> dict | None:
    """Out-of-fold figures of the adapted model beside the starting model's on the same films.

    files: the site's films, in the starting model's classes (see :func:`match_model_classes`).
    For each of ``folds`` stratified folds (grouped by ``groups``, one id per film, e.g. a patient),
    the model is adapted on the other folds (temperature, band and gate refitted on a held-out part
    of *them*) and judges the fold. Returns {"starting": figures, "adapted": figures, "folds",
    "seconds", "seen_by_starting_model"} (see :func:`figures`; the last: films the starting model's
    card says it was trained or calibrated on, which flatter its figures), or None when ``stop``
    was set (nothing is kept).
    """
    on_event = on_event or (lambda event: None)
    stop = stop or threading.Event()
    started = time.perf_counter()
    start = Classifier.load(start_path)
    card = start.card
    files = match_model_classes(files, card)
    positive = card.positive_class or card.classes[0]
    config = replace(config, start_from=str(start_path))
    on_event(RunEvent.phase(f"Scoring {card.name} v{card.version} on the {len(files)} films…"))
    base = score_files(start, files)
    starting_probs = {str(p): row for p, row in zip(_readable(files, base), base.probs)}
    adapted_probs: dict[str, np.ndarray] = {}
    splits = fold_indices(files.labels, folds, seed, groups)
    for k, (train_idx, test_idx) in enumerate(splits, 1):
        if stop.is_set():
            return None
        part, held = _take(files, train_idx), _take(files, test_idx)
        part_groups = None if groups is None else [groups[i] for i in train_idx]
        fit, calibration = split_for_calibration(part, seed + k, part_groups)
        on_event(RunEvent.phase(f"Fold {k} of {folds}: adapting on {len(part)} films, judging {len(held)}…"))
        result = train(fit, calibration, config, _listener(on_event, stop, config.epochs), name=card.name,
                       version=f"{card.version}-fold{k}", display_names=card.display_names,
                       positive_class=card.positive_class)
        if result.cancelled or stop.is_set():
            return None
        scores = score_files(result.classifier, held)
        adapted_probs.update({str(p): row for p, row in zip(_readable(held, scores), scores.probs)})
    # The films both models could read, each judged once by each.
    judged = [i for i, p in enumerate(map(str, files.paths)) if p in adapted_probs and p in starting_probs]
    labels = [files.labels[i] for i in judged]
    paths = [str(files.paths[i]) for i in judged]
    seen = set().union(*card.seen_files().values())
    return {"starting": figures(labels, np.array([starting_probs[p] for p in paths]), card.classes, positive),
            "adapted": figures(labels, np.array([adapted_probs[p] for p in paths]), card.classes, positive),
            "folds": folds, "seconds": round(time.perf_counter() - started, 1),
            "seen_by_starting_model": sum(h in seen for h in short_file_hashes(files)) if seen else 0}


def compare_on(files: LabelledFiles, start_path: str | Path, adapted: Classifier) -> dict:
    """{"starting": figures, "adapted": figures} of the two models on the same ``files`` (a
    validation folder neither was fitted or calibrated on), on the films both could read."""
    start = Classifier.load(start_path)
    files = match_model_classes(files, start.card)
    positive = start.card.positive_class or start.card.classes[0]
    both = [score_files(model, files) for model in (start, adapted)]
    rows = [dict(zip(map(str, _readable(files, scores)), scores.probs)) for scores in both]
    judged = [i for i, p in enumerate(map(str, files.paths)) if all(p in r for r in rows)]
    labels = [files.labels[i] for i in judged]
    return {key: figures(labels, np.array([r[str(files.paths[i])] for i in judged]), start.card.classes, positive)
            for key, r in zip(("starting", "adapted"), rows)}


def _readable(files: LabelledFiles, scores) -> list:
    """The paths of ``files`` that ``scores`` holds a row for (unreadable ones are left out)."""
    return [p for p in files.paths if str(p) not in scores.unreadable]


def adapt(files: LabelledFiles, start_path: str | Path, config: TrainConfig, *, folds: int = 5, seed: int = 0,
          groups=None, on_event: Callable[[RunEvent], None] | None = None, stop: threading.Event | None = None,
          save_to: str | Path | None = None, name: str | None = None,
          training_info: dict | None = None) -> dict | None:
    """Cross-validate (``folds`` >= 2; 0: skip) and adapt the model at ``start_path`` on all of
    ``files``; save it to ``save_to`` when given. Returns the cross-validation dict (or {} without
    one) with "model" (the saved path or None) and "classifier", or None when ``stop`` was set,
    in which case nothing was written. Raises DatasetError or ModelError for unusable data or models.
    """
    on_event = on_event or (lambda event: None)
    stop = stop or threading.Event()
    card = read_card(start_path)
    files = match_model_classes(files, card)
    config = replace(config, start_from=str(start_path))
    summary = cross_validate(files, start_path, config, folds, seed, groups, on_event, stop) if folds else {}
    if summary is None or stop.is_set():
        return None
    fit, calibration = split_for_calibration(files, seed, groups)
    info = {**(training_info or {}),
            "started_from": {"name": card.name, "version": card.version, "path": str(start_path),
                             "sha256": file_digest(start_path)},
            "calibration": f"temperature, indeterminate band and input gate refitted on {len(calibration)} of the "
                           f"{len(files)} films ({CALIBRATION_SHARE:.0%} of each class, held out of fitting)",
            FILE_HASHES_KEY: {"train": short_file_hashes(fit), "calibration": short_file_hashes(calibration)}}
    if summary:
        info["adaptation"] = {k: summary[k] for k in ("folds", "starting", "adapted", "seen_by_starting_model")}
    on_event(RunEvent.phase(f"Adapting the final model on all {len(files)} films…"))
    result = train(fit, calibration, config, _listener(on_event, stop, config.epochs),
                   name=name or f"{card.name}-adapted", version="1", display_names=card.display_names,
                   positive_class=card.positive_class, training_info=info)
    if result.cancelled or stop.is_set():
        return None
    path = str(save_model(result.classifier, save_to)) if save_to is not None else None
    return {**summary, "model": path, "classifier": result.classifier, "unreadable": result.unreadable}
