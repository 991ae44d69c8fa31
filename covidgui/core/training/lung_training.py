"""Training the lung segmenter on image + hand-drawn mask pairs, with the shared preprocessing.

:func:`load_pairs` prepares each image exactly as inference does (:func:`covidgui.core.inference.preprocess.prepare`)
and applies the same crop box and resize to its mask; :func:`build_unet` is a compact U-Net;
:func:`train_segmenter` fits it with augmentation that moves image and mask together;
:func:`held_back_dice` measures it in source-image space, the way the app uses it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidgui.core.inference.keras_env import quiet_tensorflow
from covidgui.core.inference.lungs import LungSegmenter, dice
from covidgui.core.inference.preprocess import load_prepared, resize
from covidgui.core.io.images import load_xray
from covidgui.core.models.half_weights import save_keras_half
from covidgui.core.models.model_files import write_model_set


@dataclass
class LungTrainConfig:
    """Settings that train the bundled lung model (about 3 CPU-minutes on two cores)."""

    input_size: int = 128
    base_filters: int = 8
    depth: int = 4
    epochs: int = 40
    batch_size: int = 8
    learning_rate: float = 3e-3
    seed: int = 0
    # Paint random soft opacities inside the lungs of half the training images (mask unchanged):
    # the masks are all of normal lungs, and without this the model leaves consolidated COVID-19
    # lung out of the lung field, which is exactly where the classifier should look.
    opacities: bool = True


def mask_path(image_path: Path) -> Path:
    """``DIR/NAME.jpg`` -> ``DIR/masks/NAME.png`` (the adult-normal layout)."""
    return image_path.parent / "masks" / (image_path.stem + ".png")


def read_mask(path: Path) -> np.ndarray:
    """A hand-drawn mask file (8-bit, 255 = lung) -> bool (H, W)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 127


