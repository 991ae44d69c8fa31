"""Every file of ../shared/data/dicom-real (DICOM toolkits' public test files from real devices):
chest films are read and classified; every other file is read, shown and flagged with its own
reason; none crashes or hangs. Skipped, saying why, when the folder is absent."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np
import pytest

from tests.conftest import SHARED_DATA

DICOM_REAL = SHARED_DATA / "dicom-real"
# Generous: the slowest file (a 2140 x 1760 JPEG 2000) decodes in under a second here.
PER_FILE_SECONDS = 60
CLASSES = ("COVID-19", "Normal", "Indeterminate")
CHEST_FILMS = ["chest01_RG1_J2KI.dcm", "chest02_RG1_JLSN", "chest03_CR-MONO1-10-chest.dcm",
               "chest04_CR-MONO1-10-chest_noext", "chest06_SIIM_CR_jpeg.dcm"]
# file -> the cautions it must carry (classify --json "warnings"); files without one are flagged
# by the input gate alone (a dental film with no body part, a VOI LUT test pattern).
OTHERS = {
    "other09_RG2_hip_RLE": ["body part HIP (not chest)"],
    "other10_RG2_hip_JPLL": ["body part HIP (not chest)"],
    "other11_RG2_hip_JPLY": ["body part HIP (not chest)"],
    "other12_RG3_tibia_J2KR.dcm": ["body part EXTREMITY (not chest)"],
    "other13_RG3_tibia_RLE": ["body part EXTREMITY (not chest)"],
    "other14_CR-ModalitySequenceLUT.dcm": [],
    "other15_MG_OutOfBoundsOverlay.dcm": ["modality MG (not CR/DX)", "body part BREAST (not chest)"],
    "other16_RF_KarstenHilbert.dcm": ["modality RF (not CR/DX)"],
    "other17_XA_multiframe96.dcm": ["multi-frame (96 frames; frame 1 classified)", "modality XA (not CR/DX)"],
    "other18_vlut_04.dcm": [],
}
FAKE_MONOCHROME1 = "chest07_SIIM_Fake_MONOCHROME1.dcm"
ALL_FILES = CHEST_FILMS + [FAKE_MONOCHROME1] + list(OTHERS)


@pytest.fixture(scope="module")
def real_dir():
    if not DICOM_REAL.is_dir():
        pytest.skip(f"the real DICOM files are not at {DICOM_REAL} (set COVIDGUI_SHARED_DATA to ../shared/data)")
    return DICOM_REAL


def within_time_limit(function, *args):
    """Run ``function(*args)``, failing the test instead of hanging when it takes too long."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(function, *args).result(timeout=PER_FILE_SECONDS)
    except FutureTimeout:
        pytest.fail(f"{function.__name__}{args} took more than {PER_FILE_SECONDS} s")
    finally:
        pool.shutdown(wait=False)


def test_the_folder_holds_exactly_the_files_these_tests_know(real_dir):
    on_disk = sorted(p.name for p in real_dir.iterdir() if p.suffix not in (".md", ".txt"))
    assert on_disk == sorted(ALL_FILES)  # a new file needs its expectation here


def test_every_file_is_found_in_a_folder_scan_even_without_extension(real_dir):
    from covidgui.core.analysis.batch import find_images

    scan = find_images([real_dir])
    assert sorted(p.name for p in scan.files) == sorted(ALL_FILES)
    assert sorted(p.name for p in scan.skipped) == ["SOURCE.md", "SOURCES.txt"]


@pytest.mark.parametrize("name", CHEST_FILMS)
def test_chest_films_are_read_and_classified(real_dir, bundled_classifier, name):
    from covidgui.core.io.images import load_xray

    xray = within_time_limit(load_xray, real_dir / name)
    assert xray.format == "DICOM" and xray.pixels.ndim == 2
    assert xray.metadata["dicom"]["body_part"] == "CHEST" and xray.metadata["warnings"] == []
    result = within_time_limit(bundled_classifier.predict_file, real_dir / name)
    assert not result.withheld and result.label in CLASSES
    assert result.warnings == []


