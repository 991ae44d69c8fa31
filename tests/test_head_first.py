"""Fitting a started network's logits layer before fine-tuning (LP-FT, issue 25): the head
written back into the network gives the fitted logistic regression's scores, a one-class set
leaves it alone, and an adaptation with ``head_first`` fits it before its first step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from covidgui.core.data.dataset import scan_class_folders
from covidgui.core.training.head_first import HEAD_C, fit_head
from tests.tiny_data import make_class_folders


def tiny_network(seed=0):
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(6, activation="relu", name="embedding",
                           kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    outputs = keras.layers.Dense(2, name="logits", kernel_initializer=keras.initializers.GlorotUniform(seed + 1))(x)
    return keras.Model(inputs, outputs)


def films(n=60, seed=0):
    """(x (n, 8, 8, 1), y (n,)): class 1 a little brighter, the rest noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0.5, 0.2, (n, 8, 8, 1)).astype(np.float32) + 0.15 * y[:, None, None, None]
    return x, y


def test_the_written_head_gives_the_fitted_regressions_scores():
    import keras
    from sklearn.linear_model import LogisticRegression

    network = tiny_network()
    x, y = films()
    fit_head(network, [(x[:32], y[:32]), (x[32:], y[32:])], "embedding")
    embedding = np.asarray(keras.Model(network.input, network.get_layer("embedding").output)(x), np.float64)
    mean, scale = embedding.mean(axis=0), embedding.std(axis=0) + 1e-6
    regression = LogisticRegression(C=HEAD_C, class_weight="balanced", max_iter=5000)
    regression.fit((embedding - mean) / scale, y)
    logits = np.asarray(network(x))
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], regression.decision_function((embedding - mean) / scale),
                               rtol=1e-4, atol=1e-4)


def test_a_set_of_one_class_leaves_the_head_as_it_was():
    network = tiny_network()
    before = [w.copy() for w in network.get_layer("logits").get_weights()]
    x, y = films()
    fit_head(network, [(x[y == 1], y[y == 1])], "embedding")
    for a, b in zip(before, network.get_layer("logits").get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("head_first", [True, False])
def test_an_adaptation_fits_the_head_before_fine_tuning_only_when_asked(tmp_path, monkeypatch, head_first):
    """With head_first the head is fitted once, on the clean training films, before fit's first
    step; without it, never. (A new network has no head worth fitting: only with start_from.)"""
    from covidgui.core.models.model_files import save_model
    from covidgui.core.training import head_first as head_module
    from covidgui.core.training.adapt import adaptation_config
    from covidgui.core.training.train import TrainConfig, train

    quick = dict(epochs=1, batch_size=8, augment=False, lung_guidance=0.0, patience=0)
    files = scan_class_folders(make_class_folders(tmp_path / "site", {"Covid": 6, "Normal": 6}, size=32))
    start = save_model(train(files, files, TrainConfig(input_size=32, **quick), name="start", version="1",
                             positive_class="Covid").classifier, tmp_path / "start.keras")
    seen = []
    real = head_module.fit_head

    def spy(network, batches, layer, **kwargs):
        batches = list(batches)
        seen.append(sum(len(y) for _, y in batches))
        real(network, batches, layer, **kwargs)

    monkeypatch.setattr(head_module, "fit_head", spy)
    config = replace(adaptation_config(start, TrainConfig(**quick)), epochs=1, head_first=head_first)
    train(files, files, config, measure=False)
    assert seen == ([len(files)] if head_first else [])
