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


def _fitted_on_random_directions(n_train: int, features: int = 1280):
    """A gate fitted on random feature vectors (nearly orthogonal in many dimensions)."""
    from covidgui.core.inference.gate import fit_gate

    rng = np.random.default_rng(0)

    def part(n):
        return (rng.random((n, 1024), dtype=np.float32), rng.standard_normal((n, features)), np.zeros(n))

    return fit_gate(part(n_train), part(40))


def test_a_training_film_is_not_its_own_nearest_neighbour():
    """Every training film is a reference here; counted as its own neighbour at distance 0, the
    training films' typical features score would be 4/5 of the calibration films' (about 1.13
    against 1.41 for random directions), and every new film would look unusual."""
    gate = _fitted_on_random_directions(60)
    assert gate.feature_references.shape[0] == 60
    assert gate.centres[1] == pytest.approx(np.sqrt(2), rel=0.05)


def test_the_features_score_in_blocks_is_the_score_at_once(monkeypatch):
    """Many films are measured a block at a time (memory); each block's films, a reference's own
    match left out, score as they would all at once."""
    from covidgui.core.inference import gate as gate_module

    rng = np.random.default_rng(4)
    references = rng.normal(size=(23, 8))
    whole = {skip: gate_module._nearest_distance(references, references, skip_self=skip) for skip in (False, True)}
    monkeypatch.setattr(gate_module, "QUERY_BLOCK", 5)
    for skip, expected in whole.items():
        np.testing.assert_allclose(gate_module._nearest_distance(references, references, skip_self=skip), expected)
    assert not np.allclose(whole[True], whole[False])  # leaving the own match out is what is checked


def test_the_gate_of_a_large_backbone_stays_small():
    """1,280 features and more training films than references: under 1 MB on disk (the
    Mahalanobis gate's precision matrix alone was 13 MB)."""
    gate = _fitted_on_random_directions(2500)
    assert gate.feature_references.shape == (2000, 64) and gate.feature_references.dtype == np.float16
    assert len(gate.to_bytes()) < 1024 * 1024


def test_a_gate_saved_before_the_nearest_neighbour_score_still_scores(tmp_path):
    """Gates fitted before 2026-12-04 (a user's saved models) hold a precision matrix and no
    references: they load and score the Mahalanobis distance from the mean, as they were fitted."""
    rng = np.random.default_rng(1)
    mean, precision = rng.random(8), np.diag(rng.random(8) + 0.5)
    InputGate(np.zeros(1024, np.float32), np.zeros((2, 1024), np.float32), mean, np.zeros(3), np.ones(3),
              np.full(3, 3.0), feature_precision=precision).save(tmp_path / "old.npz")
    old = InputGate.load(tmp_path / "old.npz")
    assert old.feature_references is None
    features = rng.random((3, 8))
    expected = np.sqrt(np.einsum("ij,jk,ik->i", features - mean, precision, features - mean))
    np.testing.assert_allclose(old.raw_scores(np.zeros((3, 1024)), features, np.zeros(3))[:, 1], expected)
