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


def _by_search(pixels, bins=256):
    """Equalisation as written first: NumPy's histogram, then np.interp at the bin centres."""
    hist, edges = np.histogram(pixels, bins=bins, range=(0.0, 1.0))
    cdf = np.cumsum(hist).astype(np.float64)
    lo = cdf[np.flatnonzero(hist)[0]]
    lut = np.clip((cdf - lo) / max(cdf[-1] - lo, 1.0), 0.0, 1.0)
    return np.interp(pixels, (edges[:-1] + edges[1:]) / 2, lut).astype(np.float32)


def test_equalisation_gives_the_bits_of_histogram_and_interpolation():
    """The computed bins and intervals must give what np.histogram and np.interp give, to the bit:
    every model was trained and calibrated on inputs equalised that way."""
    rng = np.random.default_rng(0)
    centres = (np.arange(256) * 2 + 1) / 512
    images = [
        rng.random((224, 224)).astype(np.float32),
        np.round(rng.random((64, 64)) * 255).astype(np.float32) / 255,  # 8-bit grey levels
        rng.beta(0.3, 0.3, (50, 70)).astype(np.float32),  # piled up at both ends
        np.concatenate([np.arange(257) / 256, centres, [0.0, 1.0]]).astype(np.float32)[None],  # edges, centres
        np.full((9, 9), 0.7, np.float32),  # one grey level
        np.clip(rng.normal(0.5, 0.4, (40, 40)), 0.0, 1.0),  # float64, values at 0 and 1
        0.4 + 0.1 * (chest_like(64).astype(np.float32) / 255),
    ]
    for image in images:
        assert np.array_equal(equalize_histogram(image), _by_search(image))
    for bins in (64, 100):  # a power of two is computed; any other count is searched
        assert np.array_equal(equalize_histogram(images[0], bins), _by_search(images[0], bins))
    outside = images[0] * 1.2 - 0.1  # values outside 0..1 count nowhere in the histogram
    assert np.array_equal(equalize_histogram(outside), _by_search(outside))


def test_maps_go_back_to_source_space():
    heat = np.ones((8, 8), np.float32)
    out = to_source_space(heat, (10, 5, 50, 45), (60, 70))
    assert out.shape == (60, 70)
    assert out[5:45, 10:50].min() > 0.99 and out[:5].max() == 0 and out[:, 50:].max() == 0
