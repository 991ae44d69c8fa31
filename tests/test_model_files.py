"""A model is saved and loaded as one unit (network, input gate, card); foreign or missing parts are
refused; safe mode refuses code in a model file; `train --out` never overwrites a kept model."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from covidgui.core.models import model_files
from covidgui.core.models import registry
from covidgui.core.errors import ModelError
from covidgui.core.inference.gate import InputGate, gate_path
from covidgui.core.inference.classifier import NO_INPUT_CHECK_WARNING, Classifier
from covidgui.core.models.model_files import bundled_model_path
from covidgui.core.models.modelcard import ModelCard, card_path, read_card
from covidgui.core.training.train import build_classifier
from covidgui.core.models.model_files import save_model
from tests.test_cli import run_cli

SIZE = 32


def _gate(seed: int, features: int = 128) -> InputGate:
    rng = np.random.default_rng(seed)
    return InputGate(rng.random(1024, dtype=np.float32), rng.random((4, 1024), dtype=np.float32),
                     rng.random(features), np.zeros(3), np.ones(3), np.full(3, 3.0 + seed),
                     feature_directions=rng.random((features, 8), dtype=np.float32),
                     feature_references=rng.random((20, 8)).astype(np.float16))


def _classifier(seed: int = 0, gate: bool = True) -> Classifier:
    card = ModelCard(name="tiny", version="0", classes=["Covid", "Normal"], input_size=SIZE)
    return Classifier(build_classifier(SIZE, 2, seed), card, gate=_gate(seed) if gate else None)


def _load(path) -> Classifier:
    return Classifier.load(path, lungs=False)


def test_a_version_saved_from_a_training_folder_keeps_its_gate(tmp_path):
    trained = save_model(_classifier(), tmp_path / "job" / "trained.keras")
    version = registry.save_version_file(trained, "Ward 3")
    assert gate_path(version.path).is_file()
    loaded = _load(version.path)
    assert loaded.gate is not None and loaded.input_check_warning is None
    assert np.array_equal(loaded.gate.thresholds, _gate(0).thresholds)
    assert read_card(version.path).files["gate"] == model_files.file_digest(gate_path(version.path))
    registry.delete_version(version.id)
    assert list(registry.models_dir().iterdir()) == []  # the gate goes with the model


def test_the_bundled_model_saved_as_a_version_still_rejects_a_photograph(tmp_path):
    """What "Save as new model…" did wrong: the saved copy lost its gate and called a photograph
    Indeterminate instead of "Not a chest X-ray"."""
    import matplotlib.cbook as cbook

    job = tmp_path / "job"
    job.mkdir()
    bundled = bundled_model_path()
    for src in (bundled, card_path(bundled), gate_path(bundled), model_files.companion_path(bundled, "graph")):
        shutil.copyfile(src, job / src.name.replace("covid_classifier", "trained"))
    version = registry.save_version_file(job / "trained.keras", "copy")
    photo = tmp_path / "portrait.jpg"
    Image.open(cbook.get_sample_data("grace_hopper.jpg")).save(photo)
    assert Classifier.load(version.path).predict_file(photo).not_xray


def test_a_missing_gate_is_refused_with_a_clear_message(tmp_path):
    path = save_model(_classifier(), tmp_path / "m.keras")
    gate_path(path).unlink()
    with pytest.raises(ModelError, match="input gate m.gate.npz is missing"):
        _load(path)
    with pytest.raises(ModelError, match="missing"):  # and it cannot be kept as a version either
        registry.save_version_file(path, "x")
    assert not registry.models_dir().exists() or not any(registry.models_dir().glob("*.keras"))


def test_another_models_gate_is_refused(tmp_path):
    a = save_model(_classifier(0), tmp_path / "a.keras")
    b = save_model(_classifier(1), tmp_path / "b.keras")
    shutil.copyfile(gate_path(b), gate_path(a))
    with pytest.raises(ModelError, match="does not belong to a.keras"):
        _load(a)


def test_a_gate_of_the_wrong_shape_is_refused_even_without_digests(tmp_path):
    path = save_model(_classifier(), tmp_path / "m.keras")
    card = json.loads(card_path(path).read_text())
    del card["files"]  # a card from before digests were recorded
    card_path(path).write_text(json.dumps(card))
    _gate(5, features=7).save(gate_path(path))
    with pytest.raises(ModelError, match="does not belong"):
        _load(path)


def test_a_crash_between_two_files_never_pairs_a_model_with_a_strangers_gate(tmp_path, monkeypatch):
    path = save_model(_classifier(0), tmp_path / "m.keras")
    real_replace = os.replace

    def crash_after_the_gate(src, dst):
        if str(dst) == str(path):  # the new gate is in place; the new network is not
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(model_files.os, "replace", crash_after_the_gate)
    with pytest.raises(OSError):
        save_model(_classifier(1), path)
    monkeypatch.undo()
    with pytest.raises(ModelError, match="does not belong"):  # the old model, the new gate: refused
        _load(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gate.npz", "m.json", "m.keras", "m.tflite"]  # no temp files


def test_a_crash_while_keeping_a_version_leaves_no_version(tmp_path, monkeypatch):
    trained = save_model(_classifier(), tmp_path / "trained.keras")
    real_replace = os.replace

    def crash_on_the_model(src, dst):
        if str(dst).endswith(".keras") and dst.parent == registry.models_dir():
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(model_files.os, "replace", crash_on_the_model)
    with pytest.raises(OSError):
        registry.save_version_file(trained, "Ward 3")
    monkeypatch.undo()
    assert [v.id for v in registry.list_versions()] == ["bundled"]


def test_a_model_without_a_gate_loads_with_a_visible_no_input_check_warning(tmp_path, chest_png):
    path = save_model(_classifier(gate=False), tmp_path / "plain.keras")
    assert read_card(path).files["gate"] is None
    _gate(3).save(gate_path(path))  # a stray gate of that name is not this model's
    loaded = _load(path)
    assert loaded.gate is None and loaded.input_check_warning == NO_INPUT_CHECK_WARNING
    done = run_cli("classify", chest_png, "--model", path)
    assert done.returncode == 0, done.stderr
    assert "No input check" in done.stderr
    pdf = tmp_path / "r.pdf"
    done = run_cli("report", chest_png, "-o", pdf, "--model", path)
    assert done.returncode == 0, done.stderr
    from tests.test_report import pdf_text

    assert "No input check" in pdf_text(pdf)


def test_the_window_shows_no_input_check_for_a_model_without_a_gate(qtbot, tmp_path):
    from covidgui.gui.main_window import MainWindow

    path = save_model(_classifier(gate=False), tmp_path / "plain.keras")
    window = MainWindow(str(path))
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.model_ready, timeout=60_000):
        window.start_loading_model()
    assert window.input_check_label.isVisibleTo(window) and "no input gate" in window.input_check_label.toolTip()
    window.close()


def test_safe_mode_refuses_a_model_file_with_a_lambda_layer(tmp_path):
    """A Lambda layer carries Python bytecode; loading it outside safe mode would run it."""
    import keras

    marker = tmp_path / "code-ran"
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Lambda(lambda t, m=str(marker): (open(m, "w").close(), t)[1])(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(x))
    path = tmp_path / "evil.keras"
    keras.saving.save_model(keras.Model(inputs, x), path)
    marker.unlink(missing_ok=True)  # building the model ran the lambda once; loading must not
    card_path(path).write_text(ModelCard(name="evil", version="1", classes=["Covid", "Normal"],
                                         input_size=SIZE).to_json())
    with pytest.raises(ModelError, match="(?i)lambda"):
        _load(path)
    assert not marker.exists()


def test_a_saved_network_stores_its_weights_in_float16_and_loads_them_as_float32(tmp_path):
    """Half the bytes on disk (the bundled pretrained model would be 14 MB in float32); training
    continues in float32 from exactly the rounded weights; the graph stores float16 weights too."""
    import keras

    from covidgui.core.inference.runtime import load_keras

    classifier = _classifier()
    path = save_model(classifier, tmp_path / "half.keras")
    assert stored_dtypes(path) <= {"float16", "int64", "uint32", "int32"} and "float16" in stored_dtypes(path)
    plain = tmp_path / "plain.keras"
    keras.saving.save_model(classifier.keras_model, plain)
    assert stored_dtypes(plain) >= {"float32"}  # what Keras alone writes
    assert path.stat().st_size < 0.6 * plain.stat().st_size
    loaded = load_keras(path)
    for saved, kept in zip(classifier.keras_model.weights, loaded.weights):
        assert kept.dtype == "float32"
        np.testing.assert_array_equal(kept.numpy(), saved.numpy().astype(np.float16).astype(np.float32))
    graph_types = {d["dtype"] for d in _graph_tensors(model_files.companion_path(path, "graph"))}
    assert np.float16 in graph_types
    x = np.random.default_rng(0).random((4, SIZE, SIZE), dtype=np.float32)
    reloaded = _load(path)
    np.testing.assert_allclose(reloaded.logits(x), loaded(x[..., None], training=False), atol=2e-3)


def stored_dtypes(path) -> set[str]:
    """The dtypes of the weight datasets in a .keras file."""
    import io
    import zipfile

    import h5py

    from covidgui.core.models.half_weights import WEIGHTS_MEMBER

    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read(WEIGHTS_MEMBER)), "r") as weights:
        found: set[str] = set()
        weights.visititems(lambda _, item: found.add(str(item.dtype)) if isinstance(item, h5py.Dataset) else None)
    return found


def _graph_tensors(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path)).get_tensor_details()


@pytest.mark.parametrize("where", ["bundled", "version"])
def test_train_out_refuses_to_overwrite_a_kept_model(tmp_path, where):
    from tests.tiny_data import make_class_folders

    if where == "bundled":
        out = bundled_model_path()
    else:
        out = registry.save_version(_classifier(), "kept").path
    before = out.read_bytes()
    train = make_class_folders(tmp_path / "train", {"Covid": 4, "Normal": 4})
    done = run_cli("train", train, "--epochs", "1", "--input-size", "48", "--out", out, "--lung-guidance", "0")
    assert done.returncode == 2
    assert ("read-only" if where == "bundled" else "overwrite a saved model version") in done.stderr
    assert "epoch" not in done.stderr  # refused before training
    assert out.read_bytes() == before


def test_train_out_accepts_a_new_path(tmp_path):
    assert registry.check_free_model_path(tmp_path / "new") == (tmp_path / "new.keras").resolve()
