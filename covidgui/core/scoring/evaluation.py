"""Measuring a model on a labelled folder (one subfolder per class), as ``covidgui evaluate`` does."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from covidgui.core.analysis.batch import predict_files
from covidgui.core.data.dataset import SHORT_HASH_CHARS, LabelledFiles, scan_class_folders, sha256_file
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


def calls_on_unlabelled(classifier: Classifier, paths: list[Path]) -> dict:
    """How a model calls films no class fits (SIIM's Indeterminate and Atypical readings, say):
    n (readable), called_positive (top class is the card's positive class), indeterminate
    (inside the band), rejected (input gate), and the first two as shares of n."""
    results = [r for r in predict_files(classifier, paths) if not isinstance(r, ImageLoadError)]
    positive = classifier.card.positive_class or classifier.card.classes[0]
    n = len(results)
    called = sum(r.class_name == positive for r in results)
    indeterminate = sum(r.indeterminate for r in results)
    return {"n": n, "called_positive": called, "indeterminate": indeterminate,
            "rejected": sum(r.not_xray for r in results),
            "share_called_positive": round(called / n, 4) if n else None,
            "share_indeterminate": round(indeterminate / n, 4) if n else None}


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
    roles = seen_roles(card, [r.path for r in predicted.results])
    report["seen_recorded"] = bool(card.seen_files())
    report["parts"] = {role: outcomes(predicted, [i for i, r in enumerate(roles) if r == role], card.classes)
                       for role in PARTS}
    return report


# Where a file stands for a model: fitted on ("train"), calibrated on ("calibration"; temperature,
# input gate, indeterminate band, early stopping), or never seen ("unseen").
PARTS = ("unseen", "train", "calibration")


def seen_roles(card, paths) -> list[str]:
    """Each file's part for the model of ``card`` (see :data:`PARTS`), matched by content against
    the short sha256 the card records; "unseen" for every file when the card records none."""
    seen = card.seen_files()
    if not seen:
        return ["unseen"] * len(paths)
    roles = []
    for path in paths:
        digest = sha256_file(path)[:SHORT_HASH_CHARS]
        roles.append(next((part for part in ("train", "calibration") if digest in seen.get(part, ())), "unseen"))
    return roles


def outcomes(predicted: LabelledPredictions, members: list[int], classes: list[str]) -> dict:
    """What a clinician would have been shown for the files ``members`` (indices into
    ``predicted``): per true class, how many were called that class (right), another class
    (wrong), Indeterminate, or Not a chest X-ray. Indeterminate and rejected results are outcomes
    of their own, neither right nor wrong; ``accuracy`` is right calls over all files."""
    rows = {name: {"n": 0, "right": 0, "wrong": 0, "indeterminate": 0, "rejected": 0} for name in classes}
    for i in members:
        result, label = predicted.results[i], int(predicted.labels[i])
        row = rows[classes[label]]
        row["n"] += 1
        if result.not_xray:
            row["rejected"] += 1
        elif result.indeterminate:
            row["indeterminate"] += 1
        elif int(np.argmax(predicted.probabilities[i])) == label:
            row["right"] += 1
        else:
            row["wrong"] += 1
    total = {key: sum(row[key] for row in rows.values()) for key in ("n", "right", "wrong", "indeterminate", "rejected")}
    return {**total, "accuracy": total["right"] / total["n"] if total["n"] else None, "per_class": rows}


def _outcome_lines(title: str, part: dict) -> list[str]:
    n = part["n"]
    share = lambda k: f"{part[k]} ({part[k] / n:.1%})"  # noqa: E731
    lines = [f"{title}: {n} files: called right {share('right')}, called wrong {share('wrong')}, "
             f"Indeterminate {share('indeterminate')}, not a chest X-ray {share('rejected')}"]
    for name, row in part["per_class"].items():
        if row["n"]:
            lines.append(f"  {name} ({row['n']}): right {row['right']}, wrong {row['wrong']}, "
                         f"Indeterminate {row['indeterminate']}, not a chest X-ray {row['rejected']}")
    return lines


def format_report(report: dict) -> str:
    """The report as text for a terminal."""
    classes = report["classes"]
    width = max(len(c) for c in classes) + 2
    parts = report.get("parts") or {}
    seen = {part: parts[part]["n"] for part in ("train", "calibration") if part in parts}
    lines = [f"{report['model']} on {report['n']} files"]
    if not report.get("seen_recorded", True):
        lines.append("Its model card does not record which files it was trained on: some of these may be its own "
                     "training images, which flatter every figure below.")
    elif seen:
        lines.append(f"It was trained on {seen.get('train', 0)} and calibrated on {seen.get('calibration', 0)} of these "
                     f"files (matched by content); they are reported apart, as figures on them flatter the model.")
    for part, title in (("unseen", "files it never saw"), ("train", "files it was trained on"),
                        ("calibration", "files it was calibrated on")):
        if parts.get(part, {}).get("n"):
            lines += _outcome_lines(title, parts[part])
    lines += ["", "All files by top class, as if \"classify anyway\" were chosen for Indeterminate and rejected ones: "
              f"{report['correct']}/{report['n']} ({report['accuracy']:.1%})",
             "confusion matrix (rows = true class, columns = top class)",
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
