"""The terminal commands, run as a user runs them (a subprocess of the installed entry point)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "covidgui", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_classify_json_prints_one_object_per_file_and_exits_1_on_a_bad_file(chest_png, tmp_path):
    jpg = tmp_path / "b.jpg"
    from PIL import Image

    Image.open(chest_png).convert("RGB").save(jpg)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"nope")
    out = run_cli("classify", chest_png, bad, jpg, "--json")
    assert out.returncode == 1, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(chest_png), str(bad), str(jpg)]
    good = [records[0], records[2]]
    for r in good:
        # A generated image may be withheld by the input gate; then not_xray says so.
        assert r["label"] in ("COVID-19", "Normal", "Indeterminate", "Not a chest X-ray")
        assert r["not_xray"] == (r["label"] == "Not a chest X-ray")
        if r["not_xray"]:  # withheld: no numbers of an image the model should not judge
            assert r["confidence"] is None and r["probabilities"] is None
        else:
            # Indeterminate: the probabilities, no confidence for a label it did not give (issue 28).
            assert r["confidence"] is None if r["indeterminate"] else 0.5 <= r["confidence"] <= 1.0
            assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert r["classified_anyway"] is False and r["warnings"] == []
        # The shortcut check: null where the lung model finds no plausible lungs, or the image was withheld.
        assert r["lung_only_label"] in ("COVID-19", "Normal", None)
        assert (r["lung_only_confidence"] is None) == (r["lung_only_label"] is None)
        assert r["depends_on_outside_lungs"] in (True, False, None)
        if r["not_xray"]:
            assert r["lung_only_label"] is None
    assert "error" in records[1] and "not an image" in records[1]["error"]


def test_classify_exits_0_when_all_files_are_good(chest_png):
    out = run_cli("classify", chest_png)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{chest_png}: ")
    # A generated image may be withheld by the input gate: then no numbers, and how to get them.
    if "Not a chest X-ray" in out.stdout:
        assert "confidence" not in out.stdout and "%" not in out.stdout and "--classify-anyway" in out.stdout
    else:  # an indeterminate result gives the class probabilities, no confidence
        assert ("confidence" in out.stdout) != (": Indeterminate (" in out.stdout)


def test_a_withheld_image_has_no_probabilities_unless_classified_anyway(tmp_path):
    """A photograph-like colour image is no chest X-ray: no numbers, in text and JSON, unless asked."""
    from PIL import Image

    rng = np.random.default_rng(1)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (200, 260, 3), dtype=np.uint8)).save(photo)
    text = run_cli("classify", photo)
    assert "Not a chest X-ray" in text.stdout and "%" not in text.stdout, text.stdout
    record = json.loads(run_cli("classify", photo, "--json").stdout)
    assert record["not_xray"] and record["label"] == "Not a chest X-ray"
    assert record["confidence"] is None and record["probabilities"] is None and not record["classified_anyway"]
    anyway = run_cli("classify", photo, "--classify-anyway")
    assert "classified anyway" in anyway.stdout
    assert ("confidence" in anyway.stdout) != (": Indeterminate (" in anyway.stdout)
    record = json.loads(run_cli("classify", photo, "--json", "--classify-anyway").stdout)
    assert record["classified_anyway"] and record["label"] in ("COVID-19", "Normal", "Indeterminate")
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_help_lists_the_commands():
    out = run_cli("--help", timeout=60)
    assert out.returncode == 0
    for command in ("classify", "train", "evaluate", "gui"):
        assert command in out.stdout


def test_tensorflows_native_log_lines_are_recognised():
    from covidgui.core.io.logs import is_native_noise

    assert is_native_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    assert is_native_noise("I0000 00:00:1795933239.169070   19864 port.cc:153] oneDNN custom operations are on.\n")
    assert is_native_noise("W0000 00:00:1795933239.169070   19864 cuda_executor.cc:1] could not open\n")
    assert not is_native_noise("F0000 00:00:1795933239.169070   19864 check.cc:1] Check failed\n")  # explains a crash
    assert is_native_noise("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert not is_native_noise("epoch 1/2: accuracy 0.9, loss 0.2\n")
    assert not is_native_noise("covidgui classify: no image files found in x\n")


def test_a_cli_call_shows_only_covidguis_own_lines(chest_png, tmp_path):
    # classify runs the model with LiteRT and no longer imports TensorFlow, whose native start-up
    # lines the filter hides (is_native_noise above; train still imports it).
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    quiet = subprocess.run([sys.executable, "-m", "covidgui", "classify", str(chest_png), str(tmp_path / "none.png")],
                           capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 1
    assert "absl::InitializeLog" not in quiet.stderr and "oneDNN" not in quiet.stderr and "I0000" not in quiet.stderr
    assert "XNNPACK" not in quiet.stderr  # LiteRT's own start-up line
    assert f"{chest_png}: " in quiet.stdout and "none.png: ERROR" in quiet.stdout  # CovidGUI's own output stays
