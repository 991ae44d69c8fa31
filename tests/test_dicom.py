"""DICOM decoding: the variants scanners write give the same pixels and predictions as their source."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1, RLELossless

from covidgui.core.io.dicom import PatientIdentity
from covidgui.core.errors import ImageLoadError
from covidgui.core.io.images import is_supported, load_xray
from tests.conftest import SHARED_DATA
from tests.dicom_factory import (PATIENT_ID, PATIENT_NAME, make_dataset, make_secondary_capture,
                                 make_structured_report, make_xray_dicom)

# name -> make_xray_dicom keywords. Every one must decode to the source image.
VARIANTS = {
    "mono2-8bit": dict(bits=8),
    "mono1-8bit": dict(bits=8, photometric="MONOCHROME1"),
    "mono2-16bit": dict(bits=16),
    "mono1-16bit": dict(bits=16, photometric="MONOCHROME1"),
    "mono2-12bit-rescale": dict(bits=12, rescale=(2.0, -1024.0)),
    "mono1-12bit-rescale-window": dict(bits=12, photometric="MONOCHROME1", rescale=(2.0, -1024.0), window=True),
    "mono2-16bit-window": dict(bits=16, window=True),
    "mono2-8bit-window": dict(bits=8, window=True),
    "rle-lossless-16bit": dict(bits=16, compression=RLELossless),
    "rle-lossless-8bit-mono1": dict(bits=8, photometric="MONOCHROME1", compression=RLELossless),
    "jpeg2000-lossless-12bit": dict(bits=12, compression=JPEG2000Lossless),
    "jpeg-baseline-8bit": dict(bits=8, compression=JPEGBaseline8Bit),
}
LOSSY = {"jpeg-baseline-8bit"}
SHARED_VLUT = SHARED_DATA / "dicom-real" / "other18_vlut_04.dcm"


@pytest.fixture(scope="module")
def val_sources(covid_val):
    """One COVID and one normal Val image: (path, pixels 0..1)."""
    picks = [sorted((covid_val / c).iterdir())[0] for c in ("Covid", "Normal")]
    return [(p, load_xray(p).pixels) for p in picks]


def ramp(rows: int = 64, cols: int = 256) -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, cols, dtype=np.float32), (rows, 1))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_decodes_to_the_source_pixels(tmp_path, variant):
    pixels = ramp()
    path = make_xray_dicom(tmp_path / f"{variant}.dcm", pixels, **VARIANTS[variant])
    xray = load_xray(path)
    assert xray.format == "DICOM"
    assert xray.pixels.dtype == np.float32 and xray.pixels.shape == pixels.shape
    tolerance = 0.03 if variant in LOSSY else 1 / 255
    assert np.abs(xray.pixels - pixels).max() <= tolerance
    # Left (dark in the source) stays dark whatever the photometric interpretation.
    assert xray.pixels[:, :8].mean() < 0.05 and xray.pixels[:, -8:].mean() > 0.95


def test_variants_of_real_xrays_give_the_source_label(tmp_path, val_sources, bundled_classifier):
    for source, pixels in val_sources:
        # The source at full resolution, as the DICOM holds it (predict_file would decode a JPEG
        # source at reduced scale, which moves probabilities by up to ~0.05 on its own).
        expected = bundled_classifier.predict_pixels(pixels, source)
        for variant, options in VARIANTS.items():
            path = make_xray_dicom(tmp_path / f"{source.stem}-{variant}.dcm", pixels, **options)
            got = bundled_classifier.predict_file(path)
            assert got.label == expected.label, (source.name, variant)
            for name, p in expected.probabilities.items():
                assert got.probabilities[name] == pytest.approx(p, abs=0.05), (source.name, variant, name)


def test_the_stored_window_is_applied(tmp_path):
    path = make_xray_dicom(tmp_path / "w.dcm", ramp(), bits=8)
    import pydicom

    ds = pydicom.dcmread(path)
    ds.WindowCenter, ds.WindowWidth = 128, 64  # values below ~96 black, above ~160 white
    ds.save_as(path)
    pixels = load_xray(path).pixels[0]
    stored = np.round(np.linspace(0, 1, 256) * 255)
    assert np.all(pixels[stored < 95] == 0.0)
    assert np.all(pixels[stored > 160] == 1.0)
    inside = (stored > 100) & (stored < 155)
    assert np.all(np.diff(pixels[inside]) > 0)


def test_the_first_voi_lut_is_applied(tmp_path):
    import pydicom
    from pydicom.dataset import Dataset

    path = make_xray_dicom(tmp_path / "lut.dcm", ramp(), bits=8)
    ds = pydicom.dcmread(path)
    first, second = Dataset(), Dataset()
    first.LUTDescriptor = [256, 0, 8]
    first.add_new("LUTData", "US", list(range(255, -1, -1)))  # an inverting LUT
    second.LUTDescriptor = [256, 0, 8]
    second.add_new("LUTData", "US", list(range(256)))
    ds.VOILUTSequence = [first, second]
    ds.save_as(path)
    pixels = load_xray(path).pixels
    assert np.allclose(pixels, 1.0 - ramp(), atol=1 / 255)


def test_rescale_without_window_uses_the_image_range(tmp_path):
    dim = ramp() * 0.5 + 0.25  # stored values occupy the middle of the 12-bit range
    path = make_xray_dicom(tmp_path / "r.dcm", dim, bits=12, rescale=(-1.0, 4095.0))
    pixels = load_xray(path).pixels
    # A negative slope flips the values; the display spans the full range from the image's own min..max.
    assert pixels.min() == pytest.approx(0.0) and pixels.max() == pytest.approx(1.0)
    assert pixels[:, 0].mean() > pixels[:, -1].mean()


def test_extensionless_dicom_is_recognised_by_its_marker(tmp_path):
    path = make_xray_dicom(tmp_path / "a.dcm", ramp(), bits=16)
    bare = tmp_path / "IM000001"
    shutil.move(path, bare)
    assert is_supported(bare)
    assert load_xray(bare).format == "DICOM"
    not_dicom = tmp_path / "notes"
    not_dicom.write_text("x" * 200)
    assert not is_supported(not_dicom)


def test_multiframe_uses_the_first_frame_and_says_so(tmp_path):
    path = make_xray_dicom(tmp_path / "mf.dcm", ramp(), bits=8, frames=3)
    xray = load_xray(path)
    assert xray.pixels.shape == ramp().shape
    assert np.abs(xray.pixels - ramp()).max() <= 1 / 255  # frame 1, not the inverted frames 2-3
    assert xray.metadata["frame_used"] == 1
    assert any("3 frames" in w and "first" in w for w in xray.metadata["warnings"])


def test_lateral_view_is_classified_but_flagged(tmp_path, bundled_classifier):
    path = make_xray_dicom(tmp_path / "lat.dcm", ramp(256, 256), bits=8, view_position="LL")
    xray = load_xray(path)
    assert any("frontal" in w for w in xray.metadata["warnings"])
    assert xray.metadata["dicom"]["view_position"] == "LL"
    # classified (a ramp is no chest X-ray, so the gate may withhold the label: class_label is the answer)
    assert bundled_classifier.predict_file(path).class_label in ("COVID-19", "Normal", "Indeterminate")


def test_frontal_view_has_no_warning(tmp_path):
    xray = load_xray(make_xray_dicom(tmp_path / "pa.dcm", ramp(), bits=8, view_position="PA"))
    assert xray.metadata["warnings"] == []
    info = xray.metadata["dicom"]
    assert (info["modality"], info["study_date"], info["body_part"]) == ("DX", "2024-05-17", "CHEST")


def test_structured_report_says_it_holds_no_image(tmp_path):
    with pytest.raises(ImageLoadError, match="holds no image.*SR"):
        load_xray(make_structured_report(tmp_path / "sr.dcm"))


def test_truncated_pixel_data_is_reported(tmp_path):
    path = make_xray_dicom(tmp_path / "t.dcm", ramp(), bits=16)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - len(data) // 3])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_xray(path)


def test_file_cut_in_its_header_is_reported(tmp_path):
    path = make_xray_dicom(tmp_path / "h.dcm", ramp(), bits=16)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_xray(path)


def test_png_renamed_dcm_is_named_for_what_it_is(tmp_path, chest_png):
    fake = tmp_path / "scan.dcm"
    shutil.copy(chest_png, fake)
    with pytest.raises(ImageLoadError, match="PNG image, not a DICOM file"):
        load_xray(fake)


def test_garbage_named_dcm_is_not_dicom(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(ImageLoadError, match="not a DICOM file"):
        load_xray(junk)


def test_rgb_secondary_capture_becomes_grey(tmp_path):
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, 24:] = 255
    xray = load_xray(make_secondary_capture(tmp_path / "sc.dcm", rgb))
    assert xray.pixels[:, :24].max() == 0.0 and xray.pixels[:, 24:].min() == pytest.approx(1.0)


def test_patient_identifiers_are_kept_but_never_printed(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    xray = load_xray(make_xray_dicom(tmp_path / "p.dcm", ramp(), bits=8))
    patient = xray.metadata["patient"]
    assert isinstance(patient, PatientIdentity)
    assert patient.name == PATIENT_NAME.replace("^", " ") and patient.patient_id == PATIENT_ID
    assert patient.birth_date == "1961-02-03"
    for text in (repr(xray), str(xray.metadata), caplog.text):
        assert "Testperson" not in text and PATIENT_ID not in text


def test_dataset_header_only_helper_is_complete():
    # The factory's header is what the panels read; keep it honest about what it contains.
    ds = make_dataset()
    assert ds.Modality == "DX" and ds.ViewPosition == "PA"


@pytest.mark.parametrize("syntax, tolerance", [(JPEGLosslessSV1, 1 / 4095), (JPEGExtended12Bit, 0.02)])
def test_jpeg_lossless_and_extended_12_bit_files_decode(tmp_path, syntax, tolerance):
    from tests.conftest import chest_like

    source = chest_like(128, seed=3) / 255.0
    xray = load_xray(make_xray_dicom(tmp_path / "chest.dcm", source, bits=12, compression=syntax))
    expected = np.round(source * 4095) / 4095
    # No window in the file: the display spans the image's own range.
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    assert xray.bit_depth == 12
    assert np.abs(xray.pixels - expected).max() <= tolerance + 1e-6
    assert xray.metadata["dicom"]["transfer_syntax"] == syntax.name


def _old_style_copy(source, dest):
    """The data set of ``source`` written as ACR-NEMA-era archives did: implicit VR little endian,
    no 128-byte preamble, no "DICM", no file meta information."""
    import pydicom
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(source)
    with open(dest, "wb") as f:
        out = pydicom.filebase.DicomFileLike(f)
        out.is_implicit_VR, out.is_little_endian = True, True
        write_dataset(out, ds)
    return dest


@pytest.mark.parametrize("name", ["old.dcm", "OLDFILE"])
def test_old_style_file_without_preamble_or_meta_is_read(tmp_path, name):
    source = make_xray_dicom(tmp_path / "src.dcm", ramp(), bits=16, photometric="MONOCHROME1")
    old = _old_style_copy(source, tmp_path / name)
    assert old.read_bytes()[:2] == b"\x08\x00"  # starts right at the first data element
    assert is_supported(old)
    xray = load_xray(old)
    assert np.abs(xray.pixels - ramp()).max() <= 1 / 255  # MONOCHROME1 honoured, like the original
    assert xray.metadata["dicom"]["transfer_syntax"] == "Implicit VR Little Endian"


def test_files_that_merely_start_with_08_are_not_taken_for_dicom(tmp_path):
    from covidgui.core.io.dicom import starts_like_headerless_dicom

    odd = tmp_path / "blob"
    odd.write_bytes(b"\x08\x00\x10\x00" + (10**6).to_bytes(4, "little") + b"x" * 100)  # length beyond the file
    assert not starts_like_headerless_dicom(odd) and not is_supported(odd)
    text = tmp_path / "readme"
    text.write_text("CovidGUI notes\n" * 10)
    assert not starts_like_headerless_dicom(text)


def test_12_bit_jpeg_extended_that_libjpeg_refuses_is_decoded(tmp_path):
    """Some encoders write a sequential scan's spectral selection as 0..0 (the WG04 file RG2_JPLY
    does); pylibjpeg-libjpeg rejects that, libjpeg-turbo (covidgui.core.io.dicom_jpeg12) decodes it."""
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames

    from tests.conftest import chest_like

    source = chest_like(128, seed=5) / 255.0
    path = make_xray_dicom(tmp_path / "jply.dcm", source, bits=12, compression=JPEGExtended12Bit)
    ds = pydicom.dcmread(path)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    sos = frame.index(b"\xff\xda")
    components = frame[sos + 4]
    se = sos + 5 + 2 * components + 1  # Ss, then Se
    assert frame[se] == 63
    frame[se] = 0
    ds.PixelData = encapsulate([bytes(frame)])
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(Exception, match="misplaced marker"):  # the first plugin's refusal
        from pydicom.pixels import pixel_array

        pixel_array(ds, index=0, decoding_plugin="pylibjpeg")
    xray = load_xray(path)
    expected = np.round(source * 4095) / 4095
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    assert np.abs(xray.pixels - expected).max() <= 0.02


def test_file_levels_are_in_the_files_units_after_the_modality_lut(tmp_path):
    path = make_xray_dicom(tmp_path / "r.dcm", ramp(), bits=12, rescale=(2.0, -1024.0), window=True,
                           photometric="MONOCHROME1")
    xray = load_xray(path, viewer_values=True)
    levels = xray.metadata["file_levels"]
    assert levels.stored_range == (-1024.0, 4095 * 2 - 1024.0)
    assert levels.window[0] == pytest.approx(3071.5, abs=1) and levels.inverted
    assert xray.values.dtype == np.float32 and xray.values.min() == -1024.0
    # At the file's window the viewer shows what the model was given.
    c, w = levels.to_view(*levels.window)
    shown = np.clip((levels.normalise(xray.values) - (c - w / 2)) / w, 0, 1)
    assert np.abs(shown - xray.pixels).max() < 2 / 255
    assert levels.from_view(c, w) == pytest.approx(levels.window)
    assert load_xray(path).values is None  # batches do not keep them


def test_a_voi_lut_curve_has_no_linear_levels(tmp_path):
    from covidgui.core.io.dicom import load_dicom

    xray = load_dicom(SHARED_VLUT) if SHARED_VLUT.is_file() else None
    if xray is None:
        pytest.skip(f"{SHARED_VLUT} not found")
    assert "file_levels" not in xray.metadata

