"""Scoring a model on labelled files: class names matched by name, ROC one-vs-rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidgui.core.scoring.comparison import roc_curves, score_files, score_unseen
from covidgui.core.data.dataset import SHORT_HASH_CHARS, LabelledFiles, sha256_file
from covidgui.core.errors import DatasetError
from covidgui.core.inference.classifier import Prediction
from covidgui.core.models.modelcard import FILE_HASHES_KEY, ModelCard


class TableClassifier:
    """Answers from a table of file name -> probabilities, through the batch engine (the files are
    decoded as for a real model; the table stands in for the network)."""

    input_size = 8
    harmonises = False  # the batch engine's preprocessing switch (Classifier.harmonises)

    def __init__(self, classes, table):
        self.card = ModelCard(name="table", version="1", classes=classes, input_size=8,
                              display_names={"Covid": "COVID-19"})
        self.table = table

    def predict_inputs(self, inputs, colourfulness=None, paths=None, lung_attention=False):
        names = [self.card.display_name(c) for c in self.card.classes]
        results = []
        for p in paths:
            probs = self.table[Path(p).name]
            label = names[int(np.argmax(probs))]
            results.append(Prediction(label=label, class_label=label, class_name="", confidence=max(probs),
                                      probabilities=dict(zip(names, probs)), path=Path(p)))
        return results


def image_files(folder: Path, table) -> dict[str, Path]:
    """A small image per table entry (an empty, unreadable file where the entry is None)."""
    paths = {}
    for name, probs in table.items():
        paths[name] = folder / name
        if probs is None:
            paths[name].write_bytes(b"")
        else:
            Image.fromarray(np.full((16, 16), 128, np.uint8)).save(paths[name], format="PNG")
    return paths


def test_files_are_matched_to_the_model_classes_by_name_not_position(tmp_path):
    # The folder lists Normal first; the model's output order is Covid, Normal.
    table = {"n1": [0.2, 0.8], "n2": [0.6, 0.4], "c1": [0.9, 0.1], "bad": None}
    paths = image_files(tmp_path, table)
    files = LabelledFiles(["normal", "covid"], [paths["n1"], paths["n2"], paths["c1"], paths["bad"]], [0, 0, 1, 1])
    scores = score_files(TableClassifier(["Covid", "Normal"], table), files)
    assert scores.labels.tolist() == [1, 1, 0]
    assert scores.report["confusion_matrix"] == [[1, 0], [1, 1]]
    assert scores.unreadable == {str(paths["bad"]): "the file is empty (0 bytes)"}
    (name, (fpr, tpr, auc)), = roc_curves(scores).items()
    assert name == "Covid" and auc == pytest.approx(1.0)
    assert fpr[0] == 0 and tpr[-1] == 1


def test_a_model_for_other_classes_cannot_be_scored():
    files = LabelledFiles(["Covid", "Pneumonia"], [Path("a")], [0])
    with pytest.raises(DatasetError, match="cannot be scored"):
        score_files(TableClassifier(["Covid", "Normal"], {"a": [1, 0]}), files)


def test_three_classes_get_one_curve_each(tmp_path):
    table = {"0": [.8, .1, .1], "1": [.5, .3, .2], "2": [.2, .7, .1], "3": [.4, .5, .1], "4": [.1, .1, .8],
             "5": [.3, .3, .4]}
    paths = image_files(tmp_path, table)
    files = LabelledFiles(["A", "B", "C"], [paths[f"{i}"] for i in range(6)], [0, 0, 1, 1, 2, 2])
    curves = roc_curves(score_files(TableClassifier(["A", "B", "C"], table), files))
    assert set(curves) == {"A", "B", "C"}
    assert all(0 <= auc <= 1 for _, _, auc in curves.values())


def test_the_active_model_is_scored_only_on_files_it_never_saw(tmp_path):
    # Issue 28 item 7: a model compared on its own training films would look better than it is.
    table = {f"c{i}.png": [0.9, 0.1] for i in range(3)} | {f"n{i}.png": [0.2, 0.8] for i in range(3)}
    paths = image_files(tmp_path, table)
    # Distinct contents: the card matches files by hash, so each image must differ.
    for i, path in enumerate(paths.values()):
        Image.fromarray(np.full((16, 16), 10 * i, np.uint8)).save(path, format="PNG")
    names = list(table)
    files = LabelledFiles(["Covid", "Normal"], [paths[n] for n in names], [0, 0, 0, 1, 1, 1])
    model = TableClassifier(["Covid", "Normal"], table)

    def short(name):
        return sha256_file(paths[name])[:SHORT_HASH_CHARS]

    model.card.training[FILE_HASHES_KEY] = {"train": [short("c0.png"), short("n0.png")],
                                            "calibration": [short("c1.png")]}
    scores = score_unseen(model, files)
    assert scores.report["n"] == 3 and scores.labels.tolist() == [0, 1, 1]
    assert scores.seen == {"train": 2, "calibration": 1}
    assert scores.seen_note() == "on the 3 images it never saw (2 it was trained on and 1 it was calibrated on left out)"
    assert scores.seen_note(short=True) == "on the 3 of 6 it never saw"

    model.card.training[FILE_HASHES_KEY] = {"train": [short(n) for n in names]}
    with pytest.raises(DatasetError, match="trained or calibrated on all 6"):
        score_unseen(model, files)

    model.card.training.pop(FILE_HASHES_KEY)  # a card that records nothing: every file counts
    everything = score_unseen(model, files)
    assert everything.report["n"] == 6 and everything.seen == {} and everything.seen_note() == ""
