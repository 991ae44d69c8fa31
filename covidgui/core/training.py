"""Training a classifier on labelled folders, with the same preprocessing as inference.

The pieces: :func:`build_classifier` (a compact CNN for a 2-core CPU), :func:`make_sequence`
(a Keras ``PyDataset`` that decodes in a thread pool, caches small sets in memory and streams
large ones), :func:`train` (fit with augmentation, class balance, early stopping, progress and
cancel), then temperature calibration and validation figures, and :func:`save_model` (atomic).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import platform
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from covidgui.core.calibration import fit_temperature
from covidgui.core.dataset import LabelledFiles
from covidgui.core.distribute import make_fit_work
from covidgui.core.errors import DatasetError, ImageLoadError
from covidgui.core.gate import fit_gate, gate_path, thumbnails
from covidgui.core.images import load_xray
from covidgui.core.lung_guidance import LUNG_GUIDANCE_WEIGHT, LUNG_MARGIN, build_guided_fit_model, training_mask
from covidgui.core.metrics import classification_report, expected_calibration_error
from covidgui.core.model import EMBEDDING_LAYER, HEATMAP_LAYER, Classifier, _quiet_tensorflow, softmax
from covidgui.core.modelcard import ModelCard, card_path, write_atomic
from covidgui.core.preprocess import prepare

# Keep the decoded training set in memory when it fits in this many bytes; stream it otherwise.
CACHE_LIMIT_BYTES = 1_500_000_000


@dataclass
class TrainConfig:
    """Training settings; the defaults train the bundled model."""

    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    augment: bool = True
    patience: int = 10
    seed: int = 0
    input_size: int = 224
    # Weight of the penalty on the share of the classifier's evidence outside the lung fields
    # (covidgui.core.lung_guidance); 0 = off. Needs the bundled lung segmenter.
    lung_guidance: float = LUNG_GUIDANCE_WEIGHT


@dataclass
class TrainResult:
    """A trained classifier, what happened, and how it scored on validation data."""

    classifier: Classifier
    history: dict[str, list[float]]
    report: dict
    cancelled: bool = False
    unreadable: dict[str, str] = field(default_factory=dict)


class ProgressListener:
    """Receives training progress; the GUI and CLI subclass it. Called on the training thread."""

    def on_batch(self, epoch: int, batch: int, batches: int) -> None: ...

    def on_epoch(self, epoch: int, epochs: int, logs: dict[str, float]) -> None: ...

    def should_stop(self) -> bool:
        return False


def build_classifier(input_size: int, n_classes: int, seed: int = 0):
    """A compact CNN: greyscale (S, S, 1) in 0..1 -> (n_classes,) logits.

    Two strided convolutions (16, 32 channels) bring the image to 1/4 resolution cheaply, two
    more (64, 128) each followed by max-pooling to 1/16, then a 128-channel convolution named
    ``last_conv`` for Grad-CAM, global average pooling and one dense layer. About 0.32 GFLOP and
    0.25 M parameters at 224 x 224 (see ``count_flops``).
    Rescaling to -1..1 lives inside the model, as the design asks.
    """
    _quiet_tensorflow()
    import keras
    from keras import layers

    init = keras.initializers.HeNormal(seed=seed)

    def conv(x, filters, name=None, stride=1):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                          kernel_initializer=init, name=name)(x)
        # Momentum 0.9, not Keras' 0.99: with ~25 steps an epoch the slower moving averages lag
        # the weights, and inference-mode outputs drift from training-mode ones (seen here as a
        # validation AUC of 0.97 with most COVID cases below the 0.5 threshold).
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inputs = keras.Input((input_size, input_size, 1), name="xray")
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = conv(x, 16, stride=2)  # 1/2
    x = conv(x, 32, stride=2)  # 1/4
    x = conv(x, 64)
    x = layers.MaxPooling2D()(x)  # 1/8
    x = conv(x, 128)
    x = layers.MaxPooling2D()(x)  # 1/16
    x = conv(x, 128, name=HEATMAP_LAYER)
    x = layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(0.3, seed=seed)(x)
    outputs = layers.Dense(n_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                           name="logits")(x)
    return keras.Model(inputs, outputs, name="covid_cnn")


def build_augmentation(seed: int):
    """Random changes a radiograph can show without changing its diagnosis (training only)."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.RandomRotation(0.03, fill_mode="reflect", seed=seed),  # +-11 degrees
        layers.RandomZoom((-0.1, 0.15), fill_mode="reflect", seed=seed + 1),
        layers.RandomTranslation(0.06, 0.06, fill_mode="reflect", seed=seed + 2),
        # No intensity changes: histogram equalisation already removes exposure and contrast
        # differences, and noise or contrast jitter shifted the BatchNorm statistics away from
        # what clean inputs produce.
    ], name="augmentation")


