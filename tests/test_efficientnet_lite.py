"""EfficientNet-Lite0 as a classifier: ImageNet weights land in the right layers, it trains, saves,
loads safely and explains itself like the compact CNN."""

from __future__ import annotations

import numpy as np
import pytest

from covidgui.core.errors import DatasetError
from covidgui.core.training.efficientnet_lite import STAGES, build_efficientnet_lite0
from covidgui.core.training.network import count_flops, new_network
from covidgui.core.training.train import TrainConfig, train
from tests.test_training_core import make_dataset


def torch_keys() -> list[str]:
    """The PyTorch port's state-dict prefixes of Lite0's convolutions and BatchNorms, in order."""
    keys, block = ["_conv_stem", "_bn0"], 0
    for repeats, _, _, expansion, _ in STAGES:
        for _ in range(repeats):
            prefix = f"_blocks.{block}."
            if expansion != 1:
                keys += [prefix + "_expand_conv", prefix + "_bn0"]
            keys += [prefix + "_depthwise_conv", prefix + "_bn1", prefix + "_project_conv", prefix + "_bn2"]
            block += 1
    return keys + ["_conv_head", "_bn1"]


def test_imagenet_weights_land_in_the_right_layers_the_right_way_round(tmp_path):
    """A state dict in PyTorch's layout (convolutions (out, in, k, k), depthwise (C, 1, k, k)) of
    random values: each Keras layer gets its own arrays, transposed to Keras' layout."""
    import keras

    def weighted_layers(model):
        kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.BatchNormalization)
        return [layer for layer in model.layers if isinstance(layer, kinds)]

    layers = weighted_layers(build_efficientnet_lite0(64, 2))
    keys = torch_keys()
    assert len(layers) == len(keys) == 2 * 49  # 49 convolutions, each with its BatchNorm
    rng, state, expected = np.random.default_rng(0), {}, []
    for layer, key in zip(layers, keys):
        if isinstance(layer, keras.layers.BatchNormalization):
            values = [rng.random(layer.gamma.shape).astype(np.float32) + 0.5 for _ in range(4)]
            for suffix, value in zip(("weight", "bias", "running_mean", "running_var"), values):
                state[f"{key}.{suffix}"] = value
            expected.append(values)
        else:
            kernel = rng.standard_normal(layer.kernel.shape).astype(np.float32)  # Keras (k, k, in, out)
            order = (2, 3, 0, 1) if isinstance(layer, keras.layers.DepthwiseConv2D) else (3, 2, 0, 1)
            state[f"{key}.weight"] = kernel.transpose(order)
            expected.append([kernel])
    np.savez(tmp_path / "lite0.npz", **state)

    loaded = build_efficientnet_lite0(64, 2, seed=1, imagenet=tmp_path / "lite0.npz")
    for layer, values in zip(weighted_layers(loaded), expected):
        for got, want in zip(layer.get_weights(), values):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)


def test_a_missing_or_foreign_weights_file_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        build_efficientnet_lite0(64, 2, imagenet=tmp_path / "absent.npz")
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(DatasetError, match="not EfficientNet-Lite0"):
        build_efficientnet_lite0(64, 2, imagenet=tmp_path / "other.npz")
    with pytest.raises(DatasetError, match="Unknown network architecture"):
        new_network("resnet", 64, 2)


def test_cost_counts_the_depthwise_convolutions():
    """Depthwise convolutions count too: Lite0 0.77 GFLOP at 224 px; the compact CNN stays 0.32 GFLOP."""
    assert count_flops(new_network("efficientnet-lite0", 224, 2)) == pytest.approx(0.77e9, rel=0.01)
    assert count_flops(new_network("compact", 224, 2)) == pytest.approx(0.3215e9, rel=0.001)


def test_lite0_trains_saves_and_explains_like_the_compact_network(tmp_path):
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.models.model_files import save_model

    files = make_dataset(tmp_path / "train", per_class=8)
    val = make_dataset(tmp_path / "val", per_class=4)
    result = train(files, val, TrainConfig(epochs=1, batch_size=8, input_size=64, patience=0,
                                           architecture="efficientnet-lite0"))
    card = result.classifier.card
    assert card.architecture["name"] == "efficientnet_lite0" and card.architecture["parameters"] > 3e6
    path = save_model(result.classifier, tmp_path / "lite.keras")
    loaded = Classifier.load(path)  # safe_mode: plain Keras layers only
    images = np.random.default_rng(1).random((3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(loaded.logits(images), result.classifier.logits(images), atol=1e-4)
    heatmap = loaded.gradcam(images[0], 1)
    assert heatmap.shape == (64, 64) and np.isfinite(heatmap).all() and 0 <= heatmap.min() <= heatmap.max() <= 1


def test_a_freeze_by_scale_stops_at_the_first_layer_at_that_fraction_of_the_input():
    """Adapting freezes the layers that work at 1/2 to 1/8 of the film's side ("scale:16"),
    whatever Keras named them in the process that built the network."""
    from covidgui.core.training.fit_loop import freeze_layers_before

    model = new_network("efficientnet-lite0", 64, 2)
    freeze_layers_before(model, "scale:16")
    sides = [layer.output.shape[1] if len(layer.output.shape) == 4 else None for layer in model.layers]
    first = next(i for i, layer in enumerate(model.layers) if layer.trainable)
    assert sides[first] == 4 and all(s is None or s > 4 for s in sides[:first])
    assert not any(layer.trainable for layer in model.layers[:first])
    assert all(layer.trainable for layer in model.layers[first:])
    assert type(model.layers[first]).__name__ == "DepthwiseConv2D"  # the stride-2 step to 1/16
    freeze_layers_before(model, "")
    assert all(layer.trainable for layer in model.layers)
    with pytest.raises(DatasetError, match="1/128"):
        freeze_layers_before(model, "scale:128")
