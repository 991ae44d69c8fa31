"""Three classes (COVID-19, Normal, Pneumonia) in the reference sources, the per-source figures and
the training pieces, and the two-class use that must keep working beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidgui.core.scoring import sources
from covidgui.core.scoring.calibration import fit_indeterminate_band
from covidgui.core.data.dataset import scan_class_folders
from covidgui.core.scoring.evaluation import LabelledPredictions
from covidgui.core.inference.classifier import Prediction
from covidgui.core.training.train import (TrainConfig, balanced_sample_weight, down_weight_sources,
                                    source_factors, train)
from tests.conftest import chest_like


class Card:
    def __init__(self, classes):
        self.classes = classes
        self.positive_class = "Covid"


def predictions(classes, rows, groups):
    """LabelledPredictions of (true class, probabilities) rows."""
    labels = np.array([classes.index(c) for c, _ in rows])
    probs = np.array([p for _, p in rows], dtype=float)
    results = [Prediction("x", "x", classes[int(np.argmax(p))], float(max(p)), {}) for p in probs]
    return LabelledPredictions(labels, probs, results, groups)


def test_the_reference_classes_are_three_in_folder_order_with_pneumonia_sources():
    assert sources.CLASSES == ["Covid", "Normal", "Pneumonia"] == sorted(sources.CLASSES)
    assert sources.SOURCE_FOLDERS["nih-cxr14"] == {"Pneumonia": ("pneumonia/nih-cxr14/Pneumonia",)}
    assert sources.SOURCE_FOLDERS["cohen-web"] == {"Pneumonia": ("pneumonia/cohen-web/Pneumonia",)}
    assert {c for folders in sources.SOURCE_FOLDERS.values() for c in folders} == set(sources.CLASSES)
    assert set(sources.DISPLAY_NAMES) == set(sources.CLASSES)


def test_a_two_class_choice_of_sources_gives_a_two_class_split(tmp_path):
    for folder in ("multisource/covid-cxnet/Covid", "adult-normal", "pneumonia/cohen-web/Pneumonia"):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(chest_like(32, seed=i)).save(tmp_path / folder / f"{i}.png")
    both = sources.find_sources(tmp_path, classes=["Covid", "Normal"])
    assert [s.name for s in both] == ["adult-normal", "covid-cxnet"]
    assert sources.locked_split(both).train.classes == ["Covid", "Normal"]
    assert sources.locked_split(sources.find_sources(tmp_path)).train.classes == ["Covid", "Normal", "Pneumonia"]


def test_per_source_rows_carry_the_confusion_row_and_the_share_called_abnormal():
    classes = ["Covid", "Normal", "Pneumonia"]
    rows = [("Pneumonia", [0.6, 0.3, 0.1]), ("Pneumonia", [0.1, 0.2, 0.7]), ("Pneumonia", [0.2, 0.7, 0.1]),
            ("Normal", [0.1, 0.8, 0.1]), ("Normal", [0.1, 0.3, 0.6])]
    out = {r["source"]: r for r in sources.rows_by_source(
        predictions(classes, rows, ["nih"] * 3 + ["rsna"] * 2), Card(classes), keep_probabilities=True)}
    assert out["nih"]["called"] == {"Covid": 1, "Normal": 1, "Pneumonia": 1}
    assert out["nih"]["correct"] == 1 and out["nih"]["abnormal"] == 2
    assert out["rsna"]["called"] == {"Covid": 0, "Normal": 1, "Pneumonia": 1} and out["rsna"]["abnormal"] == 1
    assert out["nih"]["classes"] == classes and len(out["nih"]["probabilities"]) == 3
    table = sources.format_table(list(out.values()))
    assert "abnormal" in table and "->Pneumoni" in table and "66.7%" in table  # nih: 2 of 3 abnormal


def test_two_class_rows_and_table_keep_their_shape():
    classes = ["Covid", "Normal"]
    rows = [("Covid", [0.9, 0.1]), ("Covid", [0.3, 0.7]), ("Normal", [0.2, 0.8])]
    out = sources.rows_by_source(predictions(classes, rows, ["c", "c", "n"]), Card(classes))
    assert out[0]["called"] == {"Covid": 1, "Normal": 1} and out[0]["abnormal"] == 1
    table = sources.format_table(out)
    assert "abnormal" not in table and "worst: c" in table


def test_a_covid_threshold_with_three_classes_calls_the_most_probable_other_class_below_it():
    row = {"source": "nih", "class": "Pneumonia", "n": 3, "correct": 1, "classes": ["Covid", "Normal", "Pneumonia"],
           "positive_probabilities": [0.6, 0.1, 0.2], "probabilities": [[0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1]]}
    # At 0.5 the first film is called COVID-19; at 0.65 it is called Normal (0.3 > 0.1): still wrong.
    assert sources.right_at(row, 0.5).tolist() == [False, True, False]
    assert sources.right_at(row, 0.65).tolist() == [False, True, False]
    covid = {"source": "c", "class": "Covid", "n": 2, "correct": 1, "classes": row["classes"],
             "positive_probabilities": [0.6, 0.4], "probabilities": [[0.6, 0.3, 0.1], [0.4, 0.5, 0.1]]}
    assert sources.right_at(covid, 0.35).tolist() == [True, True]
    threshold, mean = sources.choose_threshold([row, covid])
    assert threshold <= 0.4 and mean == pytest.approx((1 / 3 + 1) / 2)
    assert [r["threshold"] for r in sources.with_threshold([row, covid])] == [threshold, 0.5]


def test_the_indeterminate_band_covers_every_top_probability_below_its_edge_with_three_classes():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], 3000)
    labels = probs.argmax(axis=1)  # always right: the minimum band
    low, high = fit_indeterminate_band(probs, labels)
    assert high == 0.65 and low <= probs.max(axis=1).min() and low == 0.33
    two = np.stack([probs[:, 0], 1 - probs[:, 0]], axis=1)
    assert fit_indeterminate_band(two, two.argmax(axis=1)) == (0.35, 0.65)  # two classes: as before


def test_a_noisy_source_weighs_less_inside_its_class_and_the_class_keeps_its_weight():
    labels = [0] * 40 + [1] * 60 + [2] * 30 + [2] * 10
    groups = ["c"] * 40 + ["n"] * 60 + ["nih"] * 30 + ["web"] * 10
    base = balanced_sample_weight(labels, groups, 3)
    config = TrainConfig(noisy_sources="nih-cxr14, nih", noisy_source_weight=0.5)
    assert source_factors(config) == {"nih-cxr14": 0.5, "nih": 0.5}
    assert source_factors(TrainConfig(noisy_sources="nih")) == {}
    w = down_weight_sources(base, labels, groups, source_factors(config))
    g, lab = np.array(groups), np.array(labels)
    assert w[g == "nih"].sum() == pytest.approx(0.5 * w[g == "web"].sum())
    for c in range(3):
        assert w[lab == c].sum() == pytest.approx(base[lab == c].sum())
    # A class learned from the noisy source alone keeps it at full weight.
    only = down_weight_sources(base[g != "web"], lab[g != "web"], g[g != "web"], {"nih": 0.5})
    np.testing.assert_allclose(only, base[g != "web"])


def make_three_classes(root: Path, per_class: int = 8, size: int = 48) -> None:
    """Three visibly different classes: clear lungs, bright spots, a dark band."""
    rng = np.random.default_rng(0)
    for k, label in enumerate(("Covid", "Normal", "Pneumonia")):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            img = chest_like(size, seed=i + 100 * k).astype(float)
            if label == "Covid":
                for _ in range(4):
                    y, x = rng.integers(size // 4, 3 * size // 4, 2)
                    img[max(0, y - 3):y + 3, max(0, x - 3):x + 3] = 255
            elif label == "Pneumonia":
                img[size // 2:size // 2 + 6] = 0
            Image.fromarray(img.astype(np.uint8)).save(root / label / f"{i}.png")


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory):
    """A user-trained three-class model (label smoothing, a noisy source), trained once for the
    module: (result, training files)."""
    root = tmp_path_factory.mktemp("three-classes")
    make_three_classes(root / "train")
    make_three_classes(root / "val", per_class=4)
    files, val = scan_class_folders(root / "train"), scan_class_folders(root / "val")
    config = TrainConfig(epochs=2, batch_size=8, input_size=32, patience=0, label_smoothing=0.1,
                         noisy_sources="Pneumonia", noisy_source_weight=0.5)
    return train(files, val, config), files


def test_a_three_class_model_trains_with_label_smoothing_and_a_noisy_source(three_class_run):
    result, files = three_class_run
    assert files.classes == ["Covid", "Normal", "Pneumonia"]
    card = result.classifier.card
    assert len(result.history["loss"]) == 2 and np.isfinite(result.history["loss"]).all()
    assert np.array(result.report["confusion_matrix"]).shape == (3, 3)
    assert card.indeterminate_band[0] <= 0.33 and card.training["config"]["label_smoothing"] == 0.1
    prediction = result.classifier.predict_file(files.paths[0])
    assert len(prediction.probabilities) == 3 and sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-5)


def test_a_user_trained_three_class_model_shows_three_classes_in_the_window_csv_and_cli(qtbot, tmp_path,
                                                                                     three_class_run):
    """Every view follows the model's classes: the Image tab's three probability rows, the CSV's
    three probability columns, and classify --json's three probabilities."""
    import csv
    import json

    from covidgui.core.analysis.batch import write_csv, classify_stream
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.models.model_files import save_model
    from covidgui.gui.app import create_app
    from covidgui.gui.main_window import MainWindow
    from tests.test_cli import run_cli
    from tests.test_gui import drop_files, wait_for_result

    result, files = three_class_run  # the model of the test above, trained once
    model_path = save_model(result.classifier, tmp_path / "three.keras")
    image = files.paths[-1]

    create_app()
    window = MainWindow(str(model_path))
    qtbot.addWidget(window)
    window.show()
    window.start_loading_model()
    qtbot.waitUntil(lambda: window.card is not None, timeout=120_000)
    drop_files(window, image)
    wait_for_result(qtbot, window)
    assert window.result_panel.probabilities_layout.rowCount() == 3

    classifier = Classifier.load(model_path)
    items = [item for chunk in classify_stream(classifier, [image]) for item in chunk]
    out = write_csv(tmp_path / "r.csv", items, classifier.card)
    header = next(csv.reader(out.open(encoding="utf-8-sig")))
    assert [h for h in header if h.startswith("probability ")] == [
        f"probability {classifier.card.display_name(c)}" for c in ("Covid", "Normal", "Pneumonia")]

    cli = run_cli("classify", image, "--model", model_path, "--json")
    assert cli.returncode == 0, cli.stderr
    assert len(json.loads(cli.stdout.strip().splitlines()[0])["probabilities"]) == 3
