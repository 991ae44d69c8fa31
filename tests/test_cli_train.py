"""`covidgui train` from a terminal: a tiny model end to end, its card, bad folders, tf.distribute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.test_cli import run_cli
from tests.tiny_data import make_class_folders

TINY = ("--epochs", "2", "--input-size", "48", "--batch-size", "8")


def test_train_writes_a_model_whose_card_holds_the_metrics(tmp_path):
    train = make_class_folders(tmp_path / "train", {"Covid": 40, "Normal": 40})
    val = make_class_folders(tmp_path / "val", {"Covid": 10, "Normal": 10})
    (train / "Normal" / "broken.png").write_bytes(b"")
    out = tmp_path / "models" / "tiny.keras"
    done = run_cli("train", train, "--val", val, *TINY, "--out", out, "--name", "tiny", "--precision", "bfloat16")
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
    assert card["training"]["trained_in"] == "mixed_bfloat16"  # as asked; the file computes in float32 (below)
    assert str(train / "Normal" / "broken.png") in card["training"]["left_out_unreadable"]
    # The written model loads (safe mode, card checked) and classifies.
    from covidgui.core.inference.classifier import Classifier

    loaded = Classifier.load(out)
    assert {layer.dtype_policy.name for layer in loaded.keras_model.layers} == {"float32"}
    prediction = loaded.predict_file(val / "Covid" / "covid_000.png")
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


def _free_loopback_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.parametrize("guidance", ["default", "0"])
def test_multi_worker_strategy_trains_with_two_workers_on_loopback(tmp_path, guidance):
    """Two worker processes on this machine (127.0.0.1 only), one epoch on tiny images: both finish
    with the same figures and the chief (worker 0) writes the model and its card."""
    train = make_class_folders(tmp_path / "train", {"Covid": 16, "Normal": 16})
    out = tmp_path / "out" / "mw.keras"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_loopback_ports(2)]}
    args = ["train", str(train), "--val-split", "0.25", "--epochs", "1", "--input-size", "48", "--batch-size", "8",
            "--strategy", "multi-worker", "--out", str(out)] + (["--lung-guidance", "0"] if guidance == "0" else [])
    workers = [subprocess.Popen([sys.executable, "-m", "covidgui", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                     "TF_CONFIG": json.dumps({"cluster": cluster,
                                                              "task": {"type": "worker", "index": i}})})
               for i in range(2)]
    try:
        results = [w.communicate(timeout=240) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (stdout, stderr) in zip(workers, results):
        assert w.returncode == 0, stderr[-3000:]
        assert "epoch 1/1" in stderr
    chief, other = (json.loads(stdout) for stdout, _ in results)
    assert chief["model"] == str(out) and other["model"] is None
    assert chief["accuracy"] == other["accuracy"]  # one model, trained in step on both workers
    assert "not the chief" in results[1][1]
    card = json.loads(out.with_suffix(".json").read_text())
    # MultiWorkerMirroredStrategy's class is named CollectiveAllReduceStrategy.
    assert card["training"]["distribution"] == {"strategy": "CollectiveAllReduceStrategy", "replicas": 2}
    assert (card["training"]["lung_guidance"] is None) == (guidance == "0")
    assert sorted(p.name for p in out.parent.iterdir()) == ["mw.gate.npz", "mw.json", "mw.keras", "mw.tflite"]
    from covidgui.core.inference.classifier import Classifier

    assert Classifier.load(out, lungs=False).gate is not None


def _train_config(tmp_path, monkeypatch, *options):
    """The TrainConfig `covidgui train ... options` hands to the run (None when it refused) and its
    exit code; the run itself is replaced: these tests are about the options."""
    from types import SimpleNamespace

    import covidgui.core.training.run as run
    from covidgui.cli import main

    seen = {}

    def run_training(train, val, config, *args, **kwargs):
        seen["config"] = config
        return SimpleNamespace(model_path=None, report={}, unreadable={})

    monkeypatch.setattr(run, "run_training", run_training)
    train = make_class_folders(tmp_path / "train", {"Covid": 6, "Normal": 6})
    code = main(["train", str(train), "--out", str(tmp_path / "m.keras"), "--verbose", *map(str, options)])
    return seen.get("config"), code


def test_train_builds_the_network_asked_for_from_its_pretrained_weights(tmp_path, monkeypatch, capsys):
    from covidgui.cli import NETWORKS
    from covidgui.core.training.network import new_network

    for name in NETWORKS:  # every name --architecture offers is one the trainer builds
        assert new_network(name, 32, 2).count_params() > 0
    weights = tmp_path / "lite0-imagenet.npz"
    weights.write_bytes(b"")
    config, code = _train_config(tmp_path, monkeypatch, "--architecture", "efficientnet-lite0",
                                 "--pretrained-weights", weights)
    assert code == 0 and config.architecture == "efficientnet-lite0" and config.pretrained_weights == str(weights)
    config, code = _train_config(tmp_path / "default", monkeypatch)
    assert code == 0 and config.architecture == "compact" and config.pretrained_weights == ""


@pytest.mark.parametrize("options, message", [
    (("--pretrained-weights", "{tmp}/w.npz"), "needs --architecture efficientnet-lite0"),
    (("--architecture", "efficientnet-lite0", "--pretrained-weights", "{tmp}/missing.npz"), "missing.npz does not exist"),
    (("--architecture", "efficientnet-lite0", "--start-from", "bundled"), "keeps the network"),
    (("--precision", "bfloat16", "--start-from", "bundled"), "trains in float32, as its file says"),
])
def test_train_refuses_network_options_that_cannot_apply_and_says_why(tmp_path, monkeypatch, capsys, options,
                                                                      message):
    (tmp_path / "w.npz").write_bytes(b"")
    config, code = _train_config(tmp_path, monkeypatch, *(o.format(tmp=tmp_path) for o in options))
    assert code == 2 and config is None
    assert message in capsys.readouterr().err
