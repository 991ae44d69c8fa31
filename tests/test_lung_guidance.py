"""Lung guidance: the penalty on evidence outside the lungs, its masks, and training with it."""

from __future__ import annotations

import numpy as np
import pytest

from covidgui.core.inference import lungs
from covidgui.core.errors import DatasetError
from covidgui.core.training.lung_guidance import evidence_outside_share, training_mask
from covidgui.core.inference.preprocess import prepare
from covidgui.core.training.train import TrainConfig, build_classifier, train
from tests.test_lungs import ADULT_NORMAL
from tests.test_training_core import make_dataset


def features_at(rows: slice, cols: slice, size: int = 8, channels: int = 4) -> np.ndarray:
    """Feature maps (1, size, size, channels) that are non-zero only in one block."""
    features = np.zeros((1, size, size, channels), np.float32)
    features[0, rows, cols] = np.arange(1, channels + 1)
    return features


def test_evidence_share_is_one_outside_the_lungs_and_zero_inside():
    kernel = np.array([[1.0, -1.0], [0.5, 0.2], [-2.0, 1.0], [0.3, 0.3]], np.float32)
    lungs_fraction = np.zeros((1, 8, 8, 1), np.float32)
    lungs_fraction[0, 2:6, 1:4] = 1.0
    inside = np.asarray(evidence_outside_share(features_at(slice(2, 6), slice(1, 4)), kernel, lungs_fraction))
    outside = np.asarray(evidence_outside_share(features_at(slice(0, 2), slice(5, 8)), kernel, lungs_fraction))
    assert inside.shape == (1,) and inside[0] == pytest.approx(0.0, abs=1e-6)
    assert outside[0] == pytest.approx(1.0, abs=1e-6)
    # Half the (equal) evidence in each: half outside.
    both = features_at(slice(2, 6), slice(1, 4)) + features_at(slice(0, 4), slice(5, 8))
    assert np.asarray(evidence_outside_share(both, kernel, lungs_fraction))[0] == pytest.approx(0.5, abs=1e-6)


def test_evidence_against_the_other_class_counts_too():
    """A class-neutral feature (same weight for both classes) is no evidence; a sign flip is."""
    neutral = np.array([[1.0, 1.0]], np.float32)
    lungs_fraction = np.zeros((1, 8, 8, 1), np.float32)
    lungs_fraction[0, :4] = 1.0
    features = features_at(slice(4, 8), slice(0, 8), channels=1)  # all outside
    assert np.asarray(evidence_outside_share(features, neutral, lungs_fraction))[0] == pytest.approx(0.0, abs=1e-6)
    against = np.array([[-1.0, 1.0]], np.float32)
    assert np.asarray(evidence_outside_share(features, against, lungs_fraction))[0] == pytest.approx(1.0, abs=1e-6)


def test_guided_fit_model_adds_the_weighted_penalty_and_returns_the_logits():
    import keras

    classifier = build_classifier(32, 2, seed=0)
    from covidgui.core.training.fit_model import build_fit_model

    fit_model = build_fit_model(classifier, None, 2, guidance=2.0)
    rng = np.random.default_rng(0)
    image = rng.random((3, 32, 32, 1)).astype(np.float32)
    mask = np.zeros((3, 32, 32, 1), np.float32)
    mask[:, 8:24, 4:14] = 1.0
    logits = np.asarray(fit_model(np.concatenate([image, mask], axis=-1), training=False))
    np.testing.assert_allclose(logits, np.asarray(classifier(image, training=False)), rtol=1e-5, atol=1e-5)
    features = keras.Model(classifier.input, classifier.get_layer("embedding").input)(image, training=False)
    fraction = keras.ops.average_pool(mask, pool_size=16, strides=16, padding="valid")
    expected = 2.0 * float(np.mean(evidence_outside_share(features, classifier.get_layer("logits").kernel, fraction)))
    assert len(fit_model.losses) == 1
    assert float(fit_model.losses[0]) == pytest.approx(expected, rel=1e-4)
    assert 0.0 < expected < 2.0


