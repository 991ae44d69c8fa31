"""Loading a classifier with its model card, and predicting on images.

TensorFlow is imported inside the functions that need it, so that ``import covidgui.core.model``
is cheap and the GUI can show its window before paying the ~5 s TensorFlow import.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from covidgui.core.errors import ImageLoadError, ModelError
from covidgui.core.images import load_xray
from covidgui.core.modelcard import ModelCard, read_card
from covidgui.core.preprocess import Prepared, prepare, resize, to_source_space

BUNDLED_MODEL_NAME = "covid_classifier.keras"
INDETERMINATE = "Indeterminate"
# The name of the convolution whose activations Grad-CAM weighs; every model we build has one.
HEATMAP_LAYER = "last_conv"


def bundled_model_path() -> Path:
    """The read-only model shipped with the app (``models/covid_classifier.keras``)."""
    return Path(str(importlib.resources.files("covidgui.models") / BUNDLED_MODEL_NAME))


@dataclass
class Prediction:
    """One image's result.

    label: the display name of the predicted class, or "Indeterminate" when the calibrated
        confidence falls inside the model card's indeterminate band.
    class_name: the predicted class (a model-card class name), even when indeterminate.
    confidence: calibrated probability of ``class_name``, 0..1.
    probabilities: display name -> calibrated probability; they sum to 1.
    heatmap: float32 (H, W) of the source image, 0..1, or None when not asked for.
    """

    label: str
    class_name: str
    confidence: float
    probabilities: dict[str, float]
    indeterminate: bool = False
    path: Path | None = None
    heatmap: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready fields (no heatmap)."""
        return {
            "path": str(self.path) if self.path is not None else None,
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "indeterminate": self.indeterminate,
        }


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits (N, C) divided by ``temperature``; rows sum to 1."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


