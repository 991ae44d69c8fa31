"""The input gate: non-X-rays get "not a chest X-ray", real X-rays pass."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from covidgui.core.inference.gate import InputGate, gate_path
from covidgui.core.inference.classifier import NOT_XRAY
from covidgui.core.models.model_files import bundled_model_path
from covidgui.core.analysis.batch import predict_files


def test_the_bundled_model_has_a_gate():
    assert gate_path(bundled_model_path()).is_file()


def test_gate_rejects_noise(bundled_classifier, tmp_path):
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (600, 800), dtype=np.uint8)).save(path)
    result = bundled_classifier.predict_file(path)
    assert result.not_xray and result.label == NOT_XRAY
    assert result.gate_score > 1
    # "classify anyway" still gives the classifier's answer
    assert result.classify_anyway().label in ("COVID-19", "Normal", "Indeterminate")


def test_gate_rejects_a_package_shipped_photograph(bundled_classifier, tmp_path):
    import matplotlib.cbook as cbook

    path = tmp_path / "portrait.jpg"
    Image.open(cbook.get_sample_data("grace_hopper.jpg")).save(path)
    assert bundled_classifier.predict_file(path).not_xray


def test_gate_rejects_a_skimage_photograph(bundled_classifier, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    path = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(path)
    assert bundled_classifier.predict_file(path).not_xray


def test_gate_accepts_real_val_xrays(bundled_classifier, covid_val):
    paths = sorted((covid_val / "Covid").iterdir()) + sorted((covid_val / "Normal").iterdir())
    rejected = [r.path.name for r in predict_files(bundled_classifier, paths) if r.not_xray]
    assert len(rejected) <= 1, rejected  # the target is at most 2 % of real X-rays


def test_gate_round_trips_through_its_file(bundled_classifier, tmp_path):
    gate = bundled_classifier.gate
    gate.save(tmp_path / "g.npz")
    again = InputGate.load(tmp_path / "g.npz")
    for name in gate.__dataclass_fields__:
        assert np.array_equal(getattr(gate, name), getattr(again, name))
