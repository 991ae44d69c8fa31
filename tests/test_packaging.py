"""The PyInstaller bundle (``make package``) runs: its self-test, ``classify --json``, and the
Training tab's child process (``--training-job``).

Skipped unless dist/CovidGUI/ exists, or COVIDGUI_TEST_BUNDLE=1 asks for it (then a missing bundle
fails). COVIDGUI_BUNDLE_EXE names another executable (e.g. CovidGUI-cli.exe on Windows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, chest_like

DEFAULT_EXE = REPO / "dist" / "CovidGUI" / ("CovidGUI-cli.exe" if sys.platform == "win32" else "CovidGUI")
BUNDLE_EXE = Path(os.environ.get("COVIDGUI_BUNDLE_EXE", DEFAULT_EXE))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BUNDLE_EXE.exists() and not os.environ.get("COVIDGUI_TEST_BUNDLE"),
                       reason=f"no bundle at {BUNDLE_EXE} (run make package, or set COVIDGUI_TEST_BUNDLE=1)"),
]


def run_bundle(*args, **kwargs):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([str(BUNDLE_EXE), *map(str, args)], capture_output=True, text=True, timeout=600,
                          env=env, **kwargs)


def test_bundle_self_test():
    assert BUNDLE_EXE.exists(), f"no bundle at {BUNDLE_EXE}"
    proc = run_bundle("--self-test")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "(bundle " in proc.stdout and proc.stdout.rstrip().endswith("self-test passed")


def test_bundle_classifies_png_and_dicom(tmp_path):
    from tests.dicom_factory import make_xray_dicom

    png = tmp_path / "chest.png"
    Image.fromarray(chest_like(256)).save(png)
    dcm = make_xray_dicom(tmp_path / "chest.dcm", chest_like(256) / 255.0, compression=_rle())
    proc = run_bundle("classify", png, dcm, tmp_path / "missing.png", "--json")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 3, proc.stdout + proc.stderr[-3000:]
    assert proc.returncode == 1  # the missing file failed, the others were classified
    assert "label" in records[0] and "label" in records[1], records
    assert records[0]["label"] == records[1]["label"]  # a DICOM decodes like its PNG, in the bundle too
    assert "not found" in records[2]["error"]


def test_bundle_training_job_trains_in_its_child_process(tmp_path):
    """What the Training tab starts in a frozen app: `CovidGUI --training-job DIR`."""
    from covidgui.core.data.dataset import scan_class_folders
    from covidgui.core.training.train import TrainConfig
    from covidgui.core.training.job import MODEL_FILE, write_job
    from tests.tiny_data import make_class_folders

    files = scan_class_folders(make_class_folders(tmp_path / "data", {"Covid": 6, "Normal": 6}, size=40))
    job = tmp_path / "job"
    write_job(job, files, files, TrainConfig(input_size=32, epochs=1, batch_size=4), {"command": "test"},
              REPO / "models" / "covid_classifier.keras")
    proc = subprocess.Popen([str(BUNDLE_EXE), "--training-job", str(job)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    events = []
    for line in proc.stdout:  # stdin stays open: closing it means "stop"
        events.append(json.loads(line)["event"])
        if events[-1] in ("finished", "failed", "cancelled"):
            break
    proc.stdin.close()
    proc.wait(timeout=60)
    assert events[-1] == "finished", (events, proc.stderr.read()[-3000:])
    assert (job / MODEL_FILE).is_file()
    # Its inference graph was exported inside the frozen app (TensorFlow's converter) and runs here.
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.models.model_files import companion_path

    assert companion_path(job / MODEL_FILE, "graph").is_file()
    assert Classifier.load(job / MODEL_FILE, lungs=False).probabilities(np.zeros((1, 32, 32), np.float32)).shape == (1, 2)


def test_bundle_adapts_a_model_in_its_training_child_process(tmp_path):
    """What the Training tab starts in a frozen app for "Start from: the active model": the child
    process cross-validates (2 folds here) and adapts the model, and the result says so."""
    from covidgui.core.data.dataset import scan_class_folders
    from covidgui.core.models.model_files import save_model
    from covidgui.core.models.modelcard import read_card
    from covidgui.core.training.job import MODEL_FILE, write_job
    from covidgui.core.training.train import TrainConfig, train
    from tests.tiny_data import make_class_folders

    quick = dict(input_size=32, epochs=1, batch_size=4, augment=False, lung_guidance=0.0, patience=0)
    start_files = scan_class_folders(make_class_folders(tmp_path / "start", {"Covid": 6, "Normal": 6}, size=40))
    start = save_model(train(start_files, start_files, TrainConfig(**quick), name="tiny-start", version="1",
                             positive_class="Covid").classifier, tmp_path / "start.keras")
    site = scan_class_folders(make_class_folders(tmp_path / "site", {"Covid": 12, "Normal": 12}, size=40))
    job = tmp_path / "job"
    write_job(job, site, site.subset([False] * len(site)), TrainConfig(**quick), {"command": "test"}, start,
              adaptation={"folds": 2})
    proc = subprocess.Popen([str(BUNDLE_EXE), "--training-job", str(job)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] in ("finished", "failed", "cancelled"):
            break
    proc.stdin.close()
    proc.wait(timeout=60)
    assert events[-1]["event"] == "finished", (events[-3:], proc.stderr.read()[-3000:])
    assert any("Fold 2 of 2" in str(e) for e in events)
    adaptation = read_card(job / MODEL_FILE).training["adaptation"]
    assert adaptation["folds"] == 2 and adaptation["adapted"]["n"] == 24
    assert adaptation["operating_point"]["films"] == 24


def _rle():
    from pydicom.uid import RLELossless

    return RLELossless  # compressed, so the bundle's pydicom decoder plugins are exercised
