"""Scoring a classifier on a list of labelled files, so two models can be compared on the same data.

The training tab scores the newly trained model with :func:`score_files` on the validation files,
the active model with :func:`score_unseen` on those of them it was never fitted or calibrated on,
and draws :func:`roc_curves` from the probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from covidgui.core.analysis.batch import predict_files
from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.errors import DatasetError, ImageLoadError
from covidgui.core.scoring.evaluation import PARTS, seen_roles
from covidgui.core.scoring.metrics import classification_report


@dataclass
class Scores:
    """A classifier's calibrated probabilities on labelled files.

    labels: (N,) true class indices into ``classes`` (the classifier's classes);
    probs: (N, C) calibrated probabilities; report: :func:`classification_report` of them.
    """

    model: str
    classes: list[str]
    positive_class: str
    labels: np.ndarray
    probs: np.ndarray
    report: dict
    unreadable: dict[str, str] = field(default_factory=dict)
    # Files offered but left out because the model's card records it was fitted ("train") or
    # calibrated ("calibration") on them: part -> count (see score_unseen).
    seen: dict[str, int] = field(default_factory=dict)

    def seen_note(self, short: bool = False) -> str:
        """"" when nothing was left out, else e.g. "on the 21 images it never saw (38 it was trained
        on left out)", or with ``short`` "on the 21 of 59 it never saw"."""
        if not self.seen:
            return ""
        n = len(self.labels)
        if short:
            return f"on the {n} of {n + sum(self.seen.values())} it never saw"
        left_out = " and ".join(f"{k} it was {'trained' if part == 'train' else 'calibrated'} on"
                                for part, k in self.seen.items())
        return f"on the {n} images it never saw ({left_out} left out)"


def score_files(classifier, files: LabelledFiles) -> Scores:
    """Classify every file (through the one batch engine,
    :func:`covidgui.core.analysis.batch.classify_stream`) and report against its label.

    The files' class names are matched to the classifier's case-insensitively; raises DatasetError
    when they differ (a model for other classes cannot be scored on this data).
    """
    card = classifier.card
    lower = [c.lower() for c in card.classes]
    if sorted(c.lower() for c in files.classes) != sorted(lower):
        raise DatasetError(f"{card.name} v{card.version} knows the classes {', '.join(card.classes)}, "
                           f"not {', '.join(files.classes)}, so it cannot be scored on this data.")
    mapping = [lower.index(c.lower()) for c in files.classes]
    labels, probs, unreadable = [], [], {}
    for label, result in zip(files.labels, predict_files(classifier, files.paths)):
        if isinstance(result, ImageLoadError):
            unreadable[str(result.path)] = result.reason
            continue
        labels.append(mapping[label])
        probs.append([result.probabilities[card.display_name(c)] for c in card.classes])
    if not labels:
        raise DatasetError("None of the validation images could be read.")
    labels_arr = np.asarray(labels, dtype=int)
    probs_arr = np.asarray(probs, dtype=float)
    positive = card.positive_class or card.classes[0]
    report = classification_report(labels_arr, probs_arr, card.classes, positive)
    return Scores(f"{card.name} v{card.version}", list(card.classes), positive, labels_arr, probs_arr, report,
                  unreadable)


def score_unseen(classifier, files: LabelledFiles) -> Scores:
    """:func:`score_files` on the files the classifier's card does not record as trained or
    calibrated on (matched by content hash; all files when the card records none), so that a model
    is not credited with images it has learned. ``Scores.seen`` counts those left out.

    Raises DatasetError when the model has seen every one of the files.
    """
    roles = seen_roles(classifier.card, files.paths)
    seen = {part: roles.count(part) for part in PARTS if part != "unseen" and roles.count(part)}
    card = classifier.card
    if "unseen" not in roles:
        raise DatasetError(f"{card.name} v{card.version} was trained or calibrated on all {len(roles)} of these "
                           "images, so they cannot show how it does on films it has not seen.")
    scores = score_files(classifier, files.subset([role == "unseen" for role in roles]))
    scores.seen = seen
    return scores


def roc_curves(scores: Scores) -> dict[str, tuple[np.ndarray, np.ndarray, float | None]]:
    """class -> (false-positive rates, true-positive rates, AUC), one-vs-rest.

    With two classes only the positive class's curve is returned (the other is its mirror).
    A class absent from the labels (or the only one present) gets no curve.
    """
    wanted = [scores.positive_class] if len(scores.classes) == 2 else scores.classes
    curves = {}
    for name in wanted:
        i = scores.classes.index(name)
        truth = scores.labels == i
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, scores.probs[:, i])
        curves[name] = (fpr, tpr, float(roc_auc_score(truth, scores.probs[:, i])))
    return curves
