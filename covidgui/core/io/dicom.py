"""DICOM X-rays decoded into the same greyscale 0..1 pixels as every other format.

``load_dicom(path)`` returns an :class:`~covidgui.core.io.xray.XRay` (``format == "DICOM"``) whose
``pixels`` went through the display pipeline a PACS viewer applies, in DICOM's order:
stored values -> Modality LUT (Rescale Slope/Intercept or a Modality LUT Sequence) -> the file's
first VOI LUT (VOI LUT Sequence, else Window Center/Width) -> 0..1 -> inverted for MONOCHROME1.
That is what a radiologist sees first, and what a PNG exported from that viewer holds, so a DICOM
and its PNG export give (nearly) the same prediction.

Compressed transfer syntaxes are decoded by pydicom's pixel-data plugins: ``pylibjpeg-rle`` for
RLE (pydicom's own decoder, used when it is absent, is ten times slower), ``pylibjpeg-libjpeg`` for
JPEG baseline, extended (12-bit) and lossless, and ``pylibjpeg-openjpeg`` for JPEG 2000. Pillow
would cover 8-bit JPEG baseline only, not JPEG Lossless, the usual compression of CR/DX archives.
12-bit JPEG Extended files that libjpeg refuses are decoded by libjpeg-turbo through imagecodecs
(:mod:`covidgui.core.io.dicom_jpeg12`). Old-style files without preamble and file meta information
(ACR-NEMA) are recognised by their first data element and read with pydicom's ``force=True``.

Patient identifiers are kept in a :class:`PatientIdentity`, whose ``repr`` hides them, so that
logging an XRay or its metadata never writes a name, ID or birth date.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidgui.core.errors import ImageLoadError
from covidgui.core.io.logs import remember_identifiers
from covidgui.core.io.xray import MAX_PIXELS, XRay

DICOM_EXTENSIONS = frozenset({".dcm", ".dicom", ".dic"})
# A DICOM Part 10 file has a 128-byte preamble followed by these four bytes.
_DICM_OFFSET = 128
_DICM_MAGIC = b"DICM"
# Value representations an explicit-VR data element may carry (PS3.5 6.2).
_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
                  b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
                  b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV"})

# View positions that are not frontal (DICOM (0018,5101) View Position defined terms).
LATERAL_VIEWS = frozenset({"LL", "RL", "LLD", "RLD", "LAT", "LATERAL", "LLO", "RLO"})
# Modalities of chest radiographs (CR, DX) and of secondary captures (SC/OT: a scanned film,
# a screenshot); anything else is classified but flagged.
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "SC", "OT", "XC"})
FRONTAL_WARNING = ("Lateral view ({view}): the model was trained on frontal (PA/AP) views, "
                   "so this result is less reliable than usual.")


@dataclass(frozen=True)
class PatientIdentity:
    """The patient's name, ID and birth date from the file; ``repr`` never shows them."""

    name: str = ""
    patient_id: str = ""
    birth_date: str = ""

    def __repr__(self) -> str:  # logs and tracebacks must not carry identifiers
        return "PatientIdentity(<hidden>)"

    __str__ = __repr__

    def is_empty(self) -> bool:
        return not (self.name or self.patient_id or self.birth_date)

    def as_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for a panel or a report, in reading order."""
        return [("Patient name", self.name), ("Patient ID", self.patient_id), ("Birth date", self.birth_date)]


@dataclass(frozen=True)
class FileLevels:
    """Window/level in a DICOM file's own units (the values after its Modality LUT: detector units,
    or Hounsfield-like units when Rescale Type says so), for the viewer.

    window: (center, width) of the file's first Window Center/Width, or of the image's own
        min..max when it has none (what the decoded pixels show).
    stored_range: (low, high): every value the stored bits can take, after the Modality LUT (and
        the image's own values, should a file hold values outside it). The viewer can widen the
        window up to it, beyond the file's window, as DICOM viewers do.
    inverted: MONOCHROME1: the lowest value is white.
    units: Rescale Type (e.g. "HU"), or "" when the file does not say.

    The viewer works on values normalised over ``stored_range`` (:meth:`normalise`, 0..1, already
    flipped for MONOCHROME1 so that 1 is white); :meth:`to_view` and :meth:`from_view` convert a
    (center, width) between the file's units and that 0..1 scale.
    """

    window: tuple[float, float]
    stored_range: tuple[float, float]
    inverted: bool = False
    units: str = ""

    @property
    def span(self) -> float:
        low, high = self.stored_range
        return max(high - low, 1e-12)

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Values in file units (H, W) -> float32 0..1 over the stored range, 1 = white."""
        low, high = self.stored_range
        scaled = (np.asarray(values, dtype=np.float64) - low) / self.span
        return np.clip(1.0 - scaled if self.inverted else scaled, 0.0, 1.0).astype(np.float32)

    def to_view(self, center: float, width: float) -> tuple[float, float]:
        """(center, width) in file units -> the viewer's 0..1 levels."""
        low, high = self.stored_range
        c = (high - center if self.inverted else center - low) / self.span
        return c, width / self.span

    def from_view(self, center: float, width: float) -> tuple[float, float]:
        """The viewer's 0..1 levels -> (center, width) in file units."""
        low, high = self.stored_range
        return (high - center * self.span if self.inverted else low + center * self.span), width * self.span


def file_levels(ds, values: np.ndarray) -> FileLevels | None:
    """The :class:`FileLevels` of a greyscale image whose Modality LUT output is ``values`` (H, W),
    or None when the file's display uses a VOI LUT Sequence (a curve, not a window: the viewer then
    works on the decoded pixels, 0..1)."""
    from pydicom.multival import MultiValue
    from pydicom.pixels import apply_modality_lut

    if ds.get("VOILUTSequence") and ds.VOILUTSequence[0].get("LUTData") is not None:
        return None
    bits = int(ds.get("BitsStored", 8) or 8)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    ends = np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] if signed else [0, 2**bits - 1])
    ends = np.asarray(apply_modality_lut(ends, ds), dtype=np.float64)
    vmin, vmax = float(np.min(values)), float(np.max(values))
    low, high = min(float(ends.min()), vmin), max(float(ends.max()), vmax)
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        # Multi-valued: the first window, as the decoded pixels use.
        center = float(center[0] if isinstance(center, MultiValue) else center)
        width = float(width[0] if isinstance(width, MultiValue) else width)
        window = (center, max(width, 1.0))
    else:
        window = ((vmin + vmax) / 2, max(vmax - vmin, 1e-6))
    return FileLevels(window=window, stored_range=(low, high),
                      inverted=_text(ds, "PhotometricInterpretation").upper() == "MONOCHROME1",
                      units="" if _text(ds, "RescaleType") == "US" else _text(ds, "RescaleType"))  # US: unspecified


