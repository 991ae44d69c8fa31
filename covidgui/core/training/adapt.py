"""Adapting a saved classifier to one site's own films, with an honest estimate of what it gained.

A hospital has a few dozen labelled films and a model trained elsewhere. :func:`adapt` fine-tunes
the model gently on them (:func:`adaptation_config`) and, when there is no separate validation
folder, first estimates the gain by k-fold cross-validation (:func:`cross_validate`): every film is
judged once, by a model adapted (and calibrated) on the other folds only, beside the starting
model's judgement of the same film. The final model is then adapted on all the films, and its
operating point (temperature, decision threshold, indeterminate band) is fitted on every film's
out-of-fold logits (:func:`out_of_fold_calibration`), not on the few films of one held-out part.

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
from covidgui.core.inference.classifier import Classifier, softmax
from covidgui.core.inference.gate import InputGate, gate_path
from covidgui.core.inference.views import card_views
from covidgui.core.models.model_files import bundled_model_path, file_digest, save_model
from covidgui.core.models.modelcard import FILE_HASHES_KEY, ModelCard, read_card
from covidgui.core.scoring.calibration import fit_indeterminate_band, fit_temperature_and_bias
from covidgui.core.scoring.comparison import score_files
from covidgui.core.scoring.metrics import auc_interval, classification_report
from covidgui.core.training.compiled_fit import CompiledFit
from covidgui.core.training.progress import RunEvent
from covidgui.core.training.recipe import TrainConfig
from covidgui.core.training.fit_loop import network_logits
from covidgui.core.training.train import ProgressListener, train

# Gentle fine-tuning: half a new network's learning rate, few epochs, every epoch kept (the
# calibration films are too few to choose an epoch on). Measured with SIIM as the new hospital
# (benchmarks/results/adapt-siim.md): against 8 epochs at 2e-4 with the layers before last_conv
# frozen, this gave AUC +0.02 at 25 films per class and +0.03 to +0.06 at 100-200 (both seeds where
# measured). In EfficientNet-Lite0 (v4's network) the layers that work at 1/2 to 1/8 of the film's
# side (its stem and first three stages: 2 % of its weights but most of a step's backward pass)
# keep the starting model's weights: that did as well or better at 25 and 50 films per class and
# cut the time by a third (benchmarks/results/adapt-siim-lite0.md). The compact CNN trains every
# layer (its freeze was not measured but at last_conv, which lost). The logits layer is first
# fitted to the films' embeddings ("head first", covidgui.core.training.head_first): from a
# SIIM-naive Lite0 start, +0.020 AUC at 25 films per class (4 of 4 draws better) and no loss at 50.
GENTLE_EPOCHS = 10
GENTLE_LEARNING_RATE = 5e-4
GENTLE_FREEZE_BEFORE = {"efficientnet_lite0": "scale:16"}  # the card's architecture name -> freeze_before
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
    ``gentle`` the gentle schedule (epochs, learning rate, no early stopping, which layers train,
    the head fitted first);
    the rest (augmentation, lung guidance, batch size, seed) from ``base``."""
    card = read_card(start_path)
    config = replace(base or TrainConfig(), input_size=card.input_size, start_from=str(start_path),
                     harmonise_storage=card.harmonises_storage,
                     lung_mask=bool(card.preprocessing.get("lung_mask")),
                     test_time_views=",".join(card_views(card)))
    if gentle:
        config = replace(config, epochs=GENTLE_EPOCHS, learning_rate=GENTLE_LEARNING_RATE, patience=0,
                         freeze_before=GENTLE_FREEZE_BEFORE.get(card.architecture.get("name"), ""), head_first=True)
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
    smallest = _smallest_class(labels)
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
    parts = round(1 / CALIBRATION_SHARE)
    smallest = _smallest_class(files.labels)
    if smallest < parts:  # fold_indices' own message would name folds the user never chose
        raise DatasetError(f"Adapting keeps {CALIBRATION_SHARE:.0%} of each class's films apart to refit the input "
                           f"gate, so every set it adapts on needs at least {parts} films of each class; one here has "
                           f"{smallest}. Add films, or use fewer cross-validation folds.")
    fit, held = fold_indices(files.labels, parts, seed, groups)[0]
    return _take(files, fit), _take(files, held)


