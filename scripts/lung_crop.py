"""Preprocessing variants that use the lung fields: crop to the lungs, or mask outside them.

Both have :func:`covidgui.core.inference.preprocess.prepare`'s signature and return a ``Prepared`` whose
``crop_box`` maps the input back onto the source image, so heatmaps still land in place.

- ``crop``: the bounding box of the plausible lung pair, widened by ``margin`` of its size on
  each side, is resized to the model input (then histogram-equalised as usual);
- ``mask``: the usual input with everything outside the (slightly dilated) lung fields set to 0.

When no plausible pair of lungs is found, both fall back to the usual preprocessing, so an odd
image is never reduced to an empty input. These are an experiment (issue 8's crop/mask/none
comparison, ``scripts/compare_lung_preprocessing.py``). The bundled classifier uses neither: with
lung guidance (:mod:`covidgui.core.training.lung_guidance`) they measured no better on validation, and the
plain input keeps the app working without the lung model.
"""

from __future__ import annotations

import numpy as np

from covidgui.core.inference.lungs import LungSegmenter, check_lungs
from covidgui.core.inference.preprocess import Prepared, border_box, equalize_histogram, prepare, resize

VARIANTS = ("none", "crop", "mask")


class LungPreprocessor:
    """``LungPreprocessor(segmenter, "crop")(pixels (H, W) 0..1, size) -> Prepared``."""

    def __init__(self, segmenter: LungSegmenter, variant: str = "crop", margin: float = 0.1):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
        self.segmenter = segmenter
        self.variant = variant
        self.margin = margin

    def __call__(self, pixels: np.ndarray, size: int) -> Prepared:
        usual = prepare(pixels, size)
        if self.variant == "none":
            return usual
        lung_mask = self.segmenter.masks(usual.input[np.newaxis])[0]  # (s, s) on the usual input
        if not check_lungs(lung_mask).plausible:
            return usual
        if self.variant == "mask":
            from scipy import ndimage

            grown = ndimage.binary_dilation(lung_mask, iterations=max(1, round(self.margin * lung_mask.shape[0] / 2)))
            keep = resize(grown.astype(np.float32), (size, size)) > 0.5
            return Prepared(input=np.where(keep, usual.input, 0.0).astype(np.float32), crop_box=usual.crop_box)
        # crop: the lung box on the usual input, mapped to source pixels through the border crop box
        rows, cols = np.nonzero(lung_mask)
        s = lung_mask.shape[0]
        top, bottom = rows.min() / s, (rows.max() + 1) / s
        left, right = cols.min() / s, (cols.max() + 1) / s
        dy, dx = (bottom - top) * self.margin, (right - left) * self.margin
        top, bottom = max(0.0, top - dy), min(1.0, bottom + dy)
        left, right = max(0.0, left - dx), min(1.0, right + dx)
        b_left, b_top, b_right, b_bottom = border_box(pixels)
        w, h = b_right - b_left, b_bottom - b_top
        box = (b_left + int(left * w), b_top + int(top * h),
               b_left + int(np.ceil(right * w)), b_top + int(np.ceil(bottom * h)))
        if box[2] - box[0] < 8 or box[3] - box[1] < 8:
            return usual
        crop = pixels[box[1]:box[3], box[0]:box[2]]
        return Prepared(input=equalize_histogram(resize(crop, (size, size))), crop_box=box)
