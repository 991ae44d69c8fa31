"""The one preprocessing path from decoded pixels to model input, for training and inference alike.

A mismatch between training and inference preprocessing is the classic silent bug of the
reference notebook, so both call :func:`prepare` and nothing else. Its steps remove what differs
by *source* rather than by disease: uniform borders (figure frames, scanner padding) are cropped,
the image is resized to the model's square input, and its histogram is equalised so that exposure
and contrast differences between hospitals and publications carry no signal.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from covidgui.core.io.images import load_xray
from covidgui.core.io.xray import XRay

# A border row or column is "uniform" when its standard deviation is below this (pixels 0..1).
_BORDER_STD = 0.02
# Never crop more than this share of the width or height from one side: a dark lung field next
# to the edge must not be mistaken for a border.
_MAX_BORDER_SHARE = 0.2
# Storage harmonisation (harmonise_storage): the sides the 224-px sources were resized to, in
# order, and their JPEG quality (every image of ../shared/data was stored at 90, by the
# quantisation tables read off the files).
HARMONISED_SIDES = (299, 224)
HARMONISE_QUALITY = 90


@dataclass(frozen=True)
class Prepared:
    """Model input and where it came from.

    input: float32 (size, size), values 0..1, histogram-equalised.
    crop_box: (left, top, right, bottom) in source pixels: the region that was resized to ``input``.
    resized: float32 (size, size) 0..1, the cropped and resized pixels before equalisation
        (``input`` is their :func:`equalize_histogram`); training augments these.
    """

    input: np.ndarray
    crop_box: tuple[int, int, int, int]
    resized: np.ndarray | None = field(default=None, repr=False)


def border_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the image without its uniform borders.

    pixels: float (H, W) 0..1. Each side loses at most 20 % of the image.
    """
    h, w = pixels.shape
    row_std = pixels.std(axis=1)
    col_std = pixels.std(axis=0)

    def first_busy(stds: np.ndarray, limit: int) -> int:
        busy = np.flatnonzero(stds[:limit] >= _BORDER_STD)
        return int(busy[0]) if busy.size else limit

    top = first_busy(row_std, int(h * _MAX_BORDER_SHARE))
    bottom = h - first_busy(row_std[::-1], int(h * _MAX_BORDER_SHARE))
    left = first_busy(col_std, int(w * _MAX_BORDER_SHARE))
    right = w - first_busy(col_std[::-1], int(w * _MAX_BORDER_SHARE))
    return left, top, right, bottom


def equalize_histogram(pixels: np.ndarray, bins: int = 256) -> np.ndarray:
    """Global histogram equalisation: float (H, W) 0..1 in, float32 (H, W) 0..1 out.

    What it computes is :func:`_equalize_by_search` (``np.histogram``, then ``np.interp`` of the
    cumulative histogram at the bin centres). Training equalises every augmented film of every
    epoch, and ``np.interp`` searches its 256 centres for each pixel, so for the usual case (values
    in 0..1, a power-of-two number of bins) the bin and interval of a pixel are computed instead:
    the same floating-point operations in the same order, so the same bits (tests/test_preprocess.py
    holds it to the search), in a third of the time."""
    x = np.asarray(pixels)
    power_of_two = bins > 0 and bins & (bins - 1) == 0
    if x.size == 0 or not power_of_two or not (0.0 <= x.min() and x.max() <= 1.0):  # NaN fails too
        return _equalize_by_search(x, bins)
    # x * bins is exact (a power of two), and the edges k / bins are exact, so the integer part is
    # np.histogram's bin (its corrections at the edges never apply), 1.0 in the last bin as there.
    values = x.astype(np.float64)
    scaled = values * bins
    bin_of = scaled.astype(np.intp)
    np.minimum(bin_of, bins - 1, out=bin_of)
    lut = _equalization_table(np.bincount(bin_of.ravel(), minlength=bins))
    centres = (np.arange(bins) * 2 + 1) / (2 * bins)  # exact, as np.histogram's edges are here
    # np.interp's interval: the last centre (2j + 1) / (2 bins) <= x, i.e. j = floor(x bins - 1/2);
    # its value slope_j * (x - centre_j) + lut_j, and the end values outside the centres.
    slopes = (lut[1:] - lut[:-1]) / (centres[1:] - centres[:-1])
    j = np.floor(scaled - 0.5).astype(np.intp)
    np.clip(j, 0, bins - 2, out=j)
    out = slopes[j] * (values - centres[j]) + lut[j]
    out[values < centres[0]] = lut[0]
    out[values >= centres[-1]] = lut[-1]
    return out.astype(np.float32)


def _equalize_by_search(pixels: np.ndarray, bins: int) -> np.ndarray:
    """:func:`equalize_histogram` as NumPy's histogram and interpolation compute it, for any input."""
    hist, edges = np.histogram(pixels, bins=bins, range=(0.0, 1.0))
    if hist.sum() <= 0:
        return np.zeros_like(pixels, dtype=np.float32)
    return np.interp(pixels, (edges[:-1] + edges[1:]) / 2, _equalization_table(hist)).astype(np.float32)