def count_flops(model) -> int:
    """Floating-point operations (a multiply-add counts 2) of one forward pass, for the layers
    that dominate a CNN's cost (convolutions and dense layers)."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w = layer.kernel_size
            c_in = layer.input.shape[-1]
            total += 2 * h * w * k_h * k_w * c_in * c_out
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def make_sequence(paths: list[Path], labels: list[int], size: int, batch_size: int, shuffle: bool, seed: int,
                  class_weight: dict[int, float] | None = None, cache: bool | None = None, pool=None,
                  lungs=None):
    """A ``keras.utils.PyDataset`` yielding (x (B, S, S, 1), y (B,), sample_weight (B,)).

    Files that fail to decode get weight 0 (they neither train nor count) and are recorded in
    ``.unreadable``; the batch is never stopped by one bad file.
    lungs: a :class:`covidgui.core.lungs.LungSegmenter`; then x is (B, S, S, 2), the image and its
        lung mask (:func:`covidgui.core.lung_guidance.training_mask`).
    """
    import keras

    n_classes = max(labels) + 1 if labels else 0
    if cache is None:
        cache = len(paths) * size * size * 4 <= CACHE_LIMIT_BYTES
    pool = pool or ThreadPoolExecutor(max_workers=os.cpu_count() or 2)

    class _Sequence(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.unreadable: dict[str, str] = {}
            self.colourfulness = np.zeros(len(paths))  # of each source, for the input gate
            self._cache: dict[int, np.ndarray | None] = {}
            self._order = np.arange(len(paths))
            self._rng = np.random.default_rng(seed)
            self._lock = threading.Lock()
            if shuffle:
                self._rng.shuffle(self._order)

        def __len__(self):
            return math.ceil(len(paths) / batch_size)

        def _load(self, index: int) -> np.ndarray | None:
            if cache and index in self._cache:
                return self._cache[index]
            try:
                xray = load_xray(paths[index], max_side=size)
                self.colourfulness[index] = xray.metadata.get("colourfulness", 0.0)
                arr = prepare(xray.pixels, size).input
                if lungs is not None:
                    arr = np.stack([arr, training_mask(lungs, arr)], axis=-1)
            except ImageLoadError as exc:
                with self._lock:
                    self.unreadable[str(paths[index])] = exc.reason
                arr = None
            if cache:
                self._cache[index] = arr
            return arr

        def __getitem__(self, i):
            idx = self._order[i * batch_size:(i + 1) * batch_size]
            arrays = list(pool.map(self._load, idx))
            blank = np.zeros((size, size) if lungs is None else (size, size, 2), np.float32)
            x = np.stack([a if a is not None else blank for a in arrays])
            x = x[..., None] if lungs is None else x
            y = np.asarray([labels[j] for j in idx], dtype=np.int32)
            w = np.asarray([0.0 if a is None else (class_weight or {}).get(labels[j], 1.0)
                            for a, j in zip(arrays, idx)], dtype=np.float32)
            return x, y, w

        def batch_indices(self, i: int) -> np.ndarray:
            return self._order[i * batch_size:(i + 1) * batch_size]

        def on_epoch_end(self):
            if shuffle:
                self._rng.shuffle(self._order)

        def warm(self) -> None:
            """Decode everything once (fills the cache, finds unreadable files)."""
            list(pool.map(self._load, range(len(paths))))

    seq = _Sequence()
    seq.n_classes = n_classes
    seq.paths_for_warm, seq.pool_for_warm = paths, pool
    return seq


def balanced_class_weight(labels: list[int], n_classes: int) -> dict[int, float]:
    """Weights that make each class count equally in the loss (n / (k * n_c))."""
    counts = np.bincount(labels, minlength=n_classes)
    return {c: (len(labels) / (n_classes * counts[c])) if counts[c] else 0.0 for c in range(n_classes)}


def check_dataset(train: LabelledFiles, val: LabelledFiles) -> None:
    """Refuse data no model can learn from, with a message that says what to fix."""
    counts = train.counts()
    if len(train) == 0:
        raise DatasetError("The training folder holds no images.")
    if len(train.classes) < 2:
        raise DatasetError("Training needs at least two classes (one subfolder per class).")
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DatasetError(f"Class {', '.join(empty)} has no images in the training folder.")
    if sorted(c.lower() for c in val.classes) != sorted(c.lower() for c in train.classes):
        raise DatasetError(f"The validation classes ({', '.join(val.classes)}) do not match the training "
                           f"classes ({', '.join(train.classes)}).")
    if len(val) == 0:
        raise DatasetError("The validation set holds no images.")


def train(train_files: LabelledFiles, val_files: LabelledFiles, config: TrainConfig | None = None,
          listener: ProgressListener | None = None, name: str = "covid-cnn", version: str = "1",
          display_names: dict[str, str] | None = None, positive_class: str | None = None,
          training_info: dict | None = None, strategy=None) -> TrainResult:
    """Train a classifier from scratch and measure it on the validation files.

    The returned classifier is calibrated (temperature fitted on the validation logits) and its
    card holds the validation report; nothing is written to disk (see :func:`save_model`).
    Raises DatasetError for unusable data. When the listener asks to stop, training ends after the
    current batch and the result has ``cancelled=True``.
    strategy: a ``tf.distribute.Strategy`` (see :mod:`covidgui.core.distribute`) under whose scope
        the model is built and trained; None trains on the default device.
    """
    config = config or TrainConfig()
    listener = listener or ProgressListener()
    check_dataset(train_files, val_files)
    # Validation labels follow the training class order whatever the folder's case.
    lower = [c.lower() for c in train_files.classes]
    val_labels = [lower.index(val_files.classes[v].lower()) for v in val_files.labels]

    _quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    n_classes = len(train_files.classes)
    size = config.input_size
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    weights = balanced_class_weight(train_files.labels, n_classes)
    lungs = _guidance_segmenter(config)
    train_seq = make_sequence(train_files.paths, train_files.labels, size, config.batch_size, True, config.seed,
                              weights, pool=pool, lungs=lungs)
    val_seq = make_sequence(val_files.paths, val_labels, size, config.batch_size, False, config.seed, pool=pool,
                            lungs=lungs)
    if train_seq.n_classes and len(train_files) * size * size * 4 <= CACHE_LIMIT_BYTES:
        _warm_unless_stopped(train_seq, listener)
        _warm_unless_stopped(val_seq, listener)

    # Keras takes the distribution strategy from the scope the model is built and compiled in.
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        classifier_model = build_classifier(size, n_classes, config.seed)
        augmentation = build_augmentation(config.seed) if config.augment else None
        if lungs is not None:
            fit_model = build_guided_fit_model(classifier_model, augmentation, config.lung_guidance, EMBEDDING_LAYER)
        else:
            inputs = keras.Input((size, size, 1))
            fit_model = keras.Model(inputs, classifier_model(augmentation(inputs) if augmentation else inputs))
        steps = len(train_seq) * config.epochs
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.05)
        # An exponential moving average of the weights (about the last 4 epochs) is what is kept:
        # with a few hundred images single checkpoints vary a lot from seed to seed.
        fit_model.compile(optimizer=keras.optimizers.Adam(schedule, use_ema=True, ema_momentum=0.99),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          weighted_metrics=["accuracy"])
        make_fit_work(fit_model, strategy)

    stop = _StopAndReport(listener, config.epochs, len(train_seq))
    callbacks = [stop]
    if config.patience > 0:  # 0 = train all epochs, so the validation set plays no part in selection
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                       restore_best_weights=True))
    # A cancel while the images were decoding skips fitting (whose first batch also traces the graph).
    stop.cancelled = listener.should_stop()
    history = keras.callbacks.History()
    history.history = {}
    if not stop.cancelled:
        history = fit_model.fit(train_seq, validation_data=val_seq, epochs=config.epochs, callbacks=callbacks,
                                verbose=0)

    card = ModelCard(
        name=name, version=version, classes=list(train_files.classes), input_size=size,
        display_names=dict(display_names or {}), positive_class=positive_class,
        preprocessing=PREPROCESSING_DESCRIPTION,
        architecture={"name": classifier_model.name, "parameters": int(classifier_model.count_params()),
                      "flops_per_image": count_flops(classifier_model), "heatmap_layer": HEATMAP_LAYER},
        training={**(training_info or {}), "config": asdict(config),
                  "lung_guidance": ({"segmenter": lungs.card.get("name", "lung segmenter"),
                                     "weight": config.lung_guidance, "margin": LUNG_MARGIN,
                                     "images_without_plausible_lungs": _unguided_count(train_seq)}
                                    if lungs is not None else None),
                  "epochs_run": len(history.history.get("loss", [])),
                  "train_counts": train_files.counts(), "val_counts": val_files.counts(),
                  "tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    classifier = Classifier(classifier_model, card)
    report = {}
    if not stop.cancelled:
        recalibrate_batch_norm(classifier_model, train_seq)
        report = calibrate_and_measure(classifier, val_seq, val_labels)
        card.metrics["validation"] = report
        classifier.gate = fit_gate(gate_features(classifier, train_seq), gate_features(classifier, val_seq))
        card.metrics["gate"] = {"thresholds": classifier.gate.thresholds.tolist(),
                                "scores": list(classifier.gate.NAMES)}
    unreadable = {**train_seq.unreadable, **val_seq.unreadable}
    pool.shutdown(wait=False)
    return TrainResult(classifier, {k: [float(v) for v in vals] for k, vals in history.history.items()},
                       report, stop.cancelled, unreadable)


PREPROCESSING_DESCRIPTION = {
    "function": "covidgui.core.preprocess.prepare",
    "steps": ["greyscale 0..1 (ITU-R 601 luma; alpha composited on black)",
              "crop uniform borders (at most 20 % per side)",
              "resize to input_size x input_size (bilinear, antialiased)",
              "global histogram equalisation",
              "in-model: rescale 0..1 to -1..1"],
}


def recalibrate_batch_norm(model, sequence, max_batches: int = 100) -> None:
    """Re-estimate BatchNorm statistics on clean (un-augmented) training images.

    During fit the moving averages see augmented batches (noise, contrast, zoom); at inference the
    images are clean, and the mismatch shifted the logits enough to miss most COVID cases while
    the ranking stayed near perfect (AUC 0.99, 5/29 found). Forward passes in training mode,
    without any weight update, replace the averages with clean-data ones ("precise BN",
    Wu & Johnson 2021). Dropout is active during these passes but sits after every BatchNorm.
    """
    batches = min(max_batches, 2 * len(sequence))
    for i in range(batches):
        x, _, w = sequence[i % len(sequence)]
        keep = w > 0
        if keep.any():
            model(x[keep][..., :1], training=True)  # channel 0: the image (1: a lung mask, if any)


def gate_features(classifier: Classifier, sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thumbnails, pooled features, colourfulness) of every readable image of a sequence."""
    thumbs, features, colour = [], [], []
    for i in range(len(sequence)):
        x, _, w = sequence[i]
        keep = w > 0
        if not keep.any():
            continue
        inputs = x[keep, ..., 0]
        thumbs.append(thumbnails(inputs))
        features.append(classifier.forward(inputs)[1])
        colour.append(sequence.colourfulness[sequence.batch_indices(i)][keep])
    return np.concatenate(thumbs), np.concatenate(features), np.concatenate(colour)