def is_dicom_file(path: str | Path) -> bool:
    """True for a ``.dcm``-like name, a file with the ``DICM`` marker at byte 128, or an old-style
    file without preamble that starts with a plausible first data element."""
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    return has_dicm_preamble(path) or starts_like_headerless_dicom(path)


def has_dicm_preamble(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(_DICM_OFFSET)
            return f.read(4) == _DICM_MAGIC
    except OSError:
        return False


def starts_like_headerless_dicom(path: str | Path) -> bool:
    """True when the file starts as a DICOM data set written without the Part 10 preamble and file
    meta information (ACR-NEMA and early DICOM archives; pydicom reads them with ``force=True``).

    The first data element must be a little-endian tag of group 0002 (file meta without preamble)
    or 0008 (the identifying group every image starts with) with a low element number, followed
    either by a valid explicit VR or by an even implicit-VR length that fits in the file. Eight
    bytes decide, so scanning a folder stays cheap; a text or image file never starts this way.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = f.seek(0, 2)
    except OSError:
        return False
    if len(head) < 8:
        return False
    group, element = struct.unpack("<HH", head[:4])
    if group not in (0x0002, 0x0008) or element > 0x0020:
        return False
    if head[4:6] in _VRS:  # explicit VR little endian
        return True
    (length,) = struct.unpack("<I", head[4:8])  # implicit VR little endian
    return length % 2 == 0 and 8 + length <= size


def _read_headerless(path: Path):
    """An old-style file read with ``force=True``; the transfer syntax it lacks is set from the
    encoding pydicom detected, so that the pixel data can be decoded (always uncompressed there)."""
    import pydicom
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                          ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return ds


def _sniff_raster(path: Path) -> str | None:
    """The raster format of a file that is not DICOM (a PNG renamed .dcm, say), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.format
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _date(value: str) -> str:
    """DICOM DA 'YYYYMMDD' (or ACR-NEMA's 'YYYY.MM.DD') -> 'YYYY-MM-DD' (left alone otherwise)."""
    value = value.strip()
    if len(value) == 10 and value[4] == value[7] == ".":
        value = value.replace(".", "")
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def dicom_info(ds) -> dict:
    """What the DICOM information panel and the report show (no patient identifiers)."""
    return {
        "modality": _text(ds, "Modality"),
        "view_position": _text(ds, "ViewPosition"),
        "study_date": _date(_text(ds, "StudyDate")),
        "body_part": _text(ds, "BodyPartExamined"),
        "manufacturer": _text(ds, "Manufacturer"),
        "model_name": _text(ds, "ManufacturerModelName"),
        "photometric": _text(ds, "PhotometricInterpretation"),
        "transfer_syntax": _transfer_syntax_name(ds),
        "frames": int(ds.get("NumberOfFrames", 1) or 1),
    }


def _transfer_syntax_name(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return uid.name if uid is not None else ""


# Body Part Examined values of chest films (PS3.16 CID 4031 and what CR/DX devices write).
CHEST_BODY_PARTS = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS", "CHEST_LAT", "TORSO", "RIBS"})


def _cautions(info: dict) -> list[tuple[str, str]]:
    """(short note, sentence) for each reason to trust this file's result less: a lateral view,
    a multi-frame file, a modality or body part the model was not trained on. The sentence is
    for the window and the report; the short note for ``classify --json`` and the CSV."""
    out = []
    view = info["view_position"].upper()
    if view in LATERAL_VIEWS:
        out.append((f"lateral view ({info['view_position']})", FRONTAL_WARNING.format(view=info["view_position"])))
    if info["frames"] > 1:
        out.append((f"multi-frame ({info['frames']} frames; frame 1 classified)",
                    f"This file holds {info['frames']} frames; only the first was classified."))
    modality = info["modality"].upper()
    if modality and modality not in RADIOGRAPH_MODALITIES:
        out.append((f"modality {info['modality']} (not CR/DX)",
                    f"Modality {info['modality']}: the model was trained on chest radiographs (CR/DX), "
                    "not on this kind of image."))
    body_part = info["body_part"].upper()
    if body_part and body_part not in CHEST_BODY_PARTS:
        out.append((f"body part {info['body_part']} (not chest)",
                    f"Body part {info['body_part']}: the model was trained on chest radiographs only."))
    return out


def _warnings(info: dict) -> list[str]:
    return [sentence for _, sentence in _cautions(info)]


def load_dicom(path: str | Path, viewer_values: bool = False) -> "XRay":
    """Read a DICOM file into greyscale pixels 0..1 (H, W), float32, 0 = black.

    The first frame of a multi-frame file; the file's first VOI LUT or window; MONOCHROME1
    inverted; colour images (secondary captures) reduced to luma.
    ``metadata`` holds ``dicom`` (modality, view position, study date, ...: see :func:`dicom_info`),
    ``warnings`` (a list of sentences for the user: lateral view, multi-frame, other modality or
    body part), ``short_warnings`` (the same as short notes, for JSON and CSV) and
    ``patient`` (a :class:`PatientIdentity`) and, for greyscale images windowed linearly,
    ``file_levels`` (:class:`FileLevels`).
    viewer_values: also keep the values after the Modality LUT in ``XRay.values`` (float32 H x W,
        file units, unclipped) for window/level beyond the file's window; off for batches, where
        nobody looks at them and they would only cost memory.
    Raises ImageLoadError for a non-DICOM file, a DICOM without an image, a truncated file or a
    compression that cannot be decoded.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        # Pixel data is decoded later, frame by frame; reading the header is cheap.
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            if not starts_like_headerless_dicom(path):
                raise
            ds = _read_headerless(path)
        # pydicom converts each element's value when it is first read; converting them all here
        # turns a damaged element (an unknown VR, a bad length) into this function's error
        # instead of a crash in a later ds.get (found by tests/test_loader_fuzz.py).
        ds.walk(lambda _ds, _elem: None)
    except InvalidDicomError as exc:
        raster = _sniff_raster(path)
        if raster:
            raise ImageLoadError(path, f"this is a {raster} image, not a DICOM file; "
                                       f"rename it to .{raster.lower()} to open it") from exc
        raise ImageLoadError(path, "not a DICOM file (it has no DICOM header)") from exc
    except PermissionError as exc:
        raise ImageLoadError(path, "permission denied: the file cannot be read") from exc
    except Exception as exc:  # pydicom reports a cut-off header as EOFError, struct.error, ValueError...
        raise ImageLoadError(path, f"the DICOM file is truncated or corrupt ({exc})") from exc
    _keep_out_of_logs(ds)  # now, before anything below can fail with the file's name in a message

    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        if "SOPClassUID" not in ds:
            # pydicom stops quietly where a file is cut off; every complete object names its class.
            raise ImageLoadError(path, "the DICOM file is truncated or incomplete (it ends before the image)")
        kind = _sop_class_name(ds)
        raise ImageLoadError(path, f"this DICOM file holds no image ({kind}); open the X-ray image itself")

    info = dicom_info(ds)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols > MAX_PIXELS:
        raise ImageLoadError(path, f"the image is too large ({cols} x {rows} pixels)")
    if rows < 2 or cols < 2:
        raise ImageLoadError(path, f"the image is too small ({cols} x {rows} pixels)")

    stored = _first_frame(path, ds)
    values = levels = None
    try:
        pixels = _to_display(stored, ds, info["photometric"].upper())
        if stored.ndim == 2:
            from pydicom.pixels import apply_modality_lut

            values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
            levels = file_levels(ds, values)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError) as exc:
        # A damaged rescale, window or LUT element (found by tests/test_loader_fuzz.py: a Window
        # Center that is not a number reaches numpy as a string).
        raise ImageLoadError(path, f"the DICOM display settings (rescale, window or LUT) are damaged ({exc})") from exc
    metadata = {
        # Mean chroma 0..1, as the raster loader reports it (0 for a greyscale image).
        "colourfulness": _chroma(stored, ds) if stored.ndim == 3 else 0.0,
        "dicom": info,
        "frame_used": 1,
        "warnings": _warnings(info),
        "short_warnings": [note for note, _ in _cautions(info)],
        "patient": PatientIdentity(
            name=str(ds.get("PatientName", "") or "").replace("^", " ").strip(),
            patient_id=_text(ds, "PatientID"),
            birth_date=_date(_text(ds, "PatientBirthDate")),
        ),
    }
    if levels is not None:
        metadata["file_levels"] = levels
    return XRay(
        path=path,
        pixels=pixels,
        format="DICOM",
        mode=info["photometric"] or "MONOCHROME2",
        bit_depth=int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8),
        source_size=(cols, rows),
        metadata=metadata,
        values=values if viewer_values and levels is not None else None,
    )


def _keep_out_of_logs(ds) -> None:
    """Second guard after PatientIdentity's repr: the log filter removes these values anywhere.
    Called as soon as the header is read, so a file whose image fails to decode is covered too."""
    try:
        raw_name = str(ds.get("PatientName", "") or "")
        patient_id, raw_birth = _text(ds, "PatientID"), _text(ds, "PatientBirthDate")
    except Exception:  # a damaged identifier element: the loader reports the file as damaged later
        return
    remember_identifiers(raw_name.replace("^", " ").strip(), raw_name, *raw_name.split("^"), patient_id,
                         _date(raw_birth), raw_birth)


def _sop_class_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    if uid is None:
        return "no SOP class"
    name = getattr(uid, "name", "") or str(uid)
    return f"a {name}" if name != str(uid) else f"SOP class {uid}"


def _first_frame(path: Path, ds) -> np.ndarray:
    """Frame 1's stored values (H, W) or (H, W, 3), decoded by whichever plugin can."""
    from pydicom.pixels import pixel_array

    # Here, not at the top: the plugin imports pydicom, which a PNG-only session never needs.
    from covidgui.core.io.dicom_jpeg12 import register

    register()  # the 12-bit JPEG Extended fallback (covidgui.core.io.dicom_jpeg12)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about odd-but-readable files
            # index=0 decodes only the first frame of a multi-frame file.
            return pixel_array(ds, index=0)
    except NotImplementedError as exc:
        raise ImageLoadError(path, f"its compression ({_transfer_syntax_name(ds) or 'unknown'}) "
                                   f"cannot be decoded by this installation ({exc})") from exc
    except RuntimeError as exc:
        # pydicom says "Unable to decode ... no plugins available" or passes a decoder's failure on.
        text = str(exc)
        if "plugin" in text.lower() and "available" in text.lower():
            raise ImageLoadError(path, f"its compression ({_transfer_syntax_name(ds)}) cannot be decoded "
                                       "by this installation") from exc
        raise ImageLoadError(path, f"the DICOM image data is truncated or corrupt ({text})") from exc
    except (ValueError, EOFError, OSError, AttributeError, KeyError, TypeError) as exc:
        # A short Pixel Data element ("The number of bytes of pixel data is less than expected")
        # or a missing image attribute.
        raise ImageLoadError(path, f"the DICOM image data is truncated or corrupt ({exc})") from exc


def _chroma(rgb: np.ndarray, ds) -> float:
    top = float(2 ** int(ds.get("BitsStored", 8) or 8) - 1)
    step = max(1, max(rgb.shape[:2]) // 256)
    sample = rgb[::step, ::step, :3].astype(np.float32) / top
    return float((sample.max(axis=-1) - sample.min(axis=-1)).mean())


def _lut_entries(data) -> np.ndarray:
    """A LUT's entries whether pydicom read them as numbers (US) or as raw 16-bit words (OW)."""
    if isinstance(data, (bytes, bytearray)):
        return np.frombuffer(data, dtype="<u2")
    return np.atleast_1d(np.asarray(data))


def _to_display(stored: np.ndarray, ds, photometric: str) -> np.ndarray:
    """Stored values -> float32 0..1 as a viewer shows them (the DICOM grayscale pipeline)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing

    if stored.ndim == 3:
        # RGB / YBR secondary captures: pydicom has already converted YBR to RGB.
        rgb = stored.astype(np.float32)
        top = float(2 ** int(ds.get("BitsStored", 8) or 8) - 1)
        luma = rgb[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(luma / top, 0.0, 1.0).astype(np.float32)

    values = apply_modality_lut(stored, ds)
    lo = hi = None
    if ds.get("VOILUTSequence") and ds.VOILUTSequence[0].get("LUTData") is not None:
        # The first VOI LUT, as viewers do; its output spans the LUT's own values.
        values = apply_voi_lut(np.asarray(values).astype(np.int64), ds, index=0)
        lut = _lut_entries(ds.VOILUTSequence[0].LUTData)
        lo, hi = float(lut.min()), float(lut.max())
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        values = apply_windowing(values, ds, index=0)
        # The window's output range is pydicom's convention (the stored range, rescaled):
        # windowing two extreme values gives exactly its two ends.
        with np.errstate(over="ignore"):
            ends = apply_windowing(np.array([-1e30, 1e30]), ds, index=0)
        lo, hi = float(ends.min()), float(ends.max())
    values = np.asarray(values, dtype=np.float64)
    if lo is None:
        # No window in the file: the image's own range, as viewers do.
        lo, hi = float(values.min()), float(values.max())
    pixels = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    pixels = np.clip(pixels, 0.0, 1.0).astype(np.float32)
    if photometric == "MONOCHROME1":
        pixels = 1.0 - pixels  # MONOCHROME1: the lowest value is white
    return pixels
