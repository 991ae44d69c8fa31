"""`covidgui train` from a terminal: a tiny model end to end, its card, bad folders, tf.distribute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.test_cli import run_cli
from tests.tiny_data import make_class_folders

TINY = ("--epochs", "2", "--input-size", "48", "--batch-size", "8")


def test_train_writes_a_model_whose_card_holds_the_metrics(tmp_path):
    train = make_class_folders(tmp_path / "train", {"Covid": 40, "Normal": 40})
    val = make_class_folders(tmp_path / "val", {"Covid": 10, "Normal": 10})
    (train / "Normal" / "broken.png").write_bytes(b"")
    out = tmp_path / "models" / "tiny.keras"
    done = run_cli("train", train, "--val", val, *TINY, "--out", out, "--name", "tiny")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["model"] == str(out) and printed["n"] == 20
    assert 0.0 <= printed["accuracy"] <= 1.0
    assert "epoch 2/2" in done.stderr
    assert "broken.png: the file is empty" in done.stderr  # the summary lists unreadable files

    card = json.loads(out.with_suffix(".json").read_text())
    validation = card["metrics"]["validation"]
    assert validation["n"] == 20 and validation["accuracy"] == printed["accuracy"]
    assert sum(map(sum, validation["confusion_matrix"])) == 20
    assert set(validation["per_class"]) == {"Covid", "Normal"}
    assert len(validation["per_class"]["Covid"]["sensitivity_ci95"]) == 2
    assert card["training"]["config"]["epochs"] == 2 and card["training"]["distribution"]["replicas"] == 1
    assert str(train / "Normal" / "broken.png") in card["training"]["left_out_unreadable"]
    # The written model loads (safe mode, card checked) and classifies.
    from covidgui.core.model import Classifier

    prediction = Classifier.load(out).predict_file(val / "Covid" / "covid_000.png")
    assert prediction.class_name in ("Covid", "Normal")


def test_a_one_class_folder_is_refused_and_nothing_is_written(tmp_path):
    make_class_folders(tmp_path / "train", {"Covid": 30})
    out = tmp_path / "m.keras"
    done = run_cli("train", tmp_path / "train", *TINY, "--out", out)
    assert done.returncode == 2
    assert "at least two classes" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path):
    train = make_class_folders(tmp_path / "train", {"Covid": 24, "Normal": 24})
    out = tmp_path / "mirrored.keras"
    # Its own process: logical devices must be set before TensorFlow initialises, once per process.
    code = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from covidgui.cli import main
        raise SystemExit(main(["train", {str(train)!r}, "--val-split", "0.25", "--epochs", "1", "--input-size", "48",
                               "--batch-size", "8", "--strategy", "mirrored", "--out", {str(out)!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["distribution"] == {"strategy": "MirroredStrategy", "replicas": 2}
    assert card["metrics"]["validation"]["n"] == 12
