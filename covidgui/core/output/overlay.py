"""Pictures of a result: heatmap colours, the heatmap blended on the X-ray, the lung outline.

The viewer, the PDF report and exported figures all draw with these, so a heatmap looks the same
on screen and on paper.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from PIL import Image

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
    """The boundary pixels of a boolean mask (H, W): bool (H, W), about ``thickness`` pixels wide.

    The mask less its erosion by the 4-neighbour cross, ``thickness`` times, outside the frame
    counting as off: exactly ``scipy.ndimage.binary_erosion(mask, iterations=thickness,
    border_value=0)``, done with whole-array shifts (about six times faster).
    """
    mask = np.asarray(mask, dtype=bool)
    eroded = mask
    for _ in range(max(1, int(thickness))):
        step = eroded.copy()
        step[1:] &= eroded[:-1]
        step[:-1] &= eroded[1:]
        step[:, 1:] &= eroded[:, :-1]
        step[:, :-1] &= eroded[:, 1:]
        step[0] = step[-1] = False
        step[:, 0] = step[:, -1] = False
        eroded = step
    return mask & ~eroded


def outline_rgba(mask: np.ndarray, shape: tuple[int, int] | None = None,
                 colour: tuple[int, int, int] = (0, 229, 255)) -> np.ndarray:
    """The lung outline as an overlay: uint8 RGBA (H, W, 4), transparent off the outline.

    mask: bool (h, w); shape: (H, W) to draw at (the display size; the mask is resized smoothly
    first, so the line is crisp at any size). The line is about 0.4 % of the longer side wide.

    Enlarging, only the lungs' bounding box (plus a margin) is resized and eroded: the same picture
    as the whole frame (the resize reads the same source pixels with the same weights, and the
    erosion sees an empty ring around the mask where the frame would), in a fraction of the time.
    """
    mask = np.asarray(mask, dtype=bool)
    out_shape = mask.shape if shape is None else tuple(int(n) for n in shape)
    thickness = max(1, round(max(out_shape) / 250))
    pixel = np.array([*colour, 255], dtype=np.uint8).view(np.uint32)[0]
    rgba = np.zeros(out_shape, dtype=np.uint32)  # one RGBA pixel per element: one store per pixel
    window = _enlarged_box(mask, out_shape)
    if window is None:
        if out_shape != mask.shape:
            mask = resize(mask.astype(np.float32), out_shape) > 0.5
        rgba[outline(mask, thickness)] = pixel
    elif window != ():
        (r0, r1, o_r0, o_r1), (c0, c1, o_c0, o_c1) = window
        # The source around the box, one pixel wider than the filter reads (or to the frame's edge,
        # where the frame's resize clips its filter the same way); mode "F", as resize() makes it.
        top, left = max(0, r0 - 2), max(0, c0 - 2)
        source = Image.fromarray(mask[top:r1 + 2, left:c1 + 2].astype(np.float32))
        part = np.asarray(source.resize((o_c1 - o_c0, o_r1 - o_r0), Image.Resampling.BILINEAR,
                                        box=(c0 - left, r0 - top, c1 - left, r1 - top), reducing_gap=2.0)) > 0.5
        rgba[o_r0:o_r1, o_c0:o_c1][outline(part, thickness)] = pixel
    return rgba.view(np.uint8).reshape(out_shape + (4,))


def _enlarged_box(mask: np.ndarray, shape: tuple[int, int]):
    """Where :func:`outline_rgba` may work on the lungs' box alone: per axis (source start, end,
    drawn start, end), whose source ends map to whole drawn pixels; () for an empty mask; None to
    work on the whole frame (not enlarging, or no whole-pixel box smaller than the frame)."""
    if shape == mask.shape or shape[0] < mask.shape[0] or shape[1] < mask.shape[1]:
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return ()
    spans = []
    for first, last, n, big in ((rows[0], rows[-1], mask.shape[0], shape[0]),
                                (cols[0], cols[-1], mask.shape[1], shape[1])):
        # Enlarging, the bilinear filter reads one source pixel either side: two pixels of margin
        # keep every drawn pixel outside the box at 0 (off), and an empty ring inside it.
        step = n // gcd(n, big)  # source starts that land on a whole drawn pixel
        lo = max(0, first - 2) // step * step
        hi = min(n, -(-(last + 3) // step) * step)
        spans.append((int(lo), int(hi), int(lo * big // n), int(hi * big // n)))
    if spans[0][:2] == (0, mask.shape[0]) and spans[1][:2] == (0, mask.shape[1]):
        return None
    return tuple(spans)


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
