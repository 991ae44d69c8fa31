"""The shared preprocessing: output shape and range, border cropping, equalisation."""

from __future__ import annotations

import numpy as np

from covidgui.core.inference.preprocess import border_box, equalize_histogram, prepare, to_source_space
from tests.conftest import chest_like


def test_prepare_gives_a_square_unit_range_input():
    pixels = chest_like(300).astype(np.float32) / 255
    out = prepare(pixels[:, :250], 128)
    assert out.input.shape == (128, 128)
    assert out.input.dtype == np.float32
    assert 0.0 <= out.input.min() and out.input.max() <= 1.0


def test_uniform_borders_are_cropped_but_content_is_not():
    content = chest_like(200).astype(np.float32) / 255
    framed = np.ones((260, 240), np.float32)  # a white figure frame, as in published figures
    framed[30:230, 20:220] = content
    left, top, right, bottom = border_box(framed)
    assert (left, top) == (20, 30)
    assert (right, bottom) == (220, 230)
    assert border_box(content) == (0, 0, 200, 200)


def test_a_dark_lung_at_the_edge_is_not_cropped_away():
    image = np.zeros((100, 100), np.float32)  # a black image: nothing to keep, crop is capped
    left, top, right, bottom = border_box(image)
    assert left <= 20 and top <= 20 and right >= 80 and bottom >= 80


def test_equalisation_spreads_a_low_contrast_image():
    low = 0.4 + 0.1 * (chest_like(64).astype(np.float32) / 255)
    eq = equalize_histogram(low)
    assert eq.max() - eq.min() > 0.9
    # Monotone: brighter stays brighter.
    order = np.argsort(low.ravel())
    assert np.all(np.diff(eq.ravel()[order]) >= -1e-6)


def test_maps_go_back_to_source_space():
    heat = np.ones((8, 8), np.float32)
    out = to_source_space(heat, (10, 5, 50, 45), (60, 70))
    assert out.shape == (60, 70)
    assert out[5:45, 10:50].min() > 0.99 and out[:5].max() == 0 and out[:, 50:].max() == 0
