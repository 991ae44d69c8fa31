"""Building DICOM files with pydicom for tests: from pixels 0..1, in the variants scanners write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, JPEGBaseline8Bit,
                         JPEGExtended12Bit, JPEGLosslessSV1, SecondaryCaptureImageStorage, generate_uid)

# pydicom encodes none of these; the tests encode them themselves and pydicom only encapsulates.
JPEG_SYNTAXES = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1)

PATIENT_NAME = "Testperson^Alice"
PATIENT_ID = "PID-0042"
PATIENT_BIRTH_DATE = "19610203"


def make_dataset(sop_class=DigitalXRayImageStorageForPresentation, modality: str = "DX",
                 view_position: str = "PA") -> FileDataset:
    """A DICOM header with patient, study and equipment attributes, and no pixel data yet."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = PATIENT_BIRTH_DATE
    ds.Modality = modality
    ds.ViewPosition = view_position
    ds.BodyPartExamined = "CHEST"
    ds.StudyDate = "20240517"
    ds.Manufacturer = "Test Imaging Inc."
    return ds


def make_xray_dicom(path: Path, pixels: np.ndarray, *, bits: int = 8, photometric: str = "MONOCHROME2",
                    rescale: tuple[float, float] | None = None, window: bool = False,
                    compression=None, view_position: str = "PA", frames: int = 1) -> Path:
    """Write ``pixels`` (H, W) 0..1 as a DICOM image that a viewer shows as those same pixels.

    bits: 8, 12 or 16 stored bits (12 is stored in 16-bit words, as CR/DX detectors write).
    photometric: MONOCHROME1 stores the inverted values.
    rescale: (slope, intercept); the stored values are chosen so the rescaled ones carry the image.
    window: add a Window Center/Width spanning exactly the image's rescaled range, so the
        windowed image is the source image.
    compression: a transfer syntax UID that pydicom can encode (RLE Lossless, JPEG 2000 Lossless),
        or one of JPEG_SYNTAXES (see :func:`_encapsulate_jpeg`).
    frames: > 1 writes a multi-frame file whose later frames are the inverted image.
    """
    top = 2**bits - 1
    stored = np.round(np.clip(pixels, 0, 1) * top).astype(np.uint16 if bits > 8 else np.uint8)
    if photometric == "MONOCHROME1":
        stored = (top - stored).astype(stored.dtype)
    ds = make_dataset(view_position=view_position)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "US"
    if window:
        slope, intercept = rescale or (1.0, 0.0)
        lo, hi = sorted((intercept, top * slope + intercept))
        # LINEAR windowing maps [c - 0.5 - (w - 1)/2, c - 0.5 + (w - 1)/2] onto the output range.
        ds.WindowCenter = (lo + hi) / 2 + 0.5
        ds.WindowWidth = hi - lo + 1
    data = stored
    if frames > 1:
        others = (top - stored).astype(stored.dtype)
        data = np.stack([stored] + [others] * (frames - 1))
        ds.NumberOfFrames = frames
    if compression in JPEG_SYNTAXES:
        _encapsulate_jpeg(ds, stored, compression)
    else:
        ds.PixelData = data.tobytes()
        if compression is not None:
            ds.compress(compression, data)
    ds.save_as(path, enforce_file_format=True)
    return path


def _encapsulate_jpeg(ds, stored: np.ndarray, syntax) -> None:
    """Encode one frame as JPEG and encapsulate it (pydicom has no JPEG encoder).

    Baseline: Pillow. JPEG Extended (12-bit, lossy) and JPEG Lossless first-order prediction (SV1):
    libjpeg-turbo through imagecodecs. The app decodes them with pylibjpeg-libjpeg, a different
    library, so a test through these files checks the decoding, not the encoder against itself.
    """
    import io

    from pydicom.encaps import encapsulate

    if syntax == JPEGBaseline8Bit:
        from PIL import Image

        assert stored.dtype == np.uint8, "JPEG baseline is 8-bit"
        buf = io.BytesIO()
        Image.fromarray(stored).save(buf, format="JPEG", quality=95)
        frame = buf.getvalue()
    else:
        import imagecodecs

        bits = int(ds.BitsStored)
        assert bits <= 12 and stored.dtype == np.uint16, "JPEG Extended and Lossless here are 12-bit"
        lossless = syntax == JPEGLosslessSV1
        frame = bytes(imagecodecs.jpeg8_encode(stored, level=None if lossless else 95, lossless=lossless,
                                               predictor=1 if lossless else None, bitspersample=12))
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    if syntax != JPEGLosslessSV1:
        ds.LossyImageCompression = "01"


def make_structured_report(path: Path) -> Path:
    """A Basic Text SR: a valid DICOM file with no image in it."""
    ds = make_dataset(sop_class=pydicom.uid.BasicTextSRStorage, modality="SR")
    del ds.ViewPosition
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.save_as(path, enforce_file_format=True)
    return path


def make_secondary_capture(path: Path, rgb: np.ndarray) -> Path:
    """An RGB secondary capture (a screenshot of a viewer), uint8 (H, W, 3)."""
    ds = make_dataset(sop_class=SecondaryCaptureImageStorage, modality="OT", view_position="")
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = "RGB"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
