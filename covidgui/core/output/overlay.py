"""Pictures of a result: heatmap colours, the heatmap blended on the X-ray, the lung outline.

The viewer, the PDF report and exported figures all draw with these, so a heatmap looks the same
on screen and on paper.
"""

from __future__ import annotations

import numpy as np

from covidgui.core.inference.preprocess import resize


# One table of 65536 RGBA colours, indexed by the heat's top 16 bits (floor(heat * 65536)): its top
# 8 bits pick the colormap's colour exactly as matplotlib does (floor(heat * 256) of a 256-colour
# map), and the alpha is within 1/255 of the formula even where its slope is steepest.
_STEPS = 65536
_luts: dict[tuple[str, float], np.ndarray] = {}


def _colour_lut(colormap: str, floor: float) -> np.ndarray:
    """uint32 (65536,): the RGBA (as bytes in memory order) of heat k / 65536, made once per colormap."""
    key = (colormap, float(floor))
    lut = _luts.get(key)
    if lut is None:
        from matplotlib import colormaps

        cmap = colormaps[colormap]
        steps = np.arange(_STEPS)
        colours = cmap(np.minimum(steps * cmap.N // _STEPS, cmap.N - 1))  # integer input: the colour table
        heat = (steps + 0.5) / _STEPS
        colours[:, 3] = np.clip((heat - floor) / (1.0 - floor), 0.0, 1.0) ** 0.7
        rgba = (colours * 255 + 0.5).astype(np.uint8)
        lut = _luts[key] = np.ascontiguousarray(rgba).view(np.uint32).ravel()
    return lut


def colorize(heatmap: np.ndarray, colormap: str = "jet", floor: float = 0.3) -> np.ndarray:
    """float (H, W) 0..1 -> uint8 RGBA (H, W, 4).

    Alpha follows the heat, so cold regions leave the X-ray visible; values below ``floor`` are
    fully transparent. The caller sets the overall opacity.

    One lookup in a table made once (:func:`_colour_lut`), not the colormap called per pixel
    (about ten times faster): the colours are the colormap's own, the alpha within 1/255 of
    ``((heat - floor) / (1 - floor)) ** 0.7``.
    """
    heat = np.nan_to_num(np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0), copy=False)
    index = np.minimum(heat * _STEPS, _STEPS - 1).astype(np.uint16)
    return np.take(_colour_lut(colormap, floor), index).view(np.uint8).reshape(heat.shape + (4,))


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
