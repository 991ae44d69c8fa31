"""Pictures of a result: heatmap colours, the heatmap blended on the X-ray, the lung outline.

The viewer, the PDF report and exported figures all draw with these, so a heatmap looks the same
on screen and on paper.
"""

from __future__ import annotations

import numpy as np

from covidgui.core.inference.preprocess import resize


# Heat alpha is looked up at 16-bit resolution: well within 1/255 of the formula even where its
# slope is steepest (just above the floor).
_ALPHA_STEPS = 65536
_luts: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}


def _colour_luts(colormap: str, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (N, 3) the colormap's own N colours, uint8 (65536,) alpha of heat k / 65535), made once."""
    key = (colormap, float(floor))
    luts = _luts.get(key)
    if luts is None:
        from matplotlib import colormaps

        cmap = colormaps[colormap]
        rgb = (cmap(np.arange(cmap.N))[:, :3] * 255 + 0.5).astype(np.uint8)
        heat = np.linspace(0.0, 1.0, _ALPHA_STEPS)
        alpha = (np.clip((heat - floor) / (1.0 - floor), 0.0, 1.0) ** 0.7 * 255 + 0.5).astype(np.uint8)
        luts = _luts[key] = (rgb, alpha)
    return luts


def colorize(heatmap: np.ndarray, colormap: str = "jet", floor: float = 0.3) -> np.ndarray:
    """float (H, W) 0..1 -> uint8 RGBA (H, W, 4).

    Alpha follows the heat, so cold regions leave the X-ray visible; values below ``floor`` are
    fully transparent. The caller sets the overall opacity.

    Lookup tables, not the colormap call per pixel (a fifth of the time): the colours are the
    colormap's own (a matplotlib colormap is a table of N colours, which it indexes the same way),
    the alpha within 1/255 of ``((heat - floor) / (1 - floor)) ** 0.7``.
    """
    rgb_lut, alpha_lut = _colour_luts(colormap, floor)
    heat = np.nan_to_num(np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0), copy=False)
    n = len(rgb_lut)
    rgba = np.empty(heat.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = rgb_lut[np.minimum((heat * n).astype(np.intp), n - 1)]
    rgba[..., 3] = alpha_lut[(heat * (_ALPHA_STEPS - 1) + 0.5).astype(np.intp)]
    return rgba


def compose_overlay(pixels: np.ndarray, heatmap: np.ndarray | None, opacity: float = 0.45) -> np.ndarray:
    """Greyscale (H, W) 0..1 with the heatmap's colours blended on top -> float RGB (H, W, 3) 0..1.

    heatmap: float (h, w) 0..1 of any size (resized to the image), or None for the plain image.
    The heat colours and their transparency are those of the viewer (:func:`colorize`).
    """
    grey = np.clip(np.asarray(pixels, dtype=np.float32), 0.0, 1.0)
    rgb = np.repeat(grey[..., np.newaxis], 3, axis=-1)
    if heatmap is None or opacity <= 0:
        return rgb
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != grey.shape:
        heat = np.clip(resize(heat, grey.shape), 0.0, 1.0)
    colours = colorize(heat).astype(np.float32) / 255.0
    alpha = colours[..., 3:4] * float(opacity)
    return rgb * (1 - alpha) + colours[..., :3] * alpha


def outline(mask: np.ndarray, thickness: int = 2) -> np.ndarray:
    """The boundary pixels of a boolean mask (H, W): bool (H, W), about ``thickness`` pixels wide."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, iterations=max(1, int(thickness)), border_value=0)


def outline_rgba(mask: np.ndarray, shape: tuple[int, int] | None = None,
                 colour: tuple[int, int, int] = (0, 229, 255)) -> np.ndarray:
    """The lung outline as an overlay: uint8 RGBA (H, W, 4), transparent off the outline.

    mask: bool (h, w); shape: (H, W) to draw at (the display size; the mask is resized smoothly
    first, so the line is crisp at any size). The line is about 0.4 % of the longer side wide.
    """
    mask = np.asarray(mask, dtype=bool)
    if shape is not None and tuple(shape) != mask.shape:
        mask = resize(mask.astype(np.float32), tuple(shape)) > 0.5
    edge = outline(mask, thickness=max(1, round(max(mask.shape) / 250)))
    rgba = np.zeros(mask.shape + (4,), dtype=np.uint8)
    rgba[edge] = (*colour, 255)
    return rgba


def overlay_with_outline(pixels: np.ndarray, heatmap: np.ndarray | None, mask: np.ndarray | None,
                         opacity: float = 0.45) -> np.ndarray:
    """The X-ray (H, W) 0..1 with the heatmap blended in (when given) and the lung outline drawn on
    top (when given): uint8 RGB (H, W, 3), for reports and exported figures."""
    rgb = (compose_overlay(pixels, heatmap, opacity) * 255 + 0.5).astype(np.uint8)
    if mask is not None:
        line = outline_rgba(mask, pixels.shape)
        drawn = line[..., 3] > 0
        rgb[drawn] = line[drawn][:, :3]
    return rgb
