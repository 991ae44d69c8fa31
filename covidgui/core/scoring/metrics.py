"""Figures a clinician reads: confusion matrix, sensitivity, specificity, AUC, calibration error."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion successes/n (robust at 0 % and 100 %)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def auc_interval(auc: float, n_positive: int, n_negative: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % interval of an ROC AUC from its standard error by Hanley & McNeil (1982, Radiology
    143:29), which needs only the AUC and the two class sizes; clipped to 0..1. Wide on a few dozen
    films, as it should be: it is what tells a real gain from the luck of a small sample."""
    if n_positive == 0 or n_negative == 0:
        return (0.0, 1.0)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc * auc)
                + (n_negative - 1) * (q2 - auc * auc)) / (n_positive * n_negative)
    half = z * math.sqrt(max(variance, 0.0))
    return (max(0.0, auc - half), min(1.0, auc + half))


def specificity_at_sensitivity(is_positive, scores, sensitivity: float) -> float | None:
    """The highest specificity of any threshold on ``scores`` (N,) whose sensitivity for
    ``is_positive`` (N,) bool is at least ``sensitivity``: the ROC curve's point a target such
    as "specificity 0.75 at sensitivity 0.85" asks about, whatever threshold a model calls at.
    None with one class only."""
    is_positive = np.asarray(is_positive, dtype=bool)
    if is_positive.all() or not is_positive.any():
        return None
    false_positive, true_positive, _ = roc_curve(is_positive, np.asarray(scores, dtype=np.float64))
    return float(1.0 - false_positive[true_positive >= sensitivity].min())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-class confidence: probs (N, C), labels (N,) ints; 0 = perfectly calibrated."""
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def classification_report(labels, probs, classes: list[str], positive: str | None = None) -> dict:
    """Everything the evaluate command and model card report, as plain JSON-ready types.

    labels: (N,) true class indices; probs: (N, C) probabilities; positive: the class whose
    sensitivity/specificity and AUC (that class against all others) are headline figures (default:
    the first class).
    """
    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs, dtype=float)
    predicted = probs.argmax(axis=1)
    n = int(labels.size)
    cm = confusion_matrix(labels, predicted, labels=list(range(len(classes))))
    per_class = {}
    for i, name in enumerate(classes):
        tp = int(cm[i, i])
        fn = int(cm[i].sum() - tp)
        fp = int(cm[:, i].sum() - tp)
        tn = int(n - tp - fn - fp)
        per_class[name] = {
            "sensitivity": tp / (tp + fn) if tp + fn else None,
            "sensitivity_ci95": wilson_interval(tp, tp + fn),
            "specificity": tn / (tn + fp) if tn + fp else None,
            "specificity_ci95": wilson_interval(tn, tn + fp),
            "precision": tp / (tp + fp) if tp + fp else None,
            "precision_ci95": wilson_interval(tp, tp + fp),
            "support": tp + fn,
        }
    positive = positive or classes[0]
    pos = classes.index(positive)
    auc = None
    # The positive class against all others, for any number of classes (so the figure means what
    # its label says, and a folder without some classes still has one when both sides are present).
    if 0 < int((labels == pos).sum()) < n:
        auc = float(roc_auc_score(labels == pos, probs[:, pos]))
    correct = int((predicted == labels).sum())
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "classes": list(classes),
        "confusion_matrix": cm.tolist(),
        "positive_class": positive,
        "sensitivity": per_class[positive]["sensitivity"],
        "specificity": per_class[positive]["specificity"],
        "auc": auc,
        "per_class": per_class,
        "ece": expected_calibration_error(probs, labels) if n else None,
    }
