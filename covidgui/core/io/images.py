"""One loader for every X-ray file format.

``load_xray(path)`` returns an :class:`XRay` whose ``pixels`` are a 2-D float32 array (H x W),
greyscale, 0.0 = black .. 1.0 = white, whatever the source's mode or bit depth. Every failure a
user can cause raises :class:`~covidgui.core.errors.ImageLoadError` with a plain message.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from covidgui.core.errors import ImageLoadError
from covidgui.core.io.dicom import is_dicom_file, load_dicom
from covidgui.core.io.xray import MAX_PIXELS, XRay

# Raster formats the app opens; DICOM (covidgui.core.io.dicom) is recognised by name or content.
RASTER_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

# Modes Image.reduce handles whose box average is also the right average after greyscale conversion.
_REDUCIBLE_MODES = frozenset({"L", "RGB", "I", "F", "CMYK"})

# The ITU-R 601 luma weights, the same Pillow uses for RGB -> L, kept in float for 16-bit sources.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# 8-bit grey -> float32 0..1, the very values of ``uint8 array as float32 / 255.0``, by one lookup.
_GREY8 = np.arange(256, dtype=np.float32) / 255.0


def is_supported(path: str | Path) -> bool:
    """True when the loader opens the file: a raster extension, a DICOM name, or DICOM content.

    Files with another (or no) extension are opened only to look for the DICOM marker.
    """
    return Path(path).suffix.lower() in RASTER_EXTENSIONS or is_dicom_file(path)


def load_xray(path: str | Path, max_side: int | None = None, viewer_values: bool = False,
              keep_full: bool = False) -> XRay:
    """Read an X-ray image file into greyscale pixels 0..1.

    path: a PNG, JPEG, TIFF or BMP file (8- or 16-bit; modes 1/L/LA/P/RGB/RGBA/CMYK/I;16/I/F), or a
        DICOM file (``.dcm`` or the ``DICM`` marker; see :func:`covidgui.core.io.dicom.load_dicom`).
    max_side: when given, JPEGs may be decoded at a reduced scale (Pillow's draft mode) so that
        neither side is much below ``max_side`` pixels; the model needs only its input size.
        Other formats are box-reduced after decoding by a whole factor that keeps both sides at
        least ``2 * max_side``, which is what the antialiased resize of preprocessing does first anyway.
    viewer_values: for a DICOM file, also keep its values in file units (``XRay.values``) for the
        viewer's window/level.
    keep_full: also keep the greyscale at the stored size (``XRay.full_pixels``) for display, from
        the same decode: PNG, TIFF, BMP and DICOM are decoded once and only then reduced for the
        model. A JPEG's reduced-scale (DCT) decode cannot be derived from its full decode, so the
        model's pixels stay bit-identical to every other path only by decoding it a second time,
        at reduced scale, which costs a fraction of the full decode.
    Returns an :class:`XRay`; EXIF orientation is applied; the first frame of multi-page files.
    Raises ImageLoadError for a missing, empty, truncated, oversized or non-image file.
    """
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(path, "file not found")
    if path.is_dir():
        raise ImageLoadError(path, "this is a folder, not an image file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageLoadError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageLoadError(path, "the file is empty (0 bytes)")

    if is_dicom_file(path):
        xray = load_dicom(path, viewer_values)  # never reduced: its pixels are the full ones
        return replace(xray, full_pixels=xray.pixels) if keep_full else xray
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat both as errors.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if keep_full and max_side and im.format == "JPEG":
                    with Image.open(path) as reduced:  # see keep_full above
                        full = _decode(path, im, None).pixels
                        return replace(_decode(path, reduced, max_side), full_pixels=full)
                return _decode(path, im, max_side, keep_full)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, "the image is too large to be an X-ray (possible decompression bomb)") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(path, "not an image file this app can read (PNG, JPEG, TIFF, BMP or DICOM)") from exc
    except PermissionError as exc:
        raise ImageLoadError(path, "permission denied: the file cannot be read") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated or damaged data as OSError ("image file is truncated", ...).
        raise ImageLoadError(path, f"the image data is truncated or corrupt ({exc})") from exc


def _decode(path: Path, im: Image.Image, max_side: int | None, keep_full: bool = False) -> XRay:
    width, height = im.size
    if width * height > MAX_PIXELS:
        raise ImageLoadError(
            path, f"the image is too large ({width} x {height} pixels; the limit is {MAX_PIXELS // 1_000_000} MP)"
        )
    if width < 2 or height < 2:
        raise ImageLoadError(path, f"the image is too small ({width} x {height} pixels)")
    fmt = im.format or path.suffix.lstrip(".").upper()
    source_mode = im.mode
    if max_side and im.format == "JPEG":
        # Decoding at 1/2, 1/4 or 1/8 scale is several times faster. Colour is kept: the input
        # gate uses it to tell photographs from radiographs.
        im.draft(im.mode, (max_side, max_side))
    exif_orientation = im.getexif().get(0x0112, 1)
    im.load()
    # In place: without an orientation to undo, the default returns a copy of the whole film.
    ImageOps.exif_transpose(im, in_place=True)
    full = im
    if max_side and fmt != "JPEG" and im.mode in _REDUCIBLE_MODES:
        # Shrinking the integer image before the float conversion and preprocessing makes a
        # 2000-px PNG several times cheaper; the model input stays nearly the same (see docstring).
        factor = min(im.size) // (2 * max_side)
        if factor >= 2:
            im = im.reduce(factor)
    pixels, bit_depth, colourfulness = _to_grey(im)
    full_pixels = None
    if keep_full:
        full_pixels = pixels if full is im else _to_grey(full)[0]
    return XRay(
        path=path,
        pixels=pixels,
        format=fmt,
        mode=source_mode,
        bit_depth=bit_depth,
        source_size=(width, height),
        metadata={"exif_orientation": int(exif_orientation), "colourfulness": colourfulness},
        full_pixels=full_pixels,
    )


def _to_grey(im: Image.Image) -> tuple[np.ndarray, int, float]:
    """Greyscale float32 0..1, the source's bits per channel, and its colourfulness (mean chroma,
    0 for a grey image .. 1)."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode == "L":
        return np.take(_GREY8, np.asarray(im)), 8, 0.0
    if mode == "1":
        return np.take(_GREY8, np.asarray(im.convert("L"))), 1, 0.0
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.float32) / 65535.0, 16, 0.0
    if mode == "I":
        # 16-bit PNGs and TIFFs often open as 32-bit "I"; their values are 0..65535.
        arr = np.asarray(im, dtype=np.float32)
        return np.clip(arr / 65535.0, 0.0, 1.0), 16, 0.0
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        return ((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)), 32, 0.0
    if mode in ("LA", "RGBA", "PA"):
        # A radiograph's empty background is black, so transparent areas become black.
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        grey = rgba[..., :3] @ _LUMA
        return (grey * rgba[..., 3]).astype(np.float32), 8, _chroma(rgba[..., :3] * rgba[..., 3:])
    rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0  # RGB, CMYK, YCbCr, LAB, HSV
    return (rgb @ _LUMA).astype(np.float32), 8, _chroma(rgb)


def _chroma(rgb: np.ndarray) -> float:
    """Mean of max(R,G,B) - min(R,G,B): 0 for grey pixels, sampled for speed."""
    step = max(1, max(rgb.shape[:2]) // 256)
    sample = rgb[::step, ::step]
    r, g, b = sample[..., 0], sample[..., 1], sample[..., 2]
    # Element-wise max/min of the three planes: the same values as max/min over the last axis,
    # which numpy reduces slowly for a length-3 axis (about 12 times the time on a batch's RGB files).
    return float((np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)).mean())


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Greyscale 0..1 (H x W) to uint8 0..255 for display."""
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
