"""The bundled model: it loads safely, predicts on real X-rays, and its card tells the truth."""

from __future__ import annotations

import numpy as np
import pytest

from covidgui.core.errors import ModelError
from covidgui.core.inference.classifier import Classifier, softmax
from covidgui.core.models.model_files import bundled_model_path
from covidgui.core.analysis.batch import predict_files


def test_bundled_model_is_small_and_has_a_card():
    path = bundled_model_path()
    assert path.is_file()
    # EfficientNet-Lite0's 3.4 M parameters, stored in float16 (v4.0.1 on): every bundled file
    # stays under 10 MB, which the repository keeps as its limit (float32 made 14 MB).
    for part in path.parent.iterdir():
        assert part.stat().st_size < 10 * 1024 * 1024, part.name
    assert path.with_suffix(".json").is_file()


def test_a_film_costs_the_bundled_model_what_its_card_says_within_the_allowed_capacity(bundled_classifier):
    """Issue 24 allows a film up to 1.5 GFLOP. The card's figure is the film's pass and its
    test-time views' passes (v4.1.0's four views cost 3.1 GFLOP and its card said 0.77)."""
    from covidgui.core.inference.views import card_views
    from covidgui.core.training.network import film_flops

    flops = bundled_classifier.card.architecture["flops_per_image"]
    assert flops == film_flops(bundled_classifier.keras_model, card_views(bundled_classifier.card))
    assert flops <= 1.5e9


def test_card_records_how_it_was_trained(bundled_classifier):
    card = bundled_classifier.card
    assert card.classes == ["Covid", "Normal"]
    assert card.training["command"].startswith("python scripts/train_bundled_model.py")
    assert len(card.training["split"]["train"]["sha256"]) == 64
    assert card.training["config"]["source_balance"] is True
    low, high = card.indeterminate_band
    assert 0.5 < high < 1 and low == pytest.approx(1 - high)


def test_predictions_on_val_are_probabilities(bundled_classifier, covid_val):
    """Calibrated probabilities of every Val image sum to 1 with the top one as confidence
    (tests/test_model_card_figures.py checks the card's figures against the model)."""
    paths = sorted((covid_val / "Covid").iterdir()) + sorted((covid_val / "Normal").iterdir())
    for r in predict_files(bundled_classifier, paths):
        assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert 0.5 <= r.confidence <= 1.0
        assert r.confidence == pytest.approx(max(r.probabilities.values()))


def test_batch_and_single_predictions_agree(bundled_classifier, chest_png, tmp_path):
    other = tmp_path / "other.png"
    other.write_bytes(chest_png.read_bytes())
    batch = list(predict_files(bundled_classifier, [chest_png, other]))
    single = bundled_classifier.predict_file(chest_png)
    assert batch[0].probabilities == pytest.approx(single.probabilities, abs=1e-5)


def test_bad_files_in_a_batch_are_returned_not_raised(bundled_classifier, chest_png, tmp_path):
    from covidgui.core.errors import ImageLoadError

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    results = list(predict_files(bundled_classifier, [bad, chest_png]))
    assert isinstance(results[0], ImageLoadError) and results[0].path == bad
    assert results[1].path == chest_png


def test_batched_gradcam_equals_one_image_at_a_time(bundled_classifier):
    from covidgui.core.inference.preprocess import prepare
    from tests.conftest import chest_like

    inputs = np.stack([prepare(chest_like(160, seed=i) / 255.0, bundled_classifier.input_size).input
                       for i in range(3)])
    classes = [0, 1, 0]
    together = bundled_classifier.gradcams(inputs, classes)
    assert together.shape == inputs.shape and together.dtype == np.float32
    for x, c, cam in zip(inputs, classes, together):
        np.testing.assert_allclose(cam, bundled_classifier.gradcam(x, c), atol=1e-4)
    # the two classes' maps differ: the score is one class's evidence over the other's
    assert not np.allclose(bundled_classifier.gradcam(inputs[0], 0), bundled_classifier.gradcam(inputs[0], 1))


def test_heatmap_has_the_image_shape_and_unit_range(bundled_classifier, chest_png):
    result = bundled_classifier.predict_file(chest_png, heatmap=True)
    from PIL import Image

    width, height = Image.open(chest_png).size
    assert result.heatmap.shape == (height, width)
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
    assert result.heatmap.std() > 0


def test_softmax_with_temperature_keeps_argmax_and_sums_to_one():
    logits = np.random.default_rng(0).normal(0, 4, (50, 3))
    for t in (0.5, 1.0, 3.0):
        p = softmax(logits, t)
        assert np.allclose(p.sum(axis=1), 1.0)
        assert (p.argmax(axis=1) == logits.argmax(axis=1)).all()


def test_missing_model_and_card(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Classifier.load(tmp_path / "none.keras")
    fake = tmp_path / "m.keras"
    fake.write_bytes(b"junk")
    with pytest.raises(ModelError, match="card"):
        Classifier.load(fake)
