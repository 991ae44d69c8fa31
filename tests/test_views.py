"""Test-time views: a model whose card lists views answers with its logits averaged over the film
and those views, everywhere it is run (its graph, a graph re-made from the .keras, training's own
scoring), and explains and gates on the film itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from covidgui.core.errors import ModelError
from covidgui.core.inference.classifier import Classifier
from covidgui.core.inference.views import CARD_KEY
from covidgui.core.models.model_files import companion_path, save_model
from covidgui.core.models.modelcard import ModelCard, card_path
from covidgui.core.training.train import build_classifier

SIZE = 32
VIEWS = ["mirrored", "zoom90", "zoom95"]
HALF = {"rtol": 5e-3, "atol": 1e-3}  # the graph's float16 weights (tests/test_runtime.py)


def _card(views=None) -> ModelCard:
    return ModelCard(name="tiny", version="0", classes=["Covid", "Normal"], input_size=SIZE,
                     preprocessing={CARD_KEY: list(views)} if views else {})


def _films(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    # Asymmetric films, so a mirror image or a zoom changes what the network sees.
    return np.stack([np.clip(x * (1 + i) * 0.4 + y ** 2 * 0.3 + rng.random((SIZE, SIZE)) * 0.3, 0, 1)
                     for i in range(n)]).astype(np.float32)


def _by_hand(network, films: np.ndarray, views=VIEWS) -> np.ndarray:
    """The mean of the network's logits over the film and each view, each computed here on its
    own: the mirror image, the central 90 % or 95 % resized back, or the film shrunk to 80 % by the
    preprocessing's resize and read by a copy of the network that takes that size."""
    import tensorflow as tf

    from covidgui.core.inference.preprocess import resize
    from covidgui.core.inference.views import any_size_copy

    def zoom(keep):
        margin = int(round(SIZE * (1 - keep) / 2))
        crop = films[:, margin:SIZE - margin, margin:SIZE - margin, None]
        return np.asarray(tf.image.resize(crop, (SIZE, SIZE), method="bilinear"))

    side = SIZE - 2 * int(round(SIZE * 0.1))
    made = {"mirrored": lambda: films[:, :, ::-1, None], "zoom90": lambda: zoom(0.90), "zoom95": lambda: zoom(0.95),
            "scaled80": lambda: np.stack([resize(f, (side, side)) for f in films])[..., None]}
    logits = [np.asarray(network(films[..., None], training=False))]
    for name in views:
        view = made[name]()
        reader = network if view.shape[1] == SIZE else any_size_copy(network)
        logits.append(np.asarray(reader(view, training=False)))
    return np.mean(logits, axis=0)


@pytest.mark.parametrize("views", [VIEWS, ["scaled80"], ["mirrored", "scaled80"]])
def test_the_graph_averages_the_logits_over_the_views_and_keeps_the_films_own_features(views):
    network = build_classifier(SIZE, 2, 3)
    films = _films()
    with_views, alone = Classifier(network, _card(views)), Classifier(network, _card())
    np.testing.assert_allclose(with_views.logits(films), _by_hand(network, films, views), **HALF)
    assert not np.allclose(with_views.logits(films), alone.logits(films), **HALF)  # the views do count
    logits, features, maps, cam = with_views._explain(films)
    _, own_features, own_maps, own_cam = alone._explain(films)
    np.testing.assert_allclose(features, own_features, **HALF)
    np.testing.assert_allclose(maps, own_maps, **HALF)
    np.testing.assert_allclose(cam, own_cam, **HALF)


def test_a_saved_model_keeps_its_views_from_its_graph_and_when_the_graph_is_made_again(tmp_path):
    network = build_classifier(SIZE, 2, 4)
    films = _films()
    path = save_model(Classifier(network, _card(VIEWS)), tmp_path / "views.keras")
    expected = _by_hand(network, films)
    np.testing.assert_allclose(Classifier.load(path, lungs=False).logits(films), expected, **HALF)
    card = json.loads(card_path(path).read_text())
    del card["files"]["graph"]  # as a model saved before graphs: made from the .keras on load
    card_path(path).write_text(json.dumps(card))
    companion_path(path, "graph").unlink()
    np.testing.assert_allclose(Classifier.load(path, lungs=False).logits(films), expected, **HALF)


@pytest.mark.parametrize("views", [VIEWS, ["mirrored", "scaled80"]])
def test_training_scores_a_network_with_the_views_its_graph_will_use(tmp_path, views):
    """Adaptation's out-of-fold temperature and threshold come from these logits: they must be the
    ones the adapted model's graph gives."""
    from PIL import Image

    from covidgui.core.data.dataset import scan_class_folders
    from covidgui.core.io.images import load_xray
    from covidgui.core.training.fit_loop import network_logits
    from covidgui.core.training.recipe import TrainConfig

    films = _films(4)
    for i, film in enumerate(films):
        folder = tmp_path / ("Covid" if i % 2 else "Normal")
        folder.mkdir(exist_ok=True)
        Image.fromarray((film * 255).astype(np.uint8)).save(folder / f"{i}.png")
    files = scan_class_folders(tmp_path)
    network = build_classifier(SIZE, 2, 5)
    classifier = Classifier(network, _card(views))
    config = TrainConfig(input_size=SIZE, batch_size=2, test_time_views=",".join(views))
    scored = network_logits(network, files, config)
    graph = classifier.logits(np.stack([classifier.prepare(load_xray(p).pixels).input for p in files.paths]))
    np.testing.assert_allclose(np.stack([scored[str(p)] for p in files.paths]), graph, **HALF)
    plain = network_logits(network, files, TrainConfig(input_size=SIZE, batch_size=2))
    assert not np.allclose(np.stack([plain[str(p)] for p in files.paths]), graph, **HALF)


def test_adapting_a_model_keeps_its_views(tmp_path):
    from covidgui.core.training.adapt import adaptation_config

    path = save_model(Classifier(build_classifier(SIZE, 2, 6), _card(VIEWS)), tmp_path / "start.keras")
    assert adaptation_config(path).test_time_views == ",".join(VIEWS)


def test_a_card_asking_for_a_view_this_version_does_not_know_is_refused():
    with pytest.raises(ModelError, match="'sideways'"):
        Classifier(build_classifier(SIZE, 2, 7), _card(["mirrored", "sideways"]))


def test_a_film_costs_its_pass_and_each_views_pass_at_the_views_size():
    """The card's flops_per_image: a view of the film's size costs a pass; the film shrunk to 180 of
    224 px costs what the network costs at 180 px (about 0.65 of a pass)."""
    from covidgui.core.inference.views import any_size_copy
    from covidgui.core.training.network import count_flops, film_flops

    network = build_classifier(224, 2, 8)
    one = count_flops(network)
    at_180 = count_flops(any_size_copy(network, 180))
    assert 0.6 * one < at_180 < 0.7 * one
    assert film_flops(network) == one
    assert film_flops(network, ("mirrored", "zoom90")) == 3 * one
    assert film_flops(network, ("scaled80",)) == one + at_180
