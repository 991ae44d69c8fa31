"""A network's inference graph: exported from Keras once (with TensorFlow), run with LiteRT.

The app runs its models through LiteRT (``ai_edge_litert``), not TensorFlow: importing
TensorFlow costs ~2.5 s at every launch (benchmarks/startup.py) while LiteRT imports in under
0.1 s and runs these small networks as fast. TensorFlow is needed only to train, and to export a
Keras model's graph: :func:`export_graph` writes the graph of named outputs a model file carries
beside its ``.keras`` (``name.tflite``, see covidgui.core.models.model_files); a model saved before
graphs were written is exported when it is loaded.

A LiteRT interpreter is not thread-safe, so each thread that runs a :class:`Graph` gets its own
(the Image tab's worker and a batch may run the same model at once).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from covidgui.core.errors import ModelError
from covidgui.core.inference.keras_env import quiet_tensorflow

# Threads per interpreter: XNNPACK's convolutions scale to two threads on the 2-core machines we
# measure on (a 224-px classifier pass 1.4 -> 0.75 ms); more than four helps these small nets little.
THREADS = max(1, min(4, os.cpu_count() or 1))


class Graph:
    """A LiteRT flatbuffer with one signature: inputs (N, ...) float32 -> named outputs (N, ...)."""

    def __init__(self, flatbuffer: bytes, name: str = "model"):
        self.flatbuffer = bytes(flatbuffer)
        self.name = name
        self._local = threading.local()
        runner = self._runner()  # fails here, on load, for a file that is not a graph of ours
        inputs = runner.get_input_details()
        if len(inputs) != 1:
            raise ModelError(f"The graph of {name} has {len(inputs)} inputs; CovidGUI's have one.")
        self.input_name, details = next(iter(inputs.items()))
        self.input_shape = tuple(int(d) for d in details["shape_signature"][1:])
        self.output_shapes = {k: tuple(int(d) for d in v["shape_signature"][1:])
                              for k, v in runner.get_output_details().items()}

    def _runner(self):
        runner = getattr(self._local, "runner", None)
        if runner is None:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:  # no LiteRT wheel for this platform: TensorFlow's copy of it
                quiet_tensorflow()
                import tensorflow as tf

                Interpreter = tf.lite.Interpreter  # noqa: N806 (the class, as LiteRT names it)
            try:
                interpreter = Interpreter(model_content=self.flatbuffer, num_threads=THREADS)
                runner = interpreter.get_signature_runner()  # the graph's one signature
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"The graph of {self.name} cannot be loaded: {exc}") from exc
            self._local.runner = runner
        return runner

    def __call__(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """inputs (N, *input_shape) -> output name -> (N, ...) float32 (copies: safe to keep)."""
        batch = np.ascontiguousarray(inputs, dtype=np.float32)
        if len(batch) == 0:
            return {k: np.zeros((0, *shape), np.float32) for k, shape in self.output_shapes.items()}
        # The runner resizes its tensors when the batch size changes.
        return {k: np.array(v) for k, v in self._runner()(**{self.input_name: batch}).items()}


def load_keras(path: Path, what: str = "model file"):
    """A ``.keras`` file in safe mode (no code from the file), to export its graph or train on;
    ModelError naming ``what`` when it does not load. Imports TensorFlow."""
    quiet_tensorflow()
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged or foreign file
        raise ModelError(f"The {what} {path.name} cannot be loaded: {exc}") from exc


def export_graph(keras_model, outputs: Callable, input_shape: tuple[int, ...], also_track=()) -> bytes:
    """The LiteRT flatbuffer of ``outputs(x) -> {name: tensor}`` over a Keras model (and the
    models of ``also_track`` it calls too), for inputs (N, *input_shape) float32 (any N). Needs
    TensorFlow (imported here). Raises ModelError when the graph has operations LiteRT lacks."""
    quiet_tensorflow()
    import tensorflow as tf

    serve = tf.function(outputs, input_signature=[tf.TensorSpec([None, *input_shape], tf.float32)],
                        autograph=False)
    # Saved with an object that holds only the variables, not with the Keras models: Keras' own
    # export (keras.export.ExportArchive) also traces and saves every layer's call. v4.2.0's graph
    # took 15-17 s that way and 6.7-7.2 s this way, with outputs equal to the bit.
    holder = tf.Module()
    holder.weights = [getattr(v, "value", v) for model in (keras_model, *also_track) for v in model.variables]
    with tempfile.TemporaryDirectory(prefix="covidgui-export-") as folder:
        try:
            tf.saved_model.save(holder, folder, signatures=serve.get_concrete_function())
            converter = tf.lite.TFLiteConverter.from_saved_model(folder)
            # Weights stored in float16, computed in float32: half the file (a pretrained
            # classifier's graph 13.5 -> 6.8 MB) for outputs that move by about a thousandth of
            # their size; the .keras stores its weights the same way (covidgui.core.models.half_weights).
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
            flatbuffer = converter.convert()
        except Exception as exc:  # the converter raises its own types, with the failing operations
            raise ModelError(f"The model {keras_model.name} cannot be exported for inference: {exc}") from exc
    return flatbuffer