def _smallest_class(labels) -> int:
    """How many films the smallest class of ``labels`` (N,) has; 0 when there are none."""
    labels = np.asarray(labels, dtype=int)
    return int(np.bincount(labels).min()) if labels.size else 0


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
        def on_batch(self, epoch, batch, batches):
            on_event(RunEvent("batch", epoch=epoch, epochs=epochs, batch=batch, batches=batches))

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
    the model is adapted on the other folds (a fifth of them held apart, as the final model holds a
    fifth of all films apart for its gate) and its raw logits on the fold are kept; temperature,
    threshold and band come from all out-of-fold logits (:func:`out_of_fold_calibration`). Returns {"starting": figures, "adapted": figures, "folds",
    "seconds", "seen_by_starting_model"} (see :func:`figures`; the last: films the starting model's
    card says it was trained or calibrated on, which flatter its figures) with the out-of-fold
    arrays of :data:`PER_FILM_KEYS` (see :func:`_side_by_side`), or None when ``stop`` was set
    (nothing is kept).
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
    adapted_logits: dict[str, tuple[np.ndarray, int]] = {}  # path -> (out-of-fold logits, fold)
    splits = fold_indices(files.labels, folds, seed, groups)
    compiled = CompiledFit()  # folds of as many films share one traced training step
    for k, (train_idx, test_idx) in enumerate(splits, 1):
        if stop.is_set():
            return None
        part, held = _take(files, train_idx), _take(files, test_idx)
        part_groups = None if groups is None else [groups[i] for i in train_idx]
        fit, calibration = split_for_calibration(part, seed + k, part_groups)
        on_event(RunEvent("phase", text=f"Fold {k} of {folds}: adapting on {len(part)} films, judging {len(held)}…",
                          part=k - 1, parts=folds + 1))  # the last part: adapt's final model
        # A fold's model is only scored: no inference graph, calibration or gate (measure=False).
        result = train(fit, calibration, config, _listener(on_event, stop, config.epochs), name=card.name,
                       version=f"{card.version}-fold{k}", display_names=card.display_names,
                       positive_class=card.positive_class, measure=False, reuse=compiled)
        if result.cancelled or stop.is_set():
            return None
        adapted_logits.update({p: (row, k) for p, row in network_logits(result.network, held, config).items()})
    # The films both models could read, each judged once by each.
    judged = [i for i, p in enumerate(map(str, files.paths)) if p in adapted_logits and p in starting_probs]
    labels = [files.labels[i] for i in judged]
    paths = [str(files.paths[i]) for i in judged]
    operating_point = out_of_fold_calibration(np.array([adapted_logits[p][0] for p in paths]), labels,
                                              [adapted_logits[p][1] for p in paths])
    seen = set().union(*card.seen_files().values())
    return {**_side_by_side(labels, paths, np.array([starting_probs[p] for p in paths]),
                            operating_point.pop("probs"), card),
            "folds": folds, "seconds": round(time.perf_counter() - started, 1), "operating_point": operating_point,
            "seen_by_starting_model": sum(h in seen for h in short_file_hashes(files)) if seen else 0}


