"""Two-stage decisions over three classes: one model merges two classes, a second tells them apart.

With ``normal-first`` stage 1 decides Normal against "Abnormal" (COVID-19 and Pneumonia films
merged) and stage 2, trained on the abnormal films alone, decides COVID-19 against Pneumonia; with
``covid-first`` stage 1 decides COVID-19 against "Not-Covid" (Normal and Pneumonia merged) and
stage 2 decides Normal against Pneumonia. The three probabilities are
P(c) = p1(c) for the class stage 1 keeps, and P(c) = p1(merged) * p2(c) for the classes it merges;
the call is their argmax. Each stage is an ordinary calibrated classifier, so nothing here trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.scoring.evaluation import LabelledPredictions, predict_labelled
from covidgui.core.scoring.sources import rows_by_source


@dataclass(frozen=True)
class TwoStagePlan:
    """merged: the name stage 1 gives the classes in ``split``; stage 2 tells ``split`` apart.
    stage1_positive, stage2_positive: each stage's positive class (for its card's figures)."""

    name: str
    merged: str
    split: tuple[str, str]
    stage1_positive: str
    stage2_positive: str


PLANS = {
    "normal-first": TwoStagePlan("normal-first", "Abnormal", ("Covid", "Pneumonia"), "Abnormal", "Covid"),
    "covid-first": TwoStagePlan("covid-first", "Not-Covid", ("Normal", "Pneumonia"), "Covid", "Pneumonia"),
}


def stage_one_files(files: LabelledFiles, plan: TwoStagePlan) -> LabelledFiles:
    """Every file, the classes of ``plan.split`` relabelled ``plan.merged`` (the merged class takes
    the place of the first of them in the class order); groups (sources) kept."""
    return files.subset([True] * len(files), rename={c: plan.merged for c in plan.split})


def stage_two_files(files: LabelledFiles, plan: TwoStagePlan) -> LabelledFiles:
    """The files of the classes of ``plan.split`` only, on those classes; groups kept."""
    return files.subset([files.classes[label] in plan.split for label in files.labels],
                        classes=[c for c in files.classes if c in plan.split])


def combine_probabilities(p1: np.ndarray, classes1: list[str], p2: np.ndarray, classes2: list[str],
                          plan: TwoStagePlan, classes: list[str]) -> np.ndarray:
    """(N, len(classes)) probabilities of the two stages' (N, C1) and (N, C2) ones: a class stage 1
    keeps gets its stage-1 probability, a class it merges p1(merged) * p2(class). Rows sum to 1 when
    both stages' do."""
    p1, p2 = np.asarray(p1, dtype=float), np.asarray(p2, dtype=float)
    merged = p1[:, classes1.index(plan.merged)]
    out = np.zeros((len(p1), len(classes)))
    for j, c in enumerate(classes):
        out[:, j] = merged * p2[:, classes2.index(c)] if c in plan.split else p1[:, classes1.index(c)]
    return out


def predict_two_stage(stage1, stage2, files: LabelledFiles, plan: TwoStagePlan,
                      classes: list[str]) -> tuple[LabelledPredictions, np.ndarray]:
    """(the combined predictions, labels index ``classes``; stage 1's (N, C1) probabilities).

    Both stages classify every file through the batch engine (:func:`predict_labelled`); the
    combined results carry stage 1's Predictions (its input gate, indeterminate band and
    shortcut check), the probabilities are :func:`combine_probabilities`'.
    """
    first = predict_labelled(stage1, stage_one_files(files, plan))
    # Stage 2 scores every file; its own label does not matter, so each gets stage 2's first class.
    anything = LabelledFiles([stage2.card.classes[0]], list(files.paths), [0] * len(files), files.group_names())
    second = predict_labelled(stage2, anything)
    if set(first.unreadable) != set(second.unreadable):
        raise RuntimeError("The two stages could not read the same files.")
    readable = [str(p) not in first.unreadable for p in files.paths]
    labels = np.array([classes.index(files.classes[lab]) for lab, r in zip(files.labels, readable) if r], dtype=int)
    probs = combine_probabilities(first.probabilities, list(stage1.card.classes), second.probabilities,
                                  list(stage2.card.classes), plan, classes)
    return LabelledPredictions(labels, probs, first.results, first.groups, first.unreadable), first.probabilities


def two_stage_rows(stage1, stage2, files: LabelledFiles, plan: TwoStagePlan, classes: list[str],
                   positive_class: str = "Covid", keep_probabilities: bool = True) -> list[dict]:
    """One row per source, as :func:`covidgui.core.scoring.sources.rows_by_source` gives for one
    model of ``classes``, from the combined probabilities; each row also has ``stage1_called``
    (stage 1's own calls: class -> images whose stage-1 top class it is)."""
    predicted, p1 = predict_two_stage(stage1, stage2, files, plan, classes)
    rows = rows_by_source(predicted, SimpleNamespace(classes=list(classes), positive_class=positive_class),
                          keep_probabilities)
    groups = np.asarray(predicted.groups)
    top1 = p1.argmax(axis=1) if len(p1) else np.zeros(0, dtype=int)
    for row in rows:
        members = groups == row["source"]
        row["stage1_called"] = {c: int((top1[members] == i).sum()) for i, c in enumerate(stage1.card.classes)}
    return rows