def calibrate_and_measure(classifier: Classifier, val_seq, val_labels: list[int]) -> dict:
    """Fit the temperature on validation logits, store it in the card, return the report."""
    logits, labels = [], []
    for i in range(len(val_seq)):
        x, y, w = val_seq[i]
        keep = w > 0
        logits.append(classifier.logits(x[keep, ..., 0]))
        labels.append(y[keep])
    logits = np.concatenate(logits)
    labels = np.concatenate(labels)
    ece_before = expected_calibration_error(softmax(logits), labels)
    classifier.card.temperature = fit_temperature(logits, labels)
    report = classification_report(labels, softmax(logits, classifier.card.temperature),
                                   classifier.card.classes, classifier.card.positive_class)
    report["ece_before_calibration"] = ece_before
    report["temperature"] = classifier.card.temperature
    return report


def _guidance_segmenter(config: TrainConfig):
    """The lung segmenter lung guidance needs, or None when guidance is off.

    Raises DatasetError when guidance is asked for but the lung model is missing: a model trained
    without it would silently differ from what was asked.
    """
    if config.lung_guidance <= 0:
        return None
    from covidgui.core.lungs import load_bundled_segmenter

    segmenter = load_bundled_segmenter()
    if segmenter is None:
        raise DatasetError("Lung guidance needs the lung model (models/lung_segmenter.keras), which is missing; "
                           "set lung guidance to 0 to train without it.")
    return segmenter


