"""The classifier's network and the geometric augmentation in front of it while it trains.

Imports Keras inside each function, so importing this module stays light.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from covidgui.core.errors import DatasetError
from covidgui.core.inference.classifier import EMBEDDING_LAYER, HEATMAP_LAYER
from covidgui.core.inference.keras_env import quiet_tensorflow
from covidgui.core.inference.runtime import load_keras
from covidgui.core.inference.views import any_size_copy, flops_per_film
from covidgui.core.models.modelcard import read_card


def build_classifier(input_size: int, n_classes: int, seed: int = 0, width: float = 1.0):
    """A compact CNN: greyscale (S, S, 1) in 0..1 -> (n_classes,) logits.

    Two strided convolutions (16, 32 channels) bring the image to 1/4 resolution cheaply, two
    more (64, 128) each followed by max-pooling to 1/16, then a 128-channel convolution named
    ``last_conv`` for Grad-CAM, global average pooling and one dense layer. About 0.32 GFLOP and
    0.25 M parameters at 224 x 224 (see ``count_flops``); ``width`` multiplies every channel count
    (the cost grows with its square).
    Rescaling to -1..1 lives inside the model, as the design asks.
    """
    quiet_tensorflow()
    import keras
    from keras import layers

    init = keras.initializers.HeNormal(seed=seed)

    def conv(x, filters, name=None, stride=1):
        filters = max(4, round(filters * width))
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                          kernel_initializer=init, name=name)(x)
        # Momentum 0.9, not Keras' 0.99: with ~25 steps an epoch the slower moving averages lag
        # the weights, and inference-mode outputs drift from training-mode ones (seen here as a
        # validation AUC of 0.97 with most COVID cases below the 0.5 threshold).
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inputs = keras.Input((input_size, input_size, 1), name="xray")
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = conv(x, 16, stride=2)  # 1/2
    x = conv(x, 32, stride=2)  # 1/4
    x = conv(x, 64)
    x = layers.MaxPooling2D()(x)  # 1/8
    x = conv(x, 128)
    x = layers.MaxPooling2D()(x)  # 1/16
    x = conv(x, 128, name=HEATMAP_LAYER)
    # The head computes in float32 even when the convolutions train in bfloat16 (training.precision):
    # the pooled mean and the logits keep their precision. No change to a network built in float32.
    x = layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER, dtype="float32")(x)
    x = layers.Dropout(0.3, seed=seed, dtype="float32")(x)
    outputs = layers.Dense(n_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                           name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="covid_cnn")


def new_network(architecture: str, input_size: int, n_classes: int, seed: int = 0, width: float = 1.0,
                pretrained_weights: str | Path = ""):
    """A new classifier network of ``architecture`` (TrainConfig.architecture): "compact"
    (:func:`build_classifier`) or "efficientnet-lite0" (starting from ``pretrained_weights`` when
    given). Raises DatasetError for another name."""
    if architecture == "compact":
        return build_classifier(input_size, n_classes, seed, width)
    from covidgui.core.training import efficientnet_lite

    if architecture == efficientnet_lite.ARCHITECTURE:
        return efficientnet_lite.build_efficientnet_lite0(input_size, n_classes, seed, pretrained_weights or None)
    raise DatasetError(f"Unknown network architecture {architecture!r}: use compact or "
                       f"{efficientnet_lite.ARCHITECTURE}.")


def starting_network(path: str | Path, input_size: int, classes: list[str]):
    """The Keras network of a saved classifier to train further (``TrainConfig.start_from``), for
    the data's ``classes``.

    A model of fewer classes, all among ``classes`` (a two-class model grown into three), gets a
    new logits layer: each class it knew keeps its weights (matched by name, case-insensitively),
    each new class starts from zero weights and the mean bias, so the grown model first calls what
    the old one did. Raises DatasetError when the input size does not fit, or when the model knows
    a class the data does not have."""
    import keras

    network = load_keras(Path(path), "model to start from")
    inputs, card_classes = network.input_shape, read_card(path).classes
    known, wanted = [c.lower() for c in card_classes], [c.lower() for c in classes]
    # The card's classes must also be the network's outputs: a card that disagrees would match
    # the logits to the wrong classes.
    fits = network.output_shape[-1] == len(known) and set(known) <= set(wanted)
    if tuple(inputs[1:3]) != (input_size, input_size) or not fits:
        raise DatasetError(f"The model to start from ({Path(path).name}) takes {inputs[1]} x {inputs[2]} px and "
                           f"gives {network.output_shape[-1]} outputs for the classes {', '.join(card_classes)}; "
                           f"this training needs {input_size} px and the classes {', '.join(classes)}.")
    if known == wanted:
        return network
    old = network.get_layer("logits")
    kernel, bias = old.get_weights()
    new_kernel = np.zeros((kernel.shape[0], len(wanted)), kernel.dtype)
    new_bias = np.full(len(wanted), bias.mean(), bias.dtype)
    for j, name in enumerate(wanted):
        if name in known:
            new_kernel[:, j], new_bias[j] = kernel[:, known.index(name)], bias[known.index(name)]
    logits = keras.layers.Dense(len(wanted), name="logits")
    grown = keras.Model(network.input, logits(old.input), name=network.name)
    logits.set_weights([new_kernel, new_bias])
    return grown


def build_augmentation(seed: int):
    """Random changes a radiograph can show without changing its diagnosis (training only): a
    rotation of up to +-10.8 degrees, a zoom by 0.9-1.15 and a shift of up to 6 % each way, as
    Keras' RandomRotation(0.03), RandomZoom((-0.1, 0.15)) and RandomTranslation(0.06, 0.06) draw
    them, applied in one resampling (:class:`RandomPlacement`).

    No intensity changes: histogram equalisation already removes exposure and contrast
    differences, and noise or contrast jitter shifted the BatchNorm statistics away from what
    clean inputs produce.
    """
    from covidgui.core.training.placement import RandomPlacement

    return RandomPlacement(seed=seed, name="augmentation")


def count_flops(model) -> int:
    """Floating-point operations (a multiply-add counts 2) of one forward pass, for the layers
    that dominate a CNN's cost (convolutions and dense layers)."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):  # one filter per channel
            _, h, w, channels = layer.output.shape
            k_h, k_w = layer.kernel_size
            total += 2 * h * w * k_h * k_w * channels
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w = layer.kernel_size
            c_in = layer.input.shape[-1]
            total += 2 * h * w * k_h * k_w * c_in * c_out
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def film_flops(model, views: tuple[str, ...] = ()) -> int:
    """What one film costs a classifier: its pass (:func:`count_flops`) and each test-time view's,
    counted on the network at the view's size (covidgui.core.inference.views)."""
    size = model.input_shape[1]
    return flops_per_film(lambda side: count_flops(model if side == size else any_size_copy(model, side)), size, views)