@pytest.mark.parametrize("name", list(OTHERS))
def test_other_files_are_shown_then_flagged_with_their_reason(real_dir, bundled_classifier, name):
    from covidgui.core.io.images import load_xray

    xray = within_time_limit(load_xray, real_dir / name)  # read: the window can show it
    assert xray.pixels.ndim == 2 and 0.0 <= xray.pixels.min() < xray.pixels.max() <= 1.0
    result = within_time_limit(bundled_classifier.predict_file, real_dir / name)
    assert result.warnings == OTHERS[name]
    assert len(xray.metadata["warnings"]) == len(OTHERS[name])  # the same cautions, as sentences
    # None of these is a frontal chest film: the gate withholds the answer (no probabilities).
    assert result.withheld
    assert result.to_dict()["probabilities"] is None and result.to_dict()["warnings"] == OTHERS[name]


def test_the_old_style_file_reads_the_same_with_and_without_extension(real_dir):
    from covidgui.core.io.images import load_xray

    with_ext = load_xray(real_dir / "chest03_CR-MONO1-10-chest.dcm")
    bare = load_xray(real_dir / "chest04_CR-MONO1-10-chest_noext")
    assert np.array_equal(with_ext.pixels, bare.pixels)
    assert with_ext.metadata["dicom"]["modality"] == "CR" and with_ext.mode == "MONOCHROME1"


def test_jpeg_extended_12_bit_matches_the_lossless_copy_of_the_same_film(real_dir):
    from covidgui.core.io.images import load_xray

    lossy = load_xray(real_dir / "other11_RG2_hip_JPLY")
    lossless = load_xray(real_dir / "other10_RG2_hip_JPLL")
    assert lossy.metadata["dicom"]["transfer_syntax"] == "JPEG Extended (Process 2 and 4)"
    assert lossy.pixels.shape == lossless.pixels.shape
    assert np.abs(lossy.pixels - lossless.pixels).mean() < 0.01  # lossy, but the same picture


def test_the_fake_monochrome1_file_shows_as_the_negative_its_tag_asks_for(real_dir, bundled_classifier):
    from covidgui.core.io.images import load_xray

    honest = load_xray(real_dir / "chest06_SIIM_CR_jpeg.dcm").pixels
    fake = load_xray(real_dir / FAKE_MONOCHROME1).pixels
    assert np.abs(fake - (1.0 - honest)).max() < 1e-6
    # A negative chest film is no radiograph the model knows: flagged, not silently classified.
    assert bundled_classifier.predict_file(real_dir / FAKE_MONOCHROME1).withheld


@pytest.mark.slow
def test_classify_json_and_csv_of_the_folder_carry_the_cautions(real_dir, tmp_path):
    out_csv = tmp_path / "real.csv"
    run = subprocess.run([sys.executable, "-m", "covidgui", "classify", str(real_dir), "--json", "--csv", str(out_csv)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert run.returncode == 0, run.stderr  # every file read
    records = {os.path.basename(r["path"]): r for r in map(json.loads, run.stdout.splitlines())}
    assert sorted(records) == sorted(ALL_FILES)
    for name, warnings in OTHERS.items():
        assert records[name]["warnings"] == warnings
        assert records[name]["probabilities"] is None and records[name]["confidence"] is None
    for name in CHEST_FILMS:
        assert records[name]["label"] in CLASSES and records[name]["probabilities"] is not None
    with open(out_csv, newline="", encoding="utf-8-sig") as f:
        rows = {os.path.basename(r["path"]): r for r in csv.DictReader(f)}
    assert rows["other17_XA_multiframe96.dcm"]["warnings"] == ";".join(OTHERS["other17_XA_multiframe96.dcm"])
    assert rows["other17_XA_multiframe96.dcm"]["probability COVID-19"] == ""