class Classifier:
    """A Keras classifier and its model card. Build with :meth:`load`."""

    def __init__(self, keras_model, card: ModelCard, path: Path | None = None):
        import tensorflow as tf

        self.keras_model = keras_model
        self.card = card
        self.path = path
        size = card.input_size
        # A traced function with a fixed signature avoids Keras' per-call overhead
        # (model.predict costs tens of ms even for one small image).
        self._forward = tf.function(
            lambda x: keras_model(x, training=False),
            input_signature=[tf.TensorSpec([None, size, size, 1], tf.float32)],
            reduce_retracing=True,
        )
        self._gradcam = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Classifier":
        """Load a ``.keras`` model (safe mode: no code from the file) and the card beside it.

        path: the model file; None means the bundled model.
        Raises ModelError when the file or its card is missing or does not load.
        """
        path = Path(path) if path is not None else bundled_model_path()
        if not path.is_file():
            raise ModelError(f"The model file {path} does not exist.")
        card = read_card(path)
        _quiet_tensorflow()
        import keras

        try:
            keras_model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a damaged or foreign file
            raise ModelError(f"The model file {path.name} cannot be loaded: {exc}") from exc
        out = keras_model.output_shape[-1]
        if out != len(card.classes):
            raise ModelError(f"{path.name} has {out} outputs but its card names {len(card.classes)} classes.")
        return cls(keras_model, card, path)

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def prepare(self, pixels: np.ndarray) -> Prepared:
        """Greyscale pixels (H, W) 0..1 -> this model's input (the shared preprocessing)."""
        return prepare(pixels, self.input_size)

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """Raw outputs for prepared inputs (N, S, S) 0..1 -> (N, C) float64 logits."""
        batch = np.asarray(inputs, dtype=np.float32)[..., np.newaxis]
        return np.asarray(self._forward(batch), dtype=np.float64)

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (N, C) for prepared inputs (N, S, S); rows sum to 1."""
        return softmax(self.logits(inputs), self.card.temperature)

    def _prediction(self, probs: np.ndarray, path: Path | None) -> Prediction:
        card = self.card
        idx = int(np.argmax(probs))
        confidence = float(probs[idx])
        low, high = card.indeterminate_band
        # With two classes the top probability is >= 0.5, so the band's upper edge is what counts;
        # the lower edge serves models with more classes.
        indeterminate = low <= confidence < high
        class_name = card.classes[idx]
        return Prediction(
            label=INDETERMINATE if indeterminate else card.display_name(class_name),
            class_name=class_name,
            confidence=confidence,
            probabilities={card.display_name(c): float(p) for c, p in zip(card.classes, probs)},
            indeterminate=indeterminate,
            path=path,
        )

    def prediction_from_probabilities(self, probs: np.ndarray, path: Path | None = None) -> Prediction:
        """A Prediction from one row (C,) of :meth:`probabilities` (label, confidence, indeterminate)."""
        return self._prediction(np.asarray(probs, dtype=np.float64), path)

    def predict_pixels(self, pixels: np.ndarray, path: Path | None = None, heatmap: bool = False) -> Prediction:
        """Classify one decoded image (H, W) 0..1."""
        prepared = self.prepare(pixels)
        probs = self.probabilities(prepared.input[np.newaxis])[0]
        result = self._prediction(probs, path)
        if heatmap:
            cam = self.gradcam(prepared.input, int(np.argmax(probs)))
            result.heatmap = to_source_space(cam, prepared.crop_box, pixels.shape)
        return result

    def predict_file(self, path: str | Path, heatmap: bool = False) -> Prediction:
        """Load and classify one file; raises ImageLoadError for a bad file."""
        xray = load_xray(path, max_side=self.input_size)
        return self.predict_pixels(xray.pixels, Path(path), heatmap=heatmap)

    def predict_files(self, paths: Iterable[str | Path], batch_size: int = 16) -> Iterator[Prediction | ImageLoadError]:
        """Classify many files in batches; yields, in order, a Prediction or the file's ImageLoadError."""
        pending: list[tuple[Path, Prepared | ImageLoadError]] = []

        def flush() -> Iterator[Prediction | ImageLoadError]:
            good = [p for _, p in pending if isinstance(p, Prepared)]
            probs = iter(self.probabilities(np.stack([p.input for p in good]))) if good else iter(())
            for path, item in pending:
                yield item if isinstance(item, ImageLoadError) else self._prediction(next(probs), path)
            pending.clear()

        for path in map(Path, paths):
            try:
                pending.append((path, self.prepare(load_xray(path, max_side=self.input_size).pixels)))
            except ImageLoadError as exc:
                pending.append((path, exc))
            if len(pending) >= batch_size:
                yield from flush()
        yield from flush()

    def gradcam(self, model_input: np.ndarray, class_index: int) -> np.ndarray:
        """Grad-CAM of ``class_index`` for one prepared input (S, S): float32 (S, S), 0..1.

        The class logit's gradient, averaged over each channel of the last convolution, weighs
        that channel's activations; the positive part of the sum, normalised to its maximum.
        """
        import keras
        import tensorflow as tf

        if self._gradcam is None:
            try:
                layer = self.keras_model.get_layer(HEATMAP_LAYER)
            except ValueError as exc:
                raise ModelError(f"This model has no layer named {HEATMAP_LAYER!r}; no heatmap can be made.") from exc
            self._gradcam = keras.Model(self.keras_model.inputs, [layer.output, self.keras_model.output])
        x = tf.constant(np.asarray(model_input, dtype=np.float32)[np.newaxis, ..., np.newaxis])
        with tf.GradientTape() as tape:
            activations, logits = self._gradcam(x, training=False)
            score = logits[:, class_index]
        grads = tape.gradient(score, activations)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1))[0].numpy()
        peak = float(cam.max())
        cam = cam / peak if peak > 0 else cam
        return np.clip(resize(cam, model_input.shape), 0.0, 1.0)

