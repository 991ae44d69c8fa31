"""Storage harmonisation: every image stored as the 224-px sources were, in training and at inference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from covidgui.core.analysis.analyse import analyse
from covidgui.core.analysis.batch import predict_files
from covidgui.core.inference.classifier import Classifier
from covidgui.core.inference.preprocess import harmonise_storage, load_prepared, prepare
from covidgui.core.training.train import TrainConfig, make_sequence, train
from tests.conftest import chest_like
from tests.test_training_core import make_dataset


@pytest.fixture
def large_png(tmp_path):
    path = tmp_path / "large.png"
    Image.fromarray(chest_like(1024, seed=3)).save(path)
    return path


def stored_as_the_small_sources(path, out):
    """The COVID-19 Radiography Database's chain, by hand: 299 x 299, then 224 x 224 JPEG q90."""
    Image.open(path).resize((299, 299), Image.Resampling.BILINEAR).resize(
        (224, 224), Image.Resampling.BILINEAR).save(out, quality=90)
    return out


def sharpness(x: np.ndarray) -> float:
    """Mean step between neighbouring pixels: what a resampling chain takes away."""
    return float(np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean())


def test_how_a_film_was_stored_no_longer_reaches_the_model(tmp_path, large_png):
    small = stored_as_the_small_sources(large_png, tmp_path / "small.jpg")

    def ratio(harmonise):
        large_input, small_input = (load_prepared(p, 224, harmonise=harmonise)[1].input for p in (large_png, small))
        return sharpness(large_input) / sharpness(small_input)

    # The same film stored two ways: today the one stored large reaches the model visibly sharper
    # (a cue to its source); harmonised, both arrive alike.
    assert ratio(harmonise=False) > 1.4
    assert ratio(harmonise=True) == pytest.approx(1.0, abs=0.1)


def test_harmonised_crop_box_is_in_the_source_pixels(tmp_path):
    film = np.full((800, 1000), 0, np.uint8)
    film[80:720, 100:900] = chest_like(1024, seed=4)[:640, :800]  # a black frame around the film
    path = tmp_path / "framed.png"
    Image.fromarray(film).save(path)
    usual = load_prepared(path, 224, reduced=False)[1]
    harmonised = load_prepared(path, 224, reduced=False, harmonise=True)[1]
    assert harmonised.input.shape == (224, 224) and harmonised.input.dtype == np.float32
    np.testing.assert_allclose(harmonised.crop_box, usual.crop_box, atol=8)  # 224 -> 1000 px: 4.5 px a step


@pytest.fixture
def harmonising(bundled_classifier):
    """The bundled network with a card that says its inputs are harmonised."""
    card = bundled_classifier.card
    card = replace(card, preprocessing={**card.preprocessing, "harmonise_storage": True})
    return Classifier(bundled_classifier.graph, card, gate=bundled_classifier.gate, lungs=bundled_classifier.lungs)


def test_a_harmonising_model_gets_harmonised_inputs_on_every_path(harmonising, bundled_classifier, large_png):
    assert harmonising.harmonises and not bundled_classifier.harmonises
    single = harmonising.predict_file(large_png, heatmap=True)
    xray = load_prepared(large_png, 224)[0]
    by_hand = harmonising.predict_inputs(prepare(harmonise_storage(xray.pixels), 224).input[None])[0]
    assert single.probabilities == pytest.approx(by_hand.probabilities, abs=1e-6)
    assert single.probabilities != pytest.approx(bundled_classifier.predict_file(large_png).probabilities, abs=1e-6)
    window = analyse(harmonising, large_png).prediction
    [batch] = list(predict_files(harmonising, [large_png]))
    for other in (window, batch):
        assert other.probabilities == pytest.approx(single.probabilities, abs=1e-6)


def test_training_harmonises_and_the_card_says_so(tmp_path):
    files = make_dataset(tmp_path / "train", per_class=6, size=64)
    seq = make_sequence(files.paths, files.labels, 32, 4, False, 0, harmonise=True)
    x, _, _ = seq.clean(0)
    pixels = load_prepared(files.paths[seq.batch_indices(0)[0]], 32)[0].pixels
    np.testing.assert_array_equal(x[0, ..., 0], prepare(harmonise_storage(pixels), 32).input)

    result = train(files, make_dataset(tmp_path / "val", per_class=3, size=64),
                   TrainConfig(epochs=1, batch_size=4, input_size=32, patience=0, harmonise_storage=True,
                               lung_guidance=0.0))
    card = result.classifier.card
    assert card.preprocessing["harmonise_storage"] is True and result.classifier.harmonises
    assert any("JPEG" in step for step in card.preprocessing["steps"])
