"""The geometric augmentation layer: rotation, zoom and shift of a film in one resampling.

Keras' RandomRotation, RandomZoom and RandomTranslation each resample the whole batch; one after
the other they took a quarter of a training step on this project's 2-core machine (three
projective transforms of the film and its lung mask). This layer draws the same three changes
from the same distributions and applies their composition once. Imports Keras (training only).
"""

from __future__ import annotations

import math

import keras
from keras import ops


def placement_transform(angle, zoom, shift_x, shift_y, height, width):
    """Keras' 8-number image transforms (N, 8) of rotating by ``angle`` (radians) and zooming by
    ``zoom`` (above 1 shows more of the film), both about the image centre, then shifting by
    (``shift_x``, ``shift_y``) pixels: RandomRotation, RandomZoom and RandomTranslation applied one
    after the other. Each maps an output pixel p to the input pixel it reads, c + z R (p - shift - c)
    for the centre c. angle, zoom, shift_x, shift_y: (N,) tensors; height, width: the image's."""
    cx, cy = (ops.cast(width, "float32") - 1) / 2, (ops.cast(height, "float32") - 1) / 2
    a0, a1 = ops.cos(angle) * zoom, -ops.sin(angle) * zoom
    b0, b1 = -a1, a0
    a2 = cx - a0 * (cx + shift_x) - a1 * (cy + shift_y)
    b2 = cy - b0 * (cx + shift_x) - b1 * (cy + shift_y)
    zeros = ops.zeros_like(angle)
    return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


class RandomPlacement(keras.layers.Layer):
    """Rotation, zoom and shift drawn as RandomRotation(rotation), RandomZoom(zoom) and
    RandomTranslation(shift, shift) draw them, applied in one bilinear resampling instead of three
    (a third of their time, and one interpolation's blur instead of three). All channels move
    together (the lung mask with the film). Only while training; otherwise the images pass as they are."""

    def __init__(self, rotation: float = 0.03, zoom=(-0.1, 0.15), shift: float = 0.06,
                 fill_mode: str = "reflect", seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.shift, self.fill_mode = rotation, tuple(zoom), shift, fill_mode
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        n, height, width = ops.shape(images)[0], ops.shape(images)[1], ops.shape(images)[2]
        turn = self.rotation * 2 * math.pi  # Keras' rotation factor is a fraction of a full turn

        def uniform(low, high):
            return keras.random.uniform((n,), low, high, seed=self.seed_generator)

        angle = uniform(-turn, turn)
        zoom = uniform(1.0 + self.zoom[0], 1.0 + self.zoom[1])  # one zoom for both axes, as RandomZoom's default
        shift_y = uniform(-self.shift, self.shift) * ops.cast(height, "float32")
        shift_x = uniform(-self.shift, self.shift) * ops.cast(width, "float32")
        transform = placement_transform(angle, zoom, shift_x, shift_y, height, width)
        return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode=self.fill_mode)

    def compute_output_shape(self, input_shape):
        return input_shape