def prepare_pair(image_path: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(model input (S, S) 0..1, soft lung target (S, S) 0..1) for one image and its mask."""
    # Inference's decode and preprocessing, at the stored size: the mask was drawn at that size.
    xray, prepared = load_prepared(image_path, size, reduced=False)
    truth = read_mask(mask_path(image_path))
    if truth.shape != xray.pixels.shape:
        raise ValueError(f"{image_path.name}: mask {truth.shape} and image {xray.pixels.shape} differ in size")
    left, top, right, bottom = prepared.crop_box
    target = resize(truth[top:bottom, left:right].astype(np.float32), (size, size))
    return prepared.input, np.clip(target, 0.0, 1.0)


def load_pairs(image_paths: list[Path], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (N, S, S) float32 for every image (decoded in a thread pool)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        pairs = list(pool.map(lambda p: prepare_pair(p, size), image_paths))
    return np.stack([x for x, _ in pairs]), np.stack([y for _, y in pairs])


def build_unet(input_size: int = 128, base_filters: int = 8, depth: int = 4, seed: int = 0):
    """A compact U-Net: (S, S, 1) 0..1 -> lung probability (S, S, 1) 0..1.

    ``depth`` poolings with two 3 x 3 convolutions (BatchNorm, ReLU) per level, filters doubling
    from ``base_filters``; transposed convolutions up, skip connections across. At 128 px, 8 base
    filters and depth 4: about 0.47 M parameters (under 2 MB). Rescaling to -1..1 is in the model.
    """
    quiet_tensorflow()
    import keras
    from keras import layers

    init = keras.initializers.HeNormal(seed=seed)

    def block(x, filters):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
        return x

    inputs = keras.Input((input_size, input_size, 1), name="xray")
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    skips = []
    for level in range(depth):
        x = block(x, base_filters * 2 ** level)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = block(x, base_filters * 2 ** depth)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(base_filters * 2 ** level, 2, strides=2, kernel_initializer=init)(x)
        x = layers.Concatenate()([x, skips[level]])
        x = block(x, base_filters * 2 ** level)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="lung_probability")(x)
    return keras.Model(inputs, outputs, name="lung_unet")


def _augmenter(seed: int):
    """Changes a radiograph can show (small rotation, zoom, shift; contrast, brightness, noise).

    No flips: left and right lungs differ (the heart), and a flipped film is not a normal input.
    Geometry is applied to image and mask stacked as two channels, so they move together.
    """
    import keras
    from keras import layers

    geometry = keras.Sequential([
        layers.RandomRotation(0.03, fill_mode="constant", seed=seed),  # +-11 degrees
        layers.RandomZoom((-0.15, 0.2), fill_mode="constant", seed=seed + 1),
        layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed + 2),
    ])
    intensity = keras.Sequential([
        layers.RandomContrast(0.2, value_range=(0.0, 1.0), seed=seed + 3),
        layers.RandomBrightness(0.1, value_range=(0.0, 1.0), seed=seed + 4),
        layers.GaussianNoise(0.02, seed=seed + 5),
    ])
    return geometry, intensity


def add_opacities(image, mask):
    """Brighten 1..3 random Gaussian patches inside the lungs of about half the images.

    image, mask: tensors (B, S, S, 1) 0..1; returns the image, clipped to 0..1.
    """
    import tensorflow as tf

    shape = tf.shape(image)
    batch, size = shape[0], shape[1]
    grid = tf.linspace(0.0, 1.0, size)
    yy, xx = tf.meshgrid(grid, grid, indexing="ij")  # (S, S)
    centres = tf.random.uniform((batch, 3, 2), 0.15, 0.85)
    sigma = tf.random.uniform((batch, 3, 1, 1), 0.04, 0.15)
    strength = tf.random.uniform((batch, 3, 1, 1), 0.0, 0.5)
    strength *= tf.cast(tf.random.uniform((batch, 1, 1, 1)) < 0.5, tf.float32)  # half the images
    d2 = (yy[None, None] - centres[..., 0, None, None]) ** 2 + (xx[None, None] - centres[..., 1, None, None]) ** 2
    patches = tf.reduce_sum(strength * tf.exp(-d2 / (2.0 * sigma ** 2)), axis=1)[..., None]  # (B, S, S, 1)
    return tf.clip_by_value(image + patches * mask, 0.0, 1.0)


def dice_loss(y_true, y_pred):
    """Binary cross-entropy plus (1 - soft Dice): cross-entropy for early steps, Dice for the overlap."""
    import keras
    from keras import ops

    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    soft_dice = (2.0 * inter + 1.0) / (total + 1.0)
    return keras.losses.binary_crossentropy(y_true, y_pred, axis=(1, 2, 3)) + (1.0 - soft_dice)


def train_segmenter(inputs: np.ndarray, targets: np.ndarray, config: LungTrainConfig,
                    on_epoch=None) -> LungSegmenter:
    """Fit a U-Net on prepared inputs and targets (N, S, S) 0..1; returns it as a LungSegmenter.

    on_epoch(epoch, logs) is called after each epoch. Training uses all epochs (no selection on
    the held-back masks, which stay untouched for the reported Dice).
    """
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    model = build_unet(config.input_size, config.base_filters, config.depth, config.seed)
    geometry, intensity = _augmenter(config.seed)

    def augment(x, y):
        both = geometry(tf.concat([x, y], axis=-1), training=True)
        mask = tf.clip_by_value(both[..., 1:], 0.0, 1.0)
        image = both[..., :1]
        if config.opacities:
            image = add_opacities(image, mask)
        image = tf.clip_by_value(intensity(image, training=True), 0.0, 1.0)
        return image, mask

    data = (tf.data.Dataset.from_tensor_slices((inputs[..., None].astype(np.float32),
                                                targets[..., None].astype(np.float32)))
            .shuffle(len(inputs), seed=config.seed, reshuffle_each_iteration=True)
            .batch(config.batch_size)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(2))
    steps = int(np.ceil(len(inputs) / config.batch_size)) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=dice_loss)
    callbacks = []
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, logs)))
    model.fit(data, epochs=config.epochs, callbacks=callbacks, verbose=0)
    # Re-estimate BatchNorm statistics on clean images (training saw augmented ones); see
    # covidgui.core.training.train.recalibrate_batch_norm for why this matters.
    for start in range(0, len(inputs), config.batch_size):
        model(inputs[start:start + config.batch_size, ..., None], training=True)
    # A fresh, uncompiled copy: the saved file then holds the weights only, not Adam's state
    # (which would triple its size).
    clean = build_unet(config.input_size, config.base_filters, config.depth, config.seed)
    clean.set_weights(model.get_weights())
    return LungSegmenter(clean, {"input_size": config.input_size, "threshold": 0.5})


def held_back_dice(segmenter: LungSegmenter, image_paths: list[Path], max_side: int | None = None) -> dict[str, float]:
    """Dice in source-image space (the hand-drawn mask's resolution) for each image: name -> Dice.

    max_side: decode as the app does (JPEG draft mode) when given; the mask is then compared after
    resizing the predicted mask to the hand-drawn one's size.
    """
    scores = {}
    for path in image_paths:
        truth = read_mask(mask_path(path))
        predicted = segmenter.segment(load_xray(path, max_side=max_side).pixels)
        if predicted.shape != truth.shape:
            predicted = resize(predicted.astype(np.float32), truth.shape) > 0.5
        scores[path.name] = dice(predicted, truth)
    return scores


def save_segmenter(segmenter: LungSegmenter, out_path: str | Path) -> Path:
    """Write the model (.keras), its inference graph (.tflite) and its card (.json, recording the
    others' digests) as one unit; returns the model path."""
    out_path = Path(out_path).with_suffix(".keras")
    write_model_set(out_path, lambda tmp: save_keras_half(segmenter.keras_model, tmp),
                    {"graph": segmenter.graph.flatbuffer}, segmenter.card)
    segmenter.path = out_path
    return out_path
