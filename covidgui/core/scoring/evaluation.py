"""Measuring a model on a labelled folder (one subfolder per class), as ``covidgui evaluate`` does."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from covidgui.core.analysis.batch import predict_files
from covidgui.core.data.dataset import LabelledFiles, scan_class_folders
from covidgui.core.errors import DatasetError, ImageLoadError
from covidgui.core.scoring.metrics import classification_report
from covidgui.core.inference.classifier import Classifier


@dataclass
class LabelledPredictions:
    """A model's results on labelled files, readable files only, in file order.

    labels: (N,) the true class as an index into the model card's classes;
    probabilities: (N, C) calibrated, in the card's class order; results: the Predictions;
    groups: each file's source (LabelledFiles.group_names); unreadable: file -> reason.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    results: list
    groups: list[str]
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def right(self) -> np.ndarray:
        """(N,) whether the top class is the true one ("classify anyway" for gated and
        indeterminate results, so that withholding never flatters a figure)."""
        return self.probabilities.argmax(axis=1) == self.labels


def predict_labelled(classifier: Classifier, files: LabelledFiles) -> LabelledPredictions:
    """Classify every file once, through the one batch engine every user of the model takes
    (:func:`covidgui.core.analysis.batch.classify_stream`)."""
    card = classifier.card
    to_card = [card.classes.index(name) for name in files.classes]  # the files' class order -> the card's
    labels, probs, results, groups, unreadable = [], [], [], [], {}
    for label, group, result in zip(files.labels, files.group_names(), predict_files(classifier, files.paths)):
        if isinstance(result, ImageLoadError):
            unreadable[str(result.path)] = result.reason
            continue
        labels.append(to_card[label])
        probs.append([result.probabilities[card.display_name(c)] for c in card.classes])
        results.append(result)
        groups.append(group)
    return LabelledPredictions(np.asarray(labels, dtype=int), np.asarray(probs, dtype=float).reshape(-1, len(card.classes)),
                               results, groups, unreadable)


def evaluate_folder(data_dir: str | Path, model_path: str | Path | None = None,
                    classifier: Classifier | None = None) -> dict:
    """Classify every image below ``data_dir`` and compare with its folder's class.

    Subfolders are matched to the model's classes case-insensitively. Returns the
    :func:`~covidgui.core.scoring.metrics.classification_report` fields plus ``indeterminate`` (results
    inside the indeterminate band), ``rejected`` (withheld by the input gate) and ``unreadable``
    (file -> reason; not counted). The figures count every readable image by its top class, as if
    the user had chosen "classify anyway" for rejected and indeterminate ones, so that accuracy
    is never flattered by withholding the hard cases; the two counts say how many there were.
    """
    classifier = classifier or Classifier.load(model_path)
    card = classifier.card
    # A folder may hold only some of the model's classes (COVID-19 and normal films for a
    # three-class model): the figures of the classes present are measured, the others say n/a.
    files = scan_class_folders(data_dir, card.classes, allow_missing=True)
    if len(files) == 0:
        raise DatasetError(f"{data_dir} holds no images in its class subfolders.")
    predicted = predict_labelled(classifier, files)
    if not predicted.results:
        raise DatasetError(f"None of the images in {data_dir} could be read.")
    report = classification_report(predicted.labels, predicted.probabilities, card.classes, card.positive_class)
    report.update(indeterminate=sum(int(r.indeterminate) for r in predicted.results),
                  rejected=sum(int(r.not_xray) for r in predicted.results), unreadable=predicted.unreadable,
                  model=f"{card.name} v{card.version}",
                  missing_classes=[c for i, c in enumerate(card.classes) if i not in set(files.labels)])
    return report


def format_report(report: dict) -> str:
    """The report as text for a terminal."""
    classes = report["classes"]
    width = max(len(c) for c in classes) + 2
    lines = [f"{report['model']}: {report['correct']}/{report['n']} correct ({report['accuracy']:.1%})", "",
             "confusion matrix (rows = true class, columns = predicted)",
             " " * width + "".join(c.rjust(width) for c in classes)]
    for name, row in zip(classes, report["confusion_matrix"]):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    lines.append("")
    for name, stats in report["per_class"].items():
        def fmt(key):
            value = stats[key]
            lo, hi = stats[key + "_ci95"]
            return "n/a" if value is None else f"{value:.1%} (95% CI {lo:.1%}-{hi:.1%})"
        lines.append(f"{name}: sensitivity {fmt('sensitivity')}, specificity {fmt('specificity')}")
    auc = report.get("auc")
    lines.append(f"ROC AUC ({report['positive_class']} against the rest): " + ("n/a" if auc is None else f"{auc:.3f}"))
    for name in report.get("missing_classes", []):
        lines.append(f"{name}: no images of this class in the folder, so its sensitivity is not measured "
                     f"(its specificity is: images of the other classes not called {name}).")
    lines.append(f"indeterminate: {report['indeterminate']}, rejected: {report['rejected']}, "
                 f"unreadable: {len(report['unreadable'])}")
    lines.extend(f"  {path}: {reason}" for path, reason in report["unreadable"].items())
    return "\n".join(lines)
