"""`covidgui evaluate`, calibration and metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from covidgui.core.scoring.calibration import fit_temperature, nll
from covidgui.core.scoring.metrics import expected_calibration_error, specificity_at_sensitivity, wilson_interval
from covidgui.core.inference.classifier import softmax
from tests.conftest import chest_like
from tests.test_cli import run_cli


def test_evaluate_json_on_a_generated_two_class_folder(tmp_path):
    for folder, count in (("covid", 3), ("NORMAL", 4)):  # case differs from the model's classes
        (tmp_path / folder).mkdir()
        for i in range(count):
            Image.fromarray(chest_like(160, seed=i + count)).save(tmp_path / folder / f"{i}.png")
    (tmp_path / "NORMAL" / "broken.png").write_bytes(b"not a png")
    out = run_cli("evaluate", tmp_path, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for key in ("n", "accuracy", "confusion_matrix", "classes", "sensitivity", "specificity", "auc",
                "rejected", "indeterminate"):
        assert key in report
    assert report["classes"] == ["Covid", "Normal"]
    cm = np.array(report["confusion_matrix"])
    assert cm.sum() == report["n"] == 7
    assert cm.sum(axis=1).tolist() == [3, 4]  # rows are the true classes
    assert report["accuracy"] == pytest.approx(np.trace(cm) / 7)
    assert 0 <= report["rejected"] <= 7 and 0 <= report["indeterminate"] <= 7
    assert list(report["unreadable"]) == [str(tmp_path / "NORMAL" / "broken.png")]


def test_evaluate_text_output(tmp_path):
    for folder in ("Covid", "Normal"):
        (tmp_path / folder).mkdir()
        Image.fromarray(chest_like(128)).save(tmp_path / folder / "a.png")
    out = run_cli("evaluate", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "confusion matrix" in out.stdout and "sensitivity" in out.stdout


def test_evaluate_measures_what_a_folder_with_some_of_the_classes_allows(tmp_path):
    # Only COVID-19 films: the COVID-19 row is measured; Normal's sensitivity cannot be, and says so.
    (tmp_path / "Covid").mkdir()
    for i in range(3):
        Image.fromarray(chest_like(128, seed=i)).save(tmp_path / "Covid" / f"{i}.png")
    out = run_cli("evaluate", tmp_path, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["n"] == 3 and report["missing_classes"] == ["Normal"]
    assert np.array(report["confusion_matrix"]).sum(axis=1).tolist() == [3, 0]
    assert report["per_class"]["Normal"]["sensitivity"] is None and report["auc"] is None
    text = run_cli("evaluate", tmp_path)
    assert "Normal: no images of this class in the folder" in text.stdout


def test_evaluate_reports_a_folder_with_none_of_the_classes(tmp_path):
    (tmp_path / "Pneumonia").mkdir()
    out = run_cli("evaluate", tmp_path)
    assert out.returncode == 2
    assert "no subfolder for class Covid, Normal" in out.stderr


def test_temperature_scaling_keeps_argmax_and_improves_nll():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    # Over-confident logits: right 80 % of the time, but with huge margins.
    signs = np.where(rng.random(400) < 0.8, 1, -1) * np.where(labels == 0, 1, -1)
    logits = np.column_stack([signs * 6.0, -signs * 6.0]) + rng.normal(0, 0.5, (400, 2))
    t = fit_temperature(logits, labels)
    assert t > 1.5  # softened
    before, after = softmax(logits), softmax(logits, t)
    assert np.allclose(after.sum(axis=1), 1.0)
    assert (before.argmax(axis=1) == after.argmax(axis=1)).all()
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    assert expected_calibration_error(after, labels) < expected_calibration_error(before, labels)


def test_specificity_at_sensitivity_is_the_best_roc_point_that_finds_enough_positives():
    # Positives score 4, 5, 6, 7 (1, 2 below the last negative); negatives 1, 2, 3, 4.5, 5.5.
    positive = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    scores = np.array([4, 5, 6, 7, 1, 2, 3, 4.5, 5.5])
    assert specificity_at_sensitivity(positive, scores, 0.75) == pytest.approx(4 / 5)  # threshold 5: 3 of 4 found
    assert specificity_at_sensitivity(positive, scores, 1.0) == pytest.approx(3 / 5)  # threshold 4: all found
    assert specificity_at_sensitivity(positive, scores, 0.25) == 1.0  # threshold 6: no negative above
    assert specificity_at_sensitivity(positive[:4], scores[:4], 0.85) is None


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(29, 29)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.8830, abs=1e-3)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_evaluate_reports_the_models_own_training_files_apart(covid_val):
    # covid-xray/Val: 38 of its 59 files are in the bundled model's train part and 14 in its
    # calibration part (recorded by content in the card's training.file_hashes).
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.scoring.evaluation import evaluate_folder, format_report

    report = evaluate_folder(covid_val, classifier=Classifier.load(lungs=False))
    parts = report["parts"]
    assert (parts["train"]["n"], parts["calibration"]["n"], parts["unseen"]["n"]) == (38, 14, 7)
    for part in parts.values():  # Indeterminate and rejected are outcomes of their own, never "right"
        assert part["right"] + part["wrong"] + part["indeterminate"] + part["rejected"] == part["n"]
        assert part["accuracy"] == part["right"] / part["n"]
    assert sum(p["indeterminate"] for p in parts.values()) > 0
    text = format_report(report)
    assert "trained on 38 and calibrated on 14 of these files" in text
    assert text.index("files it never saw") < text.index("files it was trained on")


def test_an_indeterminate_result_is_its_own_outcome():
    from types import SimpleNamespace

    from covidgui.core.scoring.evaluation import LabelledPredictions, outcomes

    results = [SimpleNamespace(not_xray=False, indeterminate=True), SimpleNamespace(not_xray=False, indeterminate=False),
               SimpleNamespace(not_xray=True, indeterminate=False), SimpleNamespace(not_xray=False, indeterminate=False)]
    predicted = LabelledPredictions(np.array([0, 0, 0, 1]), np.array([[0.8, 0.2], [0.9, 0.1], [0.9, 0.1], [0.7, 0.3]]),
                                    results, ["a"] * 4)
    got = outcomes(predicted, [0, 1, 2, 3], ["Covid", "Normal"])
    assert (got["right"], got["wrong"], got["indeterminate"], got["rejected"]) == (1, 1, 1, 1)
    assert got["accuracy"] == 0.25


def test_a_card_without_file_hashes_says_the_files_may_be_its_own(tmp_path):
    for folder in ("Covid", "Normal"):
        (tmp_path / folder).mkdir()
        Image.fromarray(chest_like(128)).save(tmp_path / folder / "a.png")
    from covidgui.core.data.dataset import short_file_hashes, scan_class_folders

    hashes = short_file_hashes(scan_class_folders(tmp_path))
    assert len(hashes) == 2 and all(len(h) == 16 for h in hashes) and hashes == sorted(hashes)
