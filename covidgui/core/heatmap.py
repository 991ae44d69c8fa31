"""Turning a heatmap (H, W) 0..1 into colours for display and reports."""

from __future__ import annotations

import numpy as np


def colorize(heatmap: np.ndarray, colormap: str = "jet", floor: float = 0.3) -> np.ndarray:
    """float (H, W) 0..1 -> uint8 RGBA (H, W, 4).

    Alpha follows the heat, so cold regions leave the X-ray visible; values below ``floor`` are
    fully transparent. The caller sets the overall opacity.
    """
    from matplotlib import colormaps

    heat = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    rgba = colormaps[colormap](heat)
    rgba[..., 3] = np.clip((heat - floor) / (1.0 - floor), 0.0, 1.0) ** 0.7
    return (rgba * 255 + 0.5).astype(np.uint8)

