"""The app runs models as exported LiteRT graphs: the numbers of the Keras network (Grad-CAM
included), safe on two threads, no TensorFlow import to classify, and models saved before graphs
were written still load."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from covidgui.core.errors import ModelError
from covidgui.core.inference.classifier import Classifier
from covidgui.core.models.model_files import companion_path, save_model
from covidgui.core.models.modelcard import ModelCard, card_path
from covidgui.core.training.train import build_classifier

SIZE = 32
# The graph stores its weights in float16 (runtime.export_graph), the .keras too (half_weights):
# each answers within a few thousandths of the float32 network, far from any mistake's size.
HALF = {"rtol": 5e-3, "atol": 1e-3}


def _keras_and_classifier(n_classes: int = 3, seed: int = 1):
    model = build_classifier(SIZE, n_classes, seed)
    card = ModelCard(name="tiny", version="0", classes=[f"C{i}" for i in range(n_classes)], input_size=SIZE)
    return model, Classifier(model, card)


def _inputs(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).random((n, SIZE, SIZE), dtype=np.float32)


def test_the_graph_gives_the_networks_logits_features_and_gradcam():
    import keras
    import tensorflow as tf

    model, classifier = _keras_and_classifier()
    x = _inputs()
    logits, features, maps, weights = classifier._explain(x)
    pooling = model.get_layer("embedding")
    both = keras.Model(model.inputs, [model.output, pooling.output, pooling.input])
    batch = tf.constant(x[..., None])
    with tf.GradientTape(persistent=True) as tape:
        ref_logits, ref_features, ref_maps = both(batch, training=False)
        total = tf.reduce_sum(ref_logits, axis=1)
        scores = [tf.reduce_sum(ref_logits[:, c] - (total - ref_logits[:, c]) / 2) for c in range(3)]
    # Grad-CAM's channel weights by a gradient tape, as the Keras version of the app made them.
    ref_weights = np.stack([np.mean(tape.gradient(s, ref_maps), axis=(1, 2)) for s in scores], axis=1)
    np.testing.assert_allclose(logits, ref_logits, **HALF)
    np.testing.assert_allclose(features, ref_features, **HALF)
    np.testing.assert_allclose(maps, ref_maps, **HALF)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5, rtol=5e-3)
    assert classifier.gradcam(x[0], 2).shape == (SIZE, SIZE)


def test_each_network_gets_its_own_graph_even_when_built_twice():
    """The suite exports a network's graph once per architecture and weights (tests/conftest.py):
    the same network built again answers the same, and a network that differs in one weight, or
    only in its seed, answers as itself."""
    x = _inputs()
    model, first = _keras_and_classifier()
    again = _keras_and_classifier()[1]
    np.testing.assert_array_equal(again.logits(x), first.logits(x))
    kernel = model.layers[-1].kernel
    kernel.assign(kernel.numpy() + 1.0)
    changed = Classifier(model, first.card)
    np.testing.assert_allclose(changed.logits(x), model(x[..., None], training=False), **HALF)
    assert not np.allclose(changed.logits(x), first.logits(x), atol=1e-3)
    assert not np.allclose(_keras_and_classifier(seed=2)[1].logits(x), first.logits(x), atol=1e-3)


def test_two_threads_running_one_model_get_their_own_answers():
    _, classifier = _keras_and_classifier()
    x = _inputs(8)
    expected = [classifier.logits(x[i:i + 1]) for i in range(8)]
    results: dict[int, list] = {0: [], 1: []}

    def run(worker: int):
        for _ in range(20):
            for i in range(worker, 8, 2):
                results[worker].append((i, classifier.logits(x[i:i + 1])))

    threads = [threading.Thread(target=run, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, got in results[0] + results[1]:
        np.testing.assert_array_equal(got, expected[i])


def test_a_model_saved_before_graphs_loads_and_answers_the_same(tmp_path):
    _, classifier = _keras_and_classifier(2)
    path = save_model(classifier, tmp_path / "old.keras")
    card = json.loads(card_path(path).read_text())
    del card["files"]["graph"]  # as the app wrote it before graphs
    card_path(path).write_text(json.dumps(card))
    companion_path(path, "graph").unlink()
    loaded = Classifier.load(path, lungs=False)
    np.testing.assert_allclose(loaded.logits(_inputs()), classifier.logits(_inputs()), **HALF)


def test_a_graph_that_is_not_the_models_is_refused(tmp_path):
    path = save_model(_keras_and_classifier(2, seed=1)[1], tmp_path / "a.keras")
    other = save_model(_keras_and_classifier(2, seed=2)[1], tmp_path / "b.keras")
    companion_path(path, "graph").write_bytes(companion_path(other, "graph").read_bytes())
    with pytest.raises(ModelError, match="inference graph a.tflite does not belong to a.keras"):
        Classifier.load(path, lungs=False)


def test_classifying_with_the_bundled_model_imports_no_tensorflow(chest_png):
    """What makes the model ready ~2.5 s sooner at launch (benchmarks/startup.py)."""
    code = ("import sys\n"
            "from covidgui.core.analysis.analyse import analyse\n"
            "from covidgui.core.inference.classifier import Classifier\n"
            f"result = analyse(Classifier.load(), {str(chest_png)!r})\n"
            "assert result.prediction.heatmap is not None and result.prediction.lung_mask is not None\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_where_litert_has_no_wheel_tensorflows_interpreter_runs_the_graph(chest_png):
    """Linux ARM and Intel Macs have no ai-edge-litert wheel (pyproject.toml): the same graph runs
    with tf.lite's interpreter and gives the same answer."""
    code = ("import sys\n"
            "sys.modules['ai_edge_litert'] = None  # as on a platform without the wheel\n"
            "from covidgui.core.inference.classifier import Classifier\n"
            f"print(Classifier.load(lungs=False).predict_file({str(chest_png)!r}).confidence)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = Classifier.load(lungs=False).predict_file(chest_png).confidence
    assert abs(float(proc.stdout.strip().splitlines()[-1]) - expected) < 1e-5