def out_of_fold_calibration(logits, labels, fold_of) -> dict:
    """The adapted model's operating point from out-of-fold logits (N, C) of every film, with
    their labels (N,) and folds (N,).

    Temperature and logit offsets (the decision threshold, :func:`fit_temperature_and_bias`) and
    the indeterminate band are fitted on all N films, for the final model: with 25 films per class
    that is 50 films where a held-out fifth would give 10, and the threshold fitted on 10 swung
    sensitivity between 0.08 and 0.99 from one draw to the next (benchmarks/results/adapt-siim.md).
    The final model is fitted on a few more films than a fold's model (80 % of them against 64 %
    with 5 folds), by the same recipe, so their logits are on much the same scale.
    "probs" (N, C), for the out-of-fold figures, are cross-fitted: each fold's films calibrated by
    parameters fitted on the other folds' films, so no film sets the threshold that judges it.
    Returns {"temperature", "logit_bias", "indeterminate_band", "films", "probs"}.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels, fold_of = np.asarray(labels, dtype=int), np.asarray(fold_of)
    probs = np.empty_like(logits)
    for fold in np.unique(fold_of):
        inside = fold_of == fold
        temperature, bias = fit_temperature_and_bias(logits[~inside], labels[~inside])
        probs[inside] = softmax(logits[inside], temperature, bias)
    temperature, bias = fit_temperature_and_bias(logits, labels)
    band = fit_indeterminate_band(softmax(logits, temperature, bias), labels)
    return {"temperature": temperature, "logit_bias": bias, "indeterminate_band": list(band),
            "films": int(len(labels)), "probs": probs}


# The keys of a comparison that hold one row per film (not JSON-sized: left out of the CLI's JSON
# and of the model card).
PER_FILM_KEYS = ("labels", "paths", "starting_probs", "adapted_probs")


def _side_by_side(labels, paths, starting_probs: np.ndarray, adapted_probs: np.ndarray, card: ModelCard) -> dict:
    """The figures of both models on the same films, with the per-film arrays the charts need:
    "labels" (N,) int, "paths" (N,) str, "starting_probs" and "adapted_probs" (N, C) float, and
    "starting_model" (the starting model's name and version)."""
    positive = card.positive_class or card.classes[0]
    return {"starting": figures(labels, starting_probs, card.classes, positive),
            "adapted": figures(labels, adapted_probs, card.classes, positive),
            "labels": np.asarray(labels, dtype=int), "paths": list(paths),
            "starting_probs": np.asarray(starting_probs, dtype=float),
            "adapted_probs": np.asarray(adapted_probs, dtype=float),
            "starting_model": f"{card.name} v{card.version}"}


def comparison_scores(summary: dict) -> tuple:
    """(adapted, starting) :class:`~covidgui.core.scoring.comparison.Scores` of a comparison that
    :func:`cross_validate` or :func:`compare_on` returned, named for the charts:
    "Adapted (out of fold)" (or "Adapted" on a validation folder) and "Starting: <name> v<version>"."""
    from covidgui.core.scoring.comparison import Scores

    classes, positive = summary["starting"]["classes"], summary["starting"]["positive_class"]
    labels = np.asarray(summary["labels"], dtype=int)
    out = []
    for key, name in (("adapted", "Adapted (out of fold)" if summary.get("folds") else "Adapted"),
                      ("starting", f"Starting: {summary.get('starting_model', 'the starting model')}")):
        probs = np.asarray(summary[f"{key}_probs"], dtype=float)
        out.append(Scores(name, list(classes), positive, labels, probs,
                          classification_report(labels, probs, classes, positive)))
    return tuple(out)


def adaptation_verdict(summary: dict, starting: str = "the starting model") -> tuple[bool, str]:
    """(better, sentence) for a comparison with "starting" and "adapted" figures (see
    :func:`figures`): better only when the adapted model's AUC is higher beyond both 95 %
    intervals; the sentence says so, or plainly why the starting model (called ``starting``,
    e.g. "the active model") should be kept."""
    start, adapted = summary["starting"], summary["adapted"]
    a, s = adapted.get("auc"), start.get("auc")
    if a is None or s is None:
        return False, "The AUC cannot be measured on these films (one class only), so no gain can be shown."
    if a < s:
        return False, (f"Not better: the adapted model scored lower than the model it started from on these films "
                       f"(AUC {a:.3f} against {s:.3f}). Keep using {starting}.")
    if adapted["auc_ci95"][0] <= s or start["auc_ci95"][1] >= a:
        return False, (f"Not better: the adapted model is not clearly better than the model it started from "
                       f"(AUC {a:.3f} against {s:.3f}, within the 95 % intervals); on this many films the "
                       f"difference may be chance. Keep using {starting}.")
    return True, (f"Better: the adapted model did better than the model it started from on these films "
                  f"(AUC {a:.3f} against {s:.3f}, beyond the 95 % intervals).")


def compare_on(files: LabelledFiles, start_path: str | Path, adapted: Classifier) -> dict:
    """{"starting": figures, "adapted": figures} of the two models on the same ``files`` (a
    validation folder neither was fitted or calibrated on), on the films both could read, with the
    per-film arrays of :data:`PER_FILM_KEYS`."""
    start = Classifier.load(start_path)
    files = match_model_classes(files, start.card)
    both = [score_files(model, files) for model in (start, adapted)]
    rows = [dict(zip(map(str, _readable(files, scores)), scores.probs)) for scores in both]
    judged = [i for i, p in enumerate(map(str, files.paths)) if all(p in r for r in rows)]
    labels = [files.labels[i] for i in judged]
    paths = [str(files.paths[i]) for i in judged]
    return _side_by_side(labels, paths, *(np.array([r[p] for p in paths]) for r in rows), start.card)


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
            FILE_HASHES_KEY: {"train": short_file_hashes(fit), "calibration": short_file_hashes(calibration)}}
    held_out = f"{len(calibration)} of the {len(files)} films ({CALIBRATION_SHARE:.0%} of each class, held out of fitting)"
    # The starting model's gate was fitted on all its training X-rays, its thresholds on its
    # calibration films; the inputs are prepared as they were (adaptation_config) and the gentle
    # schedule moves the features little. Refitted on a few dozen films (thresholds on a fifth of
    # them), the gate of one adaptation on 25 films per class withheld 171 of SIIM's 881 locked-test
    # films, the starting gate 13; and it let 1 of 49 non-X-rays through, the starting gate none
    # (benchmarks/results/adapt-siim-lite0.md). So it is kept.
    start_gate = InputGate.load(gate_path(start_path)) if gate_path(start_path).is_file() else None
    gate = (f"input gate kept from {card.name} v{card.version}" if start_gate is not None
            else f"input gate refitted on {held_out}")
    point = summary.get("operating_point")
    if point:
        info["calibration"] = (f"temperature, decision threshold (logit offsets) and indeterminate band fitted on the "
                               f"out-of-fold logits of {point['films']} films ({folds} folds); {gate}; "
                               f"{held_out} give the training curves")
        info["adaptation"] = {k: summary[k] for k in ("folds", "starting", "adapted", "seen_by_starting_model",
                                                      "operating_point")}
    else:
        info["calibration"] = f"temperature and indeterminate band refitted on {held_out}; {gate}"
    on_event(RunEvent("phase", text=f"Adapting the final model on all {len(files)} films…",
                      part=folds, parts=folds + 1))
    result = train(fit, calibration, config, _listener(on_event, stop, config.epochs),
                   name=name or f"{card.name}-adapted", version="1", display_names=card.display_names,
                   positive_class=card.positive_class, training_info=info, gate=start_gate)
    if result.cancelled or stop.is_set():
        return None
    if start_gate is not None:
        result.classifier.card.metrics["gate"]["kept_from"] = f"{card.name} v{card.version}"
    if point:
        adapted = result.classifier.card
        adapted.temperature, adapted.logit_bias = point["temperature"], point["logit_bias"]
        adapted.indeterminate_band = tuple(point["indeterminate_band"])
        # The figures the About box and reports show: the out-of-fold ones, at this operating point,
        # not those of the held-out fifth at the temperature fitted there (replaced above).
        adapted.metrics["validation"] = {
            **classification_report(summary["labels"], summary["adapted_probs"], adapted.classes,
                                    adapted.positive_class),
            "dataset": f"the {point['films']} films, each judged by a model adapted without it ({folds} folds)"}
    path = str(save_model(result.classifier, save_to)) if save_to is not None else None
    return {**summary, "model": path, "classifier": result.classifier, "unreadable": result.unreadable,
            "history": result.history}


