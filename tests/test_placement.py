"""The geometric augmentation moves a film as Keras' rotation, zoom and shift layers would, in one
resampling, and only while training."""

from __future__ import annotations

import math

import numpy as np
import pytest

SIZE = 96


def _ramps() -> np.ndarray:
    """(1, S, S, 2): channel 0 holds each pixel's column, channel 1 its row. Bilinear resampling of a
    linear ramp is exact, so a moved ramp says which input pixel each output pixel read."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return np.stack([cols, rows], axis=-1)[np.newaxis]


@pytest.mark.parametrize("degrees, zoom, shift_x, shift_y", [(8.0, 1.1, 0.05, -0.03), (-10.0, 0.92, -0.06, 0.06),
                                                            (0.0, 1.0, 0.0, 0.0)])
def test_one_resampling_reads_the_pixels_the_three_keras_layers_read(degrees, zoom, shift_x, shift_y):
    import keras
    from keras import layers, ops

    from covidgui.core.training.placement import placement_transform

    turn = degrees / 360.0
    three = keras.Sequential([layers.RandomRotation((turn, turn), fill_mode="reflect"),
                              layers.RandomZoom((zoom - 1, zoom - 1), fill_mode="reflect"),
                              layers.RandomTranslation((shift_y, shift_y), (shift_x, shift_x), fill_mode="reflect")])
    expected = np.asarray(three(_ramps(), training=True))
    transform = placement_transform(ops.convert_to_tensor([math.radians(degrees)]), ops.convert_to_tensor([zoom]),
                                    ops.convert_to_tensor([shift_x * SIZE]), ops.convert_to_tensor([shift_y * SIZE]),
                                    SIZE, SIZE)
    once = np.asarray(ops.image.affine_transform(_ramps(), transform, interpolation="bilinear", fill_mode="reflect"))
    centre = slice(SIZE // 4, 3 * SIZE // 4)  # where no stage read past an edge (the fills differ there)
    np.testing.assert_allclose(once[0, centre, centre], expected[0, centre, centre], atol=1e-2)
    if degrees:
        assert np.abs(once - _ramps()).max() > 1  # it did move


def test_each_film_gets_its_own_placement_only_while_training_and_a_seed_repeats_them():
    from covidgui.core.training.network import build_augmentation

    augment = build_augmentation(seed=3)
    ramps = _ramps().repeat(8, axis=0)
    assert np.array_equal(np.asarray(augment(ramps, training=False)), ramps)
    moved = np.asarray(augment(ramps, training=True))
    # The centre pixel of each film reads (column, row) = its two channels: c - z R shift, a different
    # place for each film, never further than the largest zoomed shift.
    centres = moved[:, (SIZE - 1) // 2:(SIZE + 2) // 2, (SIZE - 1) // 2:(SIZE + 2) // 2].mean(axis=(1, 2))
    assert len({tuple(np.round(c, 2)) for c in centres}) == 8
    assert np.all(np.hypot(*(centres - (SIZE - 1) / 2).T) <= 1.15 * 0.06 * SIZE * math.sqrt(2) + 0.01)
    again = np.asarray(build_augmentation(seed=3)(ramps, training=True))
    np.testing.assert_array_equal(again, moved)  # a seed gives the same placements


def test_fit_moves_the_films_and_predict_does_not():
    """Inside a model, Keras hands the layer fit's training flag: every training step draws new
    placements (its seed generator moves on), a prediction draws none."""
    import keras

    from covidgui.core.training.network import build_augmentation

    augment = build_augmentation(seed=0)
    films = keras.Input((SIZE, SIZE, 2))
    model = keras.Model(films, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(augment(films))))
    model.compile("sgd", "mse")
    x = _ramps().repeat(4, axis=0)

    def state():
        return np.array(augment.seed_generator.state.numpy())

    start = state()
    model.fit(x, np.zeros((4, 1)), batch_size=2, epochs=1, verbose=0)
    trained = state()
    assert not np.array_equal(trained, start)
    model.predict(x, verbose=0)
    assert np.array_equal(state(), trained)