def _equalization_table(hist: np.ndarray) -> np.ndarray:
    """The equalised value at each bin centre of a non-empty histogram."""
    cdf = np.cumsum(hist).astype(np.float64)
    lo = cdf[np.flatnonzero(hist)[0]]
    span = max(cdf[-1] - lo, 1.0)
    return np.clip((cdf - lo) / span, 0.0, 1.0)


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float (H, W) to (size[0] rows, size[1] cols), antialiased; float32 out."""
    rows, cols = size
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))  # mode "F"
    return np.asarray(im.resize((cols, rows), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.float32)


def crop_and_resize(pixels: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The first steps of :func:`prepare`: (float32 (size, size) 0..1 before equalisation, crop box).

    Training inserts its acquisition augmentation (blur, noise, re-compression) between this and
    :func:`equalize_histogram`, so an augmented image is equalised exactly as a real one is.
    """
    left, top, right, bottom = border_box(pixels)
    return resize(pixels[top:bottom, left:right], (size, size)), (left, top, right, bottom)


def harmonise_storage(pixels: np.ndarray) -> np.ndarray:
    """Decoded pixels (H, W) 0..1 -> the image as the two sources stored at 224 px were stored:
    squashed to 299 x 299, then to 224 x 224, then one JPEG at quality 90 (float32 out; an image
    no larger than 224 px keeps its size and gets only the JPEG).

    Why: BIMCV's COVID-19 films and the RSNA copies of the NIH hospital's normals come from the
    COVID-19 Radiography Database by that chain, while every other source is stored at 500-1024
    px and reaches the model as one clean downsample. The chain's softness tells those two apart
    from the rest whatever the film shows: a linear probe on frozen ImageNet features tells the NIH
    hospital's normals (stored at 224 px) from its pneumonia films (512 px) with AUC 0.97, 0.92
    once every image is put through this chain (benchmarks/pretrained_features.py within-hospital;
    benchmarks/results/three-class-summary.md). Putting every image through it leaves storage
    less to tell.
    """
    if max(pixels.shape) > HARMONISED_SIDES[-1]:
        for side in HARMONISED_SIDES:
            pixels = resize(pixels, (side, side))
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=HARMONISE_QUALITY)
    return np.asarray(Image.open(buffer), dtype=np.float32) / 255.0


def prepare(pixels: np.ndarray, size: int, *, harmonise: bool = False) -> Prepared:
    """Decoded greyscale pixels (H, W) 0..1 -> model input (size, size) 0..1 and its crop box.

    harmonise: first :func:`harmonise_storage` (models whose card's preprocessing has
        ``harmonise_storage``); the crop box is still in ``pixels``' coordinates.
    """
    if not harmonise:
        small, crop_box = crop_and_resize(pixels, size)
    else:
        stored = harmonise_storage(pixels)
        small, (left, top, right, bottom) = crop_and_resize(stored, size)
        sy, sx = pixels.shape[0] / stored.shape[0], pixels.shape[1] / stored.shape[1]
        crop_box = (round(left * sx), round(top * sy), round(right * sx), round(bottom * sy))
    return Prepared(input=equalize_histogram(small), crop_box=crop_box, resized=small)


def load_prepared(path: str | Path, size: int, *, reduced: bool = True, viewer_values: bool = False,
                  keep_full: bool = False, harmonise: bool = False) -> tuple[XRay, Prepared]:
    """The one "file -> model input" every path takes (single image, batch, training, lung training).

    reduced: decode at reduced size for a model input of ``size`` (JPEG draft mode, box reduce;
        see :func:`covidgui.core.io.images.load_xray`), as inference does; False keeps the stored
        size (lung training compares with masks drawn at that size).
    viewer_values, keep_full: passed to ``load_xray`` (the viewer's DICOM values, the full-size pixels).
    harmonise: passed to :func:`prepare`.
    Returns the decoded XRay (its ``pixels`` are what ``Prepared.crop_box`` refers to) and
    :func:`prepare` of them. Raises ImageLoadError for a file a user could give that does not load.
    """
    xray = load_xray(path, max_side=size if reduced else None, viewer_values=viewer_values, keep_full=keep_full)
    return xray, prepare(xray.pixels, size, harmonise=harmonise)


def to_source_space(map_: np.ndarray, crop_box: tuple[int, int, int, int], source_shape: tuple[int, int]) -> np.ndarray:
    """Place a map computed on the model input (any size) back onto the source image.

    Returns float32 (H, W) = source_shape, zero outside the crop box.
    """
    left, top, right, bottom = crop_box
    out = np.zeros(source_shape, dtype=np.float32)
    out[top:bottom, left:right] = resize(map_, (bottom - top, right - left))
    return out