def run_adaptation(train_files: LabelledFiles, val_files: LabelledFiles | None, config: TrainConfig,
                   start_path: str | Path, on_event: Callable[[RunEvent], None], stop: threading.Event | None = None,
                   *, folds: int = 5, seed: int = 0, save_to: str | Path | None = None,
                   training_info: dict | None = None, starting_called: str = "the starting model",
                   data_root: str | Path | None = None):
    """The Training tab's adaptation: :func:`adapt` the model at ``start_path`` and compare it with
    that model, as a :class:`~covidgui.core.training.progress.TrainingOutcome`.

    With ``folds`` >= 2, ``train_files`` and ``val_files`` (when given) are pooled and every film is
    judged out of fold (:func:`cross_validate`); with ``folds`` 0 the model is adapted on
    ``train_files`` and both models are judged on ``val_files`` (:func:`compare_on`). ``config``
    carries the user's epochs, learning rate and patience; the rest of the recipe comes from the
    starting model (:func:`adaptation_config`). The outcome's ``new_scores`` are the adapted
    model's, ``active_scores`` the starting model's on the same films, ``adaptation`` the plain
    figures and :func:`adaptation_verdict` (naming the starting model ``starting_called``).
    data_root: the training folder; its ``patients.csv`` (:func:`patient_groups`) keeps a patient's
    films in one fold, as on the command line. None when ``stop`` was set: nothing was written.
    """
    from covidgui.core.scoring.comparison import roc_curves
    from covidgui.core.training.progress import TrainingOutcome

    started = time.perf_counter()
    card = read_card(start_path)
    config = replace(adaptation_config(start_path, config), epochs=config.epochs,
                     learning_rate=config.learning_rate, patience=config.patience)
    pooled = folds >= 2 or val_files is None or not len(val_files)
    files = train_files.extend(val_files) if pooled and val_files is not None else train_files
    files = match_model_classes(files, card)
    groups = patient_groups(data_root, files) if data_root else None
    outcome = adapt(files, start_path, config, folds=folds if pooled else 0, seed=seed, groups=groups,
                    on_event=on_event, stop=stop, save_to=save_to, name=f"{card.name}-adapted",
                    training_info=training_info)
    if outcome is None or (stop is not None and stop.is_set()):
        return None
    if not outcome.get("starting"):  # no cross-validation: both models judged on the validation films
        on_event(RunEvent.phase("Scoring the adapted and the starting model on the validation films…"))
        outcome.update(compare_on(val_files, start_path, outcome["classifier"]))
        evaluated_on = f"the {outcome['adapted']['n']} validation films, which neither model was fitted on"
    else:
        evaluated_on = f"the {outcome['adapted']['n']} films, each by a model adapted without it ({folds} folds)"
    adapted_scores, starting_scores = comparison_scores(outcome)
    better, verdict = adaptation_verdict(outcome, starting_called)
    seen = outcome.get("seen_by_starting_model", 0)
    if seen:
        verdict += (f" Note: the starting model was trained or calibrated on {seen} of these films, "
                    "which flatters its figures.")
    adaptation = {"starting": outcome["starting"], "adapted": outcome["adapted"],
                  "folds": outcome.get("folds", 0), "evaluated_on": evaluated_on,
                  "starting_model": outcome["starting_model"], "seen_by_starting_model": seen,
                  "better": better, "verdict": verdict}
    return TrainingOutcome(outcome["history"], outcome["unreadable"], time.perf_counter() - started,
                           new_scores=adapted_scores, new_curves=roc_curves(adapted_scores),
                           active_scores=starting_scores, active_curves=roc_curves(starting_scores),
                           model_path=outcome["model"], classifier=outcome["classifier"], adaptation=adaptation)