@pytest.fixture(scope="module")
def segmenter():
    if not lungs.bundled_segmenter_path().is_file():
        pytest.skip("no bundled lung model (models/lung_segmenter.keras)")
    return lungs.LungSegmenter.load()


def test_training_mask_is_all_ones_without_plausible_lungs(segmenter):
    flat = np.full((64, 64), 0.5, np.float32)
    mask = training_mask(segmenter, flat)
    assert mask.shape == (64, 64) and mask.dtype == np.float32 and mask.min() == 1.0


def test_training_mask_of_a_real_xray_covers_its_lungs(segmenter):
    path = ADULT_NORMAL / segmenter.card["training"]["held_back"][0]
    if not path.is_file():
        pytest.skip(f"shared data not found at {ADULT_NORMAL} (set COVIDGUI_SHARED_DATA to its folder)")
    from covidgui.core.io.images import load_xray

    model_input = prepare(load_xray(path, max_side=224).pixels, 224).input
    lungs_only = training_mask(segmenter, model_input, margin=0.0)
    assert set(np.unique(lungs_only)) == {0.0, 1.0}
    assert 0.15 < lungs_only.mean() < 0.5  # the hand-drawn masks span 15..46 % of the input
    assert lungs.check_lungs(lungs_only > 0.5).plausible
    # The default margin widens the lungs (it may join them across the mediastinum) but keeps them.
    with_margin = training_mask(segmenter, model_input)
    assert np.all(with_margin >= lungs_only) and lungs_only.mean() < with_margin.mean() < 0.7


def test_training_with_lung_guidance_runs_and_records_it(segmenter, tmp_path):
    files = make_dataset(tmp_path / "train", per_class=8)
    result = train(files, files, TrainConfig(epochs=1, batch_size=8, input_size=32, patience=0, lung_guidance=1.0))
    guidance = result.classifier.card.training["lung_guidance"]
    # Images the segmenter finds no plausible lungs in get an all-ones mask (no guidance); the card
    # counts them.
    from covidgui.core.io.images import load_xray

    unguided = sum(training_mask(segmenter, prepare(load_xray(p, max_side=32).pixels, 32).input).min() == 1.0
                   for p in files.paths)
    assert guidance["images_without_plausible_lungs"] == unguided
    assert result.classifier.card.training["config"]["lung_guidance"] == 1.0
    assert result.report["n"] == 16
    # The saved model is the plain classifier: one greyscale channel in.
    assert result.classifier.keras_model.input_shape == (None, 32, 32, 1)


def test_lung_guidance_without_the_lung_model_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(lungs, "bundled_segmenter_path", lambda: tmp_path / "absent.keras")
    files = make_dataset(tmp_path / "train", per_class=4)
    with pytest.raises(DatasetError, match="lung model"):
        train(files, files, TrainConfig(epochs=1, input_size=32, lung_guidance=1.0))



def test_the_source_adversary_adds_its_loss_and_reverses_the_gradient_to_the_features():
    import tensorflow as tf

    from covidgui.core.training.fit_model import _reverse_gradient, build_fit_model

    classifier = build_classifier(32, 2, seed=0)
    # sources 0 and 1 are COVID-19 collections, 2 a normal one
    fit_model = build_fit_model(classifier, None, 1, source_classes=[0, 0, 1], adversary_weight=0.5)
    image = np.random.default_rng(0).random((4, 32, 32, 1)).astype(np.float32)
    logits = np.asarray(fit_model((image, np.array([0, 1, 2, 0], np.int32)), training=False))
    np.testing.assert_allclose(logits, np.asarray(classifier(image, training=False)), rtol=1e-5, atol=1e-5)
    assert len(fit_model.losses) == 1 and float(fit_model.losses[0]) > 0
    # A normal image's only same-class source is its own: nothing to tell apart, no loss.
    fit_model((image[:1], np.array([2], np.int32)), training=False)
    assert float(fit_model.losses[0]) == pytest.approx(0.0, abs=1e-6)
    x = tf.constant([1.0, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(3.0 * _reverse_gradient(x))
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [-3.0, -3.0])
