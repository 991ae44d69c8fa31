"""The training core end to end on a tiny generated data set: it trains, calibrates, fits the
gate, saves atomically and loads back to the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from covidgui.core.data.dataset import scan_class_folders
from covidgui.core.errors import DatasetError
from covidgui.core.training.train import ProgressListener, TrainConfig, train
from covidgui.core.models.model_files import save_model
from covidgui.core.analysis.batch import predict_files
from tests.conftest import chest_like


def make_dataset(root, per_class=12, size=64):
    """Two visibly different classes: 'Spots' has bright blobs in the lungs."""
    rng = np.random.default_rng(0)
    for label in ("Clear", "Spots"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            img = chest_like(size, seed=i + (100 if label == "Spots" else 0)).astype(float)
            if label == "Spots":
                for _ in range(4):
                    y, x = rng.integers(size // 4, 3 * size // 4, 2)
                    img[max(0, y - 3):y + 3, max(0, x - 3):x + 3] = 255
            Image.fromarray(img.astype(np.uint8)).save(root / label / f"{i}.png")
    return scan_class_folders(root)


class Recorder(ProgressListener):
    def __init__(self, stop_after_batches=None):
        self.epochs, self.batches, self.stop_after = [], 0, stop_after_batches

    def on_batch(self, epoch, batch, batches):
        self.batches += 1

    def on_epoch(self, epoch, epochs, logs):
        self.epochs.append(logs)

    def should_stop(self):
        return self.stop_after is not None and self.batches >= self.stop_after


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    root = tmp_path_factory.mktemp("data")
    files = make_dataset(root / "train")
    val = make_dataset(root / "val", per_class=6)
    listener = Recorder()
    # Python runs a step's code only while TensorFlow traces it: count the traces.
    listener.step_traces = []
    real_step = TensorFlowTrainer.train_step
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TensorFlowTrainer, "train_step",
                      lambda self, data: listener.step_traces.append(1) or real_step(self, data))
        result = train(files, val, TrainConfig(epochs=2, batch_size=8, input_size=32, patience=0), listener)
    return result, listener, root


def test_training_reports_progress_and_validation_figures(tiny_run):
    result, listener, _ = tiny_run
    assert len(listener.epochs) == 2 and "val_loss" in listener.epochs[0]
    assert listener.batches == 2 * 3  # 24 images / batch 8, twice
    report = result.report
    assert report["n"] == 12 and np.array(report["confusion_matrix"]).sum() == 12
    assert result.classifier.card.temperature > 0
    assert result.classifier.gate is not None


def test_the_training_step_is_traced_once(tiny_run):
    """Keras creates the optimizer's variables in the first trace unless they exist, and a
    function that created variables is traced again: seconds of every run (build_before_fit)."""
    _, listener, _ = tiny_run
    assert len(listener.step_traces) == 1


def test_saved_model_loads_back_to_the_same_predictions(tiny_run, tmp_path):
    from covidgui.core.inference.classifier import Classifier

    result, _, root = tiny_run
    path = save_model(result.classifier, tmp_path / "tiny.keras")
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind
    loaded = Classifier.load(path)
    images = sorted((root / "val").rglob("*.png"))[:4]
    before = [r.probabilities for r in predict_files(result.classifier, images)]
    after = [r.probabilities for r in predict_files(loaded, images)]
    for a, b in zip(before, after):
        assert a == pytest.approx(b, abs=1e-5)
    assert loaded.card.metrics["validation"]["n"] == 12


def test_the_inference_graph_is_the_trained_network_as_saved(tiny_run):
    """The graph the app runs (exported when the Classifier is made) gives the logits of the
    Keras network that is saved beside it, BatchNorm re-estimation included. It did not: the
    graph was exported before the statistics were re-estimated (logits off by up to 1.0)."""
    result, _, _ = tiny_run
    classifier = result.classifier
    inputs = np.random.default_rng(3).random((4, 32, 32)).astype(np.float32)
    network = np.asarray(classifier.keras_model(inputs[..., np.newaxis], training=False))
    # Within the float16 storage of the graph's weights (runtime.export_graph), far from 1.0.
    assert classifier.logits(inputs) == pytest.approx(network, abs=1e-2)


def test_cancel_stops_training_and_reports_it(tmp_path):
    files = make_dataset(tmp_path / "train", per_class=8)
    listener = Recorder(stop_after_batches=1)
    result = train(files, files, TrainConfig(epochs=5, batch_size=4, input_size=32), listener)
    assert result.cancelled
    assert listener.batches <= 2 and result.report == {}


def test_one_class_is_refused(tmp_path):
    (tmp_path / "Only").mkdir()
    Image.fromarray(chest_like(32)).save(tmp_path / "Only" / "a.png")
    files = scan_class_folders(tmp_path)
    with pytest.raises(DatasetError, match="at least two classes"):
        train(files, files, TrainConfig(epochs=1, input_size=32))


def test_a_validation_folder_of_unreadable_files_is_refused_before_training(tmp_path):
    files = make_dataset(tmp_path / "train", per_class=4, size=32)
    for label in ("Clear", "Spots"):
        (tmp_path / "val" / label).mkdir(parents=True)
        (tmp_path / "val" / label / "scan.png").write_bytes(b"not a PNG at all")
    listener = Recorder()
    with pytest.raises(DatasetError, match=r"None of the 2 validation images could be read \(for example scan.png"):
        train(files, scan_class_folders(tmp_path / "val"), TrainConfig(epochs=1, input_size=32), listener)
    assert listener.batches == 0  # refused before the first step


def test_training_can_start_from_a_saved_model_and_refuses_one_that_does_not_fit(tiny_run, tmp_path):
    from dataclasses import replace

    result, _, root = tiny_run
    start = save_model(result.classifier, tmp_path / "start.keras")
    files, val = scan_class_folders(root / "train"), scan_class_folders(root / "val")
    config = TrainConfig(epochs=1, batch_size=8, input_size=32, patience=0, learning_rate=1e-12, augment=False,
                         start_from=str(start))
    again = train(files, val, config)
    kernel = lambda model: model.get_layer("last_conv").get_weights()[0]  # noqa: E731
    # Its weights, not a new network's: a learning rate of ~0 leaves them where the saved model had
    # them (stored in float16: covidgui.core.models.half_weights).
    saved = kernel(result.classifier.keras_model).astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(kernel(again.classifier.keras_model), saved, atol=1e-6)
    fresh = train(files, val, replace(config, start_from=""))
    assert not np.allclose(kernel(fresh.classifier.keras_model), kernel(result.classifier.keras_model), atol=1e-3)
    with pytest.raises(DatasetError, match="takes 32 x 32 px"):
        train(files, val, replace(config, input_size=48))


def test_a_start_model_whose_card_names_other_outputs_than_its_network_is_refused(tiny_run, tmp_path):
    """The logits are matched to classes by the card's names: a card that lists three classes
    for a two-output network would match them wrongly."""
    import json

    from covidgui.core.models.modelcard import card_path
    from covidgui.core.training.network import starting_network

    result, _, _ = tiny_run
    start = save_model(result.classifier, tmp_path / "start.keras")
    card = json.loads(card_path(start).read_text())
    card["classes"] = ["Clear", "Spots", "Other"]
    card_path(start).write_text(json.dumps(card))
    with pytest.raises(DatasetError, match="gives 2 outputs for the classes Clear, Spots, Other"):
        starting_network(start, 32, ["Clear", "Spots", "Other"])


def test_a_two_class_model_grows_a_third_class_keeping_what_it_knew(tiny_run, tmp_path):
    """Issue 27: a third class added to a trained model. The classes it knew keep their logit
    weights (by name, whatever the order); the new one starts from zero weights and the mean bias."""
    from covidgui.core.inference.runtime import load_keras
    from covidgui.core.training.network import starting_network

    result, _, _ = tiny_run
    start = save_model(result.classifier, tmp_path / "start.keras")
    known = result.classifier.card.classes
    knew = load_keras(start)  # the network as saved (its weights stored in float16)
    old_kernel, old_bias = knew.get_layer("logits").get_weights()
    wanted = [known[1], "Pneumonia", known[0]]
    grown = starting_network(start, 32, wanted)
    kernel, bias = grown.get_layer("logits").get_weights()
    assert grown.output_shape[-1] == 3
    np.testing.assert_allclose(kernel[:, [2, 0]], old_kernel)
    np.testing.assert_allclose(bias[[2, 0]], old_bias)
    assert not kernel[:, 1].any() and bias[1] == pytest.approx(old_bias.mean())
    x = np.random.default_rng(0).uniform(size=(3, 32, 32, 1)).astype("float32")
    old_logits = np.asarray(knew(x, training=False))
    np.testing.assert_allclose(np.asarray(grown(x, training=False))[:, [2, 0]], old_logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(DatasetError, match=f"the classes {known[0]}, Pneumonia"):
        starting_network(start, 32, [known[0], "Pneumonia"])  # a class the model knew is missing


def test_batchnorm_re_estimation_can_be_left_out_of_a_recipe(tmp_path, monkeypatch):
    from covidgui.core.training import fit_loop

    calls = []
    real = fit_loop.recalibrate_batch_norm
    monkeypatch.setattr(fit_loop, "recalibrate_batch_norm", lambda *a, **k: calls.append(1) or real(*a, **k))
    files = make_dataset(tmp_path / "train", per_class=4, size=48)
    for reestimate in (False, True):
        result = train(files, files, TrainConfig(epochs=1, batch_size=8, input_size=32, patience=0, augment=False,
                                                 lung_guidance=0.0, reestimate_batch_norm=reestimate))
        assert result.classifier.card.training["config"]["reestimate_batch_norm"] is reestimate
    assert calls == [1]


@pytest.mark.parametrize("asked, trained_in", [("bfloat16", "mixed_bfloat16"), ("float32", "float32")])
def test_a_network_trained_in_bfloat16_is_kept_computing_in_float32(tmp_path, asked, trained_in):
    """Training may compute in bfloat16 (covidgui.core.training.precision); the model that is
    calibrated, exported and saved computes in float32, so the app reads it as any other."""
    from covidgui.core.inference.classifier import Classifier

    files = make_dataset(tmp_path / "train", per_class=4, size=48)
    result = train(files, files, TrainConfig(epochs=1, batch_size=8, input_size=32, patience=0, precision=asked))
    network = result.classifier.keras_model
    assert result.classifier.card.training["trained_in"] == trained_in
    assert {layer.dtype_policy.name for layer in network.layers} == {"float32"}
    inputs = np.random.default_rng(1).random((4, 32, 32)).astype(np.float32)
    expected = np.asarray(network(inputs[..., np.newaxis], training=False))
    assert result.classifier.logits(inputs) == pytest.approx(expected, abs=1e-2)  # the graph is that network
    loaded = Classifier.load(save_model(result.classifier, tmp_path / "m.keras"))
    assert {layer.dtype_policy.name for layer in loaded.keras_model.layers} == {"float32"}