def _unguided_count(sequence) -> int:
    """How many cached training images had no plausible lungs (an all-ones mask: no guidance)."""
    return sum(1 for a in sequence._cache.values() if a is not None and a.ndim == 3 and a[..., 1].min() >= 1.0)


def _warm_unless_stopped(seq, listener: ProgressListener, chunk: int = 32) -> None:
    """Decode a sequence's files in chunks (filling its cache), stopping early on a cancel."""
    for start in range(0, len(seq.paths_for_warm), chunk):
        if listener.should_stop():
            return
        list(seq.pool_for_warm.map(seq._load, range(start, min(start + chunk, len(seq.paths_for_warm)))))


class _StopAndReport:
    """Adapts a ProgressListener to Keras callbacks (built lazily so keras stays unimported)."""

    def __new__(cls, listener: ProgressListener, epochs: int, batches: int):
        import keras

        class _Callback(keras.callbacks.Callback):
            cancelled = False
            _epoch = 0

            def on_epoch_begin(self, epoch, logs=None):
                self._epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                listener.on_batch(self._epoch, batch + 1, batches)
                if listener.should_stop():
                    self.cancelled = True
                    self.model.stop_training = True

            def on_epoch_end(self, epoch, logs=None):
                listener.on_epoch(epoch, epochs, {k: float(v) for k, v in (logs or {}).items()})

        return _Callback()


def save_model(classifier: Classifier, out_path: str | Path) -> Path:
    """Write ``out_path`` (.keras), its input gate and its model card as one unit; returns the
    model path (see :mod:`covidgui.core.model_files`: every file is written under a temporary name
    and the card, which records the others' digests, is renamed last, so a crash never leaves a
    model with a stranger's gate or a half-written file where a good one was).
    """
    import keras

    from covidgui.core.model_files import write_model_set

    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        out_path = out_path.with_suffix(".keras")
    gate_bytes = classifier.gate.to_bytes() if classifier.gate is not None else None
    # Keras picks the format from the name, so the temporary file must end in .keras.
    write_model_set(out_path, lambda tmp: _save_keras(keras, classifier.keras_model, tmp),
                    {"gate": gate_bytes}, classifier.card)
    classifier.path = out_path
    return out_path


def _save_keras(keras, model, tmp: Path) -> None:
    named = tmp.with_name(tmp.name + ".keras")
    try:
        keras.saving.save_model(model, named)
        os.replace(named, tmp)
    finally:
        named.unlink(missing_ok=True)
