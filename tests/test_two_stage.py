"""Two-stage decisions over three classes: relabelling for each stage, the combined probabilities,
and the per-source rows a pair of classifiers gives (stand-in classifiers, tiny generated films)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.scoring import two_stage
from covidgui.core.scoring.two_stage import PLANS, combine_probabilities, stage_one_files, stage_two_files
from tests.conftest import chest_like

CLASSES = ["Covid", "Normal", "Pneumonia"]


def three_class_files(paths=None) -> LabelledFiles:
    names = [("a.png", "Covid", "bimcv"), ("b.png", "Normal", "rsna"), ("c.png", "Pneumonia", "nih"),
             ("d.png", "Covid", "cxnet"), ("e.png", "Pneumonia", "cohen"), ("f.png", "Normal", "children")]
    paths = paths or [Path(n) for n, _, _ in names]
    return LabelledFiles(list(CLASSES), list(paths), [CLASSES.index(c) for _, c, _ in names],
                         [g for _, _, g in names])


def test_stage_one_merges_the_split_classes_and_keeps_every_file_and_source():
    files = three_class_files()
    first = stage_one_files(files, PLANS["normal-first"])
    assert first.classes == ["Abnormal", "Normal"]
    assert [first.classes[lab] for lab in first.labels] == ["Abnormal", "Normal", "Abnormal", "Abnormal",
                                                            "Abnormal", "Normal"]
    assert first.paths == files.paths and first.groups == files.groups
    covid_first = stage_one_files(files, PLANS["covid-first"])
    assert covid_first.classes == ["Covid", "Not-Covid"]
    assert [covid_first.classes[lab] for lab in covid_first.labels] == ["Covid", "Not-Covid", "Not-Covid",
                                                                        "Covid", "Not-Covid", "Not-Covid"]


def test_stage_two_keeps_only_the_merged_classes_films():
    files = three_class_files()
    second = stage_two_files(files, PLANS["normal-first"])
    assert second.classes == ["Covid", "Pneumonia"]
    assert [p.name for p in second.paths] == ["a.png", "c.png", "d.png", "e.png"]
    assert [second.classes[lab] for lab in second.labels] == ["Covid", "Pneumonia", "Covid", "Pneumonia"]
    assert second.groups == ["bimcv", "nih", "cxnet", "cohen"]
    other = stage_two_files(files, PLANS["covid-first"])
    assert other.classes == ["Normal", "Pneumonia"] and len(other) == 4


def test_combined_probabilities_are_the_product_rule_and_sum_to_one():
    plan = PLANS["normal-first"]
    p1 = np.array([[0.3, 0.7], [0.9, 0.1]])  # Abnormal, Normal
    p2 = np.array([[0.25, 0.75], [0.6, 0.4]])  # Covid, Pneumonia
    out = combine_probabilities(p1, ["Abnormal", "Normal"], p2, ["Covid", "Pneumonia"], plan, CLASSES)
    np.testing.assert_allclose(out, [[0.075, 0.7, 0.225], [0.54, 0.1, 0.36]])
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    # Stage 2's class order does not matter.
    swapped = combine_probabilities(p1, ["Abnormal", "Normal"], p2[:, ::-1], ["Pneumonia", "Covid"], plan, CLASSES)
    np.testing.assert_allclose(swapped, out)
    covid_first = combine_probabilities(np.array([[0.2, 0.8]]), ["Covid", "Not-Covid"], np.array([[0.5, 0.5]]),
                                        ["Normal", "Pneumonia"], PLANS["covid-first"], CLASSES)
    np.testing.assert_allclose(covid_first, [[0.2, 0.4, 0.4]])


class StandIn:
    """A classifier whose probabilities are set per file name (the batch engine decodes 16-px inputs)."""

    input_size = 16
    harmonises = False  # the batch engine's preprocessing switch (Classifier.harmonises)

    def __init__(self, classes, by_name):
        self.by_name = by_name

        class card:
            positive_class = classes[0]

            @staticmethod
            def display_name(c):
                return c

        card.classes = list(classes)
        self.card = card

    def predict_inputs(self, inputs, colourfulness=None, paths=None, lung_attention=False):
        from covidgui.core.inference.classifier import Prediction

        out = []
        for path in paths:
            p = self.by_name[Path(path).name]
            top = self.card.classes[int(np.argmax(p))]
            out.append(Prediction(top, top, top, float(max(p)), dict(zip(self.card.classes, p)), path=path))
        return out


def test_two_stage_rows_count_the_combined_calls_per_source(tmp_path):
    names = ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png"]
    for i, name in enumerate(names):
        Image.fromarray(chest_like(32, seed=i)).save(tmp_path / name)
    files = three_class_files([tmp_path / n for n in names])
    files.groups = ["covid-src", "normal-src", "pneu-src", "covid-src", "pneu-src", "normal-src"]
    # Stage 1 (Abnormal, Normal); stage 2 (Covid, Pneumonia).
    stage1 = StandIn(["Abnormal", "Normal"], {"a.png": [0.9, 0.1], "b.png": [0.2, 0.8], "c.png": [0.8, 0.2],
                                              "d.png": [0.6, 0.4], "e.png": [0.7, 0.3], "f.png": [0.7, 0.3]})
    stage2 = StandIn(["Covid", "Pneumonia"], {"a.png": [0.8, 0.2], "b.png": [0.9, 0.1], "c.png": [0.3, 0.7],
                                              "d.png": [0.5, 0.5], "e.png": [0.9, 0.1], "f.png": [0.1, 0.9]})
    rows = {r["source"]: r for r in two_stage.two_stage_rows(stage1, stage2, files, PLANS["normal-first"], CLASSES)}
    # a: 0.72/0.1/0.18 -> Covid; d: 0.3/0.4/0.3 -> Normal (stage 1 said abnormal, but split 50/50).
    assert rows["covid-src"]["called"] == {"Covid": 1, "Normal": 1, "Pneumonia": 0}
    assert rows["covid-src"]["correct"] == 1 and rows["covid-src"]["abnormal"] == 1
    assert rows["covid-src"]["stage1_called"] == {"Abnormal": 2, "Normal": 0}
    # c: Pneumonia; e: Covid.
    assert rows["pneu-src"]["called"] == {"Covid": 1, "Normal": 0, "Pneumonia": 1}
    # b: Normal; f: 0.07/0.3/0.63 -> Pneumonia.
    assert rows["normal-src"]["called"] == {"Covid": 0, "Normal": 1, "Pneumonia": 1}
    assert rows["normal-src"]["class"] == "Normal" and rows["normal-src"]["n"] == 2
    assert rows["covid-src"]["probabilities"][0] == pytest.approx([0.72, 0.1, 0.18])
    assert rows["covid-src"]["positive_probabilities"] == pytest.approx([0.72, 0.3])


def test_leave_one_source_out_scores_what_train_fn_returned_with_score_fn(tmp_path):
    from covidgui.core.scoring import sources
    from tests.test_sources import make_data_root

    found = sources.find_sources(make_data_root(tmp_path, per_source=10))
    scored = []

    def score_fn(model, files):
        scored.append((model, set(files.groups)))
        return [{"source": files.groups[0], "n": len(files)}]

    rows = sources.leave_one_source_out(found, lambda train, calibration: ("pair", len(train)), per_source=3,
                                        held_out=["cohen-web"], score_fn=score_fn)
    assert rows == [{"source": "cohen-web", "n": rows[0]["n"]}]
    assert scored[0][0][0] == "pair" and scored[0][1] == {"cohen-web"}
