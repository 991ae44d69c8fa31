"""The fit loop: one classifier trained, re-estimated, calibrated and gated (:func:`fit_classifier`).

Fit on labelled files with a recipe, then BatchNorm statistics re-estimated on clean images, the
temperature and indeterminate band calibrated on the validation files, and the input gate fitted.

:func:`covidgui.core.training.train.train` adds label cleaning in front of it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.errors import DatasetError
from covidgui.core.inference.classifier import EMBEDDING_LAYER, HEATMAP_LAYER, Classifier, softmax
from covidgui.core.inference.gate import fit_gate, thumbnails
from covidgui.core.inference.keras_env import quiet_tensorflow
from covidgui.core.inference.lungs import LUNG_MARGIN, load_bundled_segmenter
from covidgui.core.inference.views import averaged_logits, parse_views, smaller_view_reader
from covidgui.core.models.modelcard import ModelCard
from covidgui.core.scoring.calibration import fit_indeterminate_band, fit_temperature
from covidgui.core.scoring.metrics import classification_report, expected_calibration_error
from covidgui.core.training.allocator import keep_freed_memory
from covidgui.core.training.compiled_fit import fit_key, seed_generators
from covidgui.core.training.distribute import build_before_fit, make_fit_work
from covidgui.core.training.network import build_augmentation, film_flops, new_network, starting_network
from covidgui.core.training.precision import building_in, compute_policy, float32_copy
from covidgui.core.training.recipe import (TrainConfig, balanced_sample_weight, check_dataset, down_weight_sources,
                                           preprocessing_description, source_counts, source_factors)
from covidgui.core.training.sequence import CACHE_LIMIT_BYTES, make_sequence, unguided_count, warm_unless_stopped
from covidgui.core.training.stream import FitStream, steps_per_call


@dataclass
class TrainResult:
    """A trained classifier, what happened, and how it scored on validation data."""

    classifier: Classifier | None  # None when fitted with measure=False (see fit_classifier)
    history: dict[str, list[float]]
    report: dict
    cancelled: bool = False
    unreadable: dict[str, str] = field(default_factory=dict)
    network: object = None  # the trained Keras network (BatchNorm re-estimated), as the classifier's


class ProgressListener:
    """Receives training progress; the GUI and CLI subclass it. Called on the training thread."""

    def on_batch(self, epoch: int, batch: int, batches: int) -> None: ...

    def on_epoch(self, epoch: int, epochs: int, logs: dict[str, float]) -> None: ...

    def should_stop(self) -> bool:
        return False


def fit_classifier(train_files: LabelledFiles, val_files: LabelledFiles, config: TrainConfig,
                   listener: ProgressListener | None = None, name: str = "covid-cnn", version: str = "1",
                   display_names: dict[str, str] | None = None, positive_class: str | None = None,
                   training_info: dict | None = None, strategy=None, cleaning: dict | None = None,
                   measure: bool = True, reuse=None, gate=None) -> TrainResult:
    """Train a classifier on ``train_files`` as ``config`` says (its label cleaning aside: see
    :func:`covidgui.core.training.train.train`) and measure it on the validation files.

    The returned classifier is calibrated (temperature fitted on the validation logits) and its
    card holds the validation report; nothing is written to disk. Raises DatasetError for unusable
    data. When the listener asks to stop, training ends after the current batch and the result has
    ``cancelled=True``.
    strategy: a ``tf.distribute.Strategy`` (see :mod:`covidgui.core.training.distribute`) under whose scope
        the model is built and trained; None trains on the default device.
    cleaning: what label cleaning did, recorded in the card.
    measure: False for a network that is only scored, not kept (adapting's fold models): no inference
        graph, calibration or gate, the result's ``classifier`` None and its ``network`` the trained
        Keras network, re-estimated as a kept one would be. The validation files are not read
        (no per-epoch validation) unless early stopping (``config.patience``) needs them. Saves the
        graph export, the gate's passes and the validation passes (seconds per fold).
    reuse: a :class:`~covidgui.core.training.compiled_fit.CompiledFit` that keeps the compiled model
        for the next training of the same recipe on as many films (the traced step is reused); the
        returned network is then that kept model, whose weights the next training overwrites (or,
        had it trained in bfloat16, a float32 copy of it).
    gate: an input gate to keep instead of fitting one (and its passes over the films).
    """
    listener = listener or ProgressListener()
    check_dataset(train_files, val_files)
    # Validation labels follow the training class order whatever the folder's case.
    lower = [c.lower() for c in train_files.classes]
    val_labels = [lower.index(val_files.classes[v].lower()) for v in val_files.labels]

    keep_freed_memory()  # the steps' buffers stay in the process between steps (see allocator)
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    n_classes = len(train_files.classes)
    # The source adversary needs two sources in some class to have anything to tell apart.
    source_names = sorted(set(train_files.group_names()))
    source_classes, source_ids = None, None
    if config.source_adversary > 0 and len(source_names) > n_classes:
        groups = train_files.group_names()
        source_ids = np.array([source_names.index(g) for g in groups], dtype=np.int32)
        source_classes = [train_files.labels[groups.index(name)] for name in source_names]
    one_hot = n_classes if config.label_smoothing > 0 else 0
    # A network that is only scored has no use for per-epoch validation figures unless early
    # stopping reads them (seconds per adaptation fold): then the validation files are not read.
    validate = measure or config.patience > 0
    key = None
    if reuse is not None and strategy is None:
        # one_hot and the lung segmenter follow from the recipe and classes, which the key holds.
        key = fit_key(config, train_files.classes, len(train_files), validate and len(val_files), source_classes)
    reusing = key is not None and reuse.key == key
    policy = compute_policy(config.precision, config.architecture, config.start_from)  # refuses an unknown one now
    seed_generators(config.seed, tensorflow=not reusing)
    tf.config.experimental.enable_op_determinism()
    size = config.input_size
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    weights = balanced_sample_weight(train_files.labels,
                                     train_files.group_names() if config.source_balance else None, n_classes)
    weights = down_weight_sources(weights, train_files.labels, train_files.group_names(), source_factors(config))
    lungs = _guidance_segmenter(config)
    train_seq = make_sequence(train_files.paths, train_files.labels, size, config.batch_size, True, config.seed,
                              weights, pool=pool, lungs=lungs,
                              acquisition_augment=config.augment and config.acquisition_augment,
                              amplitude_mix=config.amplitude_mix if config.augment else 0.0,
                              lung_mask=config.lung_mask, source_ids=source_ids, one_hot=one_hot,
                              harmonise=config.harmonise_storage)
    val_seq = make_sequence(val_files.paths, val_labels, size, config.batch_size, False, config.seed, pool=pool,
                            lungs=lungs, lung_mask=config.lung_mask,
                            # fit's validation pass feeds the same two inputs; the adversary's loss there means nothing
                            source_ids=None if source_ids is None else np.zeros(len(val_files), np.int32),
                            one_hot=one_hot, harmonise=config.harmonise_storage)
    if train_seq.n_classes and len(train_files) * size * size * 4 <= CACHE_LIMIT_BYTES:
        warm_unless_stopped(train_seq, listener)
        if validate:
            warm_unless_stopped(val_seq, listener)
        if not listener.should_stop():  # a cancel stops decoding part-way: then nothing is known
            _refuse_if_none_readable(train_seq, train_files, "training")
            if validate:
                _refuse_if_none_readable(val_seq, val_files, "validation")

    if reusing:
        classifier_model, fit_model = reuse.restart()
        freeze_layers_before(classifier_model, config.freeze_before)  # as when its step was traced
    else:
        classifier_model, fit_model = _compiled_models(config, train_files, train_seq, val_seq, validate, lungs,
                                                       source_classes, one_hot, strategy, policy)
        if key is not None:
            reuse.keep(key, classifier_model, fit_model)

    if config.start_from and config.head_first and not listener.should_stop():
        from covidgui.core.training.head_first import fit_head

        fit_head(classifier_model, ((x, y) for x, y, _ in train_seq.readable_batches()), EMBEDDING_LAYER)
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
        streams = [FitStream(train_seq, config.epochs)] + ([FitStream(val_seq, config.epochs, shuffle=False)]
                                                           if validate else [])
        try:
            history = fit_model.fit(streams[0].dataset, steps_per_epoch=streams[0].steps,
                                    validation_data=streams[1].dataset if validate else None,
                                    validation_steps=streams[1].steps if validate else None, epochs=config.epochs,
                                    callbacks=callbacks, verbose=0, shuffle=False)  # the stream shuffles
        finally:
            for stream in streams:
                stream.close(len(history.history.get("loss", [])))

    # The kept network computes in float32 whatever it trained in, so its statistics are
    # re-estimated, and it is calibrated and exported, as inference will run it.
    classifier_model = float32_copy(classifier_model)
    if not stop.cancelled and config.reestimate_batch_norm:
        # Before the Classifier is made: it exports the inference graph (the .tflite the app runs)
        # from the network's weights and statistics as they are then. Re-estimated afterwards, the
        # saved .keras and its graph disagreed (the bundled v3.1.0 is such a pair).
        # Frozen BatchNorm layers keep their statistics.
        recalibrate_batch_norm(classifier_model, (x for x, _, _ in train_seq.readable_batches(BATCH_NORM_BATCHES)))
    unfreeze(classifier_model)  # the saved file does not carry the freeze into a later fine-tune
    history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    if not measure:
        pool.shutdown(wait=False)
        return TrainResult(None, history, {}, stop.cancelled, {**train_seq.unreadable, **val_seq.unreadable},
                           network=classifier_model)

    card = ModelCard(
        name=name, version=version, classes=list(train_files.classes), input_size=size,
        display_names=dict(display_names or {}), positive_class=positive_class,
        preprocessing=preprocessing_description(config.lung_mask, config.harmonise_storage, config.test_time_views),
        architecture={"name": classifier_model.name, "parameters": int(classifier_model.count_params()),
                      "flops_per_image": film_flops(classifier_model, parse_views(config.test_time_views)),
                      "heatmap_layer": HEATMAP_LAYER},
        training={**(training_info or {}), "config": asdict(config),
                  **({"label_cleaning": cleaning} if cleaning is not None else {}),
                  "lung_guidance": ({"segmenter": lungs.card.get("name", "lung segmenter"),
                                     "weight": config.lung_guidance, "margin": LUNG_MARGIN,
                                     "images_without_plausible_lungs": unguided_count(train_seq)}
                                    if lungs is not None and config.lung_guidance > 0 else None),
                  "train_sources": source_counts(train_files), "val_sources": source_counts(val_files),
                  "epochs_run": len(history.get("loss", [])), "trained_in": policy,
                  "train_counts": train_files.counts(), "val_counts": val_files.counts(),
                  "tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    # The lung model too, as Classifier.load gives it: the new model is scored and shown with the
    # same lung features and shortcut check as a loaded one.
    classifier = Classifier(classifier_model, card, lungs=lungs if lungs is not None else _bundled_segmenter())
    report = {}
    if not stop.cancelled:
        report = calibrate_and_measure(classifier, val_seq, val_labels)
        card.metrics["validation"] = report
        classifier.gate = gate if gate is not None else fit_gate(gate_features(classifier, train_seq),
                                                                 gate_features(classifier, val_seq))
        card.metrics["gate"] = {"thresholds": classifier.gate.thresholds.tolist(),
                                "scores": list(classifier.gate.NAMES)}
    pool.shutdown(wait=False)  # calibration and the gate still decode through it when the set is streamed
    return TrainResult(classifier, history, report, stop.cancelled, {**train_seq.unreadable, **val_seq.unreadable},
                       network=classifier_model)


def _refuse_if_none_readable(sequence, files: LabelledFiles, what: str) -> None:
    """Raise DatasetError, before any training, when a decoded set has no readable file."""
    if len(files) and len(sequence.unreadable) >= len(files):
        path, reason = next(iter(sequence.unreadable.items()))
        raise DatasetError(f"None of the {len(files)} {what} images could be read "
                           f"(for example {Path(path).name}: {reason}).")


def _compiled_models(config: TrainConfig, train_files: LabelledFiles, train_seq, val_seq, validate: bool, lungs,
                     source_classes, one_hot: int, strategy, policy: str):
    """(classifier, fit model) built, frozen as ``config`` says, compiled and ready to fit (in the
    strategy's scope: Keras takes the distribution strategy from where the model is built); a new
    network computes as the dtype ``policy`` says (see covidgui.core.training.precision)."""
    import keras

    size, n_classes = config.input_size, len(train_files.classes)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        with building_in(policy):  # the classifier's layers only: augmentation and losses stay float32
            classifier_model = (starting_network(config.start_from, size, list(train_files.classes))
                                if config.start_from else new_network(config.architecture, size, n_classes, config.seed,
                                                                      config.width, config.pretrained_weights))
        freeze_layers_before(classifier_model, config.freeze_before)
        augmentation = build_augmentation(config.seed) if config.augment else None
        from covidgui.core.training.fit_model import build_fit_model  # imports Keras: only when training

        fit_model = build_fit_model(classifier_model, augmentation, 1 if lungs is None else 2,
                                    guidance=config.lung_guidance if lungs is not None else 0.0,
                                    source_classes=source_classes, adversary_weight=config.source_adversary,
                                    features_layer=EMBEDDING_LAYER)
        steps = len(train_seq) * config.epochs
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.05)
        # An exponential moving average of the weights (about the last 100 steps) is what is kept:
        # with a few hundred images single checkpoints vary a lot from seed to seed. In a short
        # adaptation (30 steps at 25 films per class) the average keeps much of the starting
        # weights; a shorter one (momentum 0.9) did no better (benchmarks/results/adapt-siim-lite0.md).
        fit_model.compile(optimizer=keras.optimizers.Adam(schedule, use_ema=True, ema_momentum=0.99),
                          loss=(keras.losses.CategoricalCrossentropy(from_logits=True,
                                                                     label_smoothing=config.label_smoothing)
                                if one_hot else keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
                          weighted_metrics=["accuracy"],
                          steps_per_execution=steps_per_call(len(train_seq), *([len(val_seq)] if validate else [])))
        make_fit_work(fit_model, strategy)
        build_before_fit(fit_model, train_seq, strategy)
    return classifier_model, fit_model


# freeze_before "scale:N": the layers before the first one whose output is at 1/N of the input's
# side or smaller (any network of ours, whatever Keras named its layers).
SCALE_PREFIX = "scale:"


def freeze_layers_before(model, layer_name: str) -> None:
    """Every layer of ``model`` trainable, then those before ``layer_name`` not (their weights and,
    for BatchNorm, statistics stay; "" freezes nothing). ``layer_name`` may be "scale:N" (see
    :data:`SCALE_PREFIX`). Raises DatasetError for an unknown name or scale."""
    unfreeze(model)  # a saved model may carry an earlier freeze
    if not layer_name:
        return
    names = [layer.name for layer in model.layers]
    if layer_name.startswith(SCALE_PREFIX):
        index = _first_at_scale(model, layer_name)
    elif layer_name in names:
        index = names.index(layer_name)
    else:
        raise DatasetError(f"The model {model.name} has no layer {layer_name!r} to freeze up to.")
    for layer in model.layers[:index]:
        layer.trainable = False


def unfreeze(model) -> None:
    """Every layer of ``model`` trainable (Keras 3's ``model.trainable = True`` leaves a layer that
    was frozen on its own frozen, and a saved file keeps each layer's flag)."""
    model.trainable = True
    for layer in model.layers:
        layer.trainable = True


def _first_at_scale(model, spec: str) -> int:
    """The index of the first layer of ``model`` whose output (N, h, w, C) has h at most the input
    side divided by the N of ``spec`` ("scale:N")."""
    try:
        factor = int(spec[len(SCALE_PREFIX):])
    except ValueError:
        factor = 0
    side = model.input_shape[1]
    for index, layer in enumerate(model.layers):
        shape = layer.output.shape
        if factor > 0 and len(shape) == 4 and shape[1] is not None and shape[1] * factor <= side:
            return index
    raise DatasetError(f"The model {model.name} has no layer at 1/{spec[len(SCALE_PREFIX):]} of its input's side "
                       f"to freeze up to.")


# Clean batches BatchNorm re-estimation reads at most (the statistics settle long before).
BATCH_NORM_BATCHES = 100


def recalibrate_batch_norm(model, batches) -> None:
    """Re-estimate BatchNorm statistics on clean (un-augmented) training images: ``batches``, an
    iterable of model inputs (B, S, S, C), channel 0 the image (1: a lung mask, if any); callers
    take at most :data:`BATCH_NORM_BATCHES` of them.

    During fit the moving averages see augmented batches (noise, contrast, zoom); at inference the
    images are clean, and the mismatch shifted the logits enough to miss most COVID cases while
    the ranking stayed near perfect (AUC 0.99, 5/29 found). Forward passes in training mode,
    without any weight update, replace the averages with clean-data ones ("precise BN",
    Wu & Johnson 2021). Dropout is active during these passes but sits after every BatchNorm.
    The momentum of pass k is k / (k + 1), so the result is the plain mean over the passes and
    nothing of the training-time averages survives (which also differed between the workers of a
    multi-worker training, each having seen its own augmented batches).
    """
    from keras import layers

    norms = [layer for layer in _all_layers(model) if isinstance(layer, layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    try:
        for passes, x in enumerate(batches):
            for layer in norms:
                layer.momentum = passes / (passes + 1)
            model(x[..., :1], training=True)
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum


def _all_layers(model) -> list:
    """Every layer of a model, nested models included."""
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


def gate_features(classifier: Classifier, sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thumbnails, pooled features, colourfulness) of every readable image of a sequence."""
    thumbs, features, colour = [], [], []
    for x, _, index in sequence.readable_batches():
        inputs = x[..., 0]
        thumbs.append(thumbnails(inputs))
        features.append(classifier.forward(inputs)[1])
        colour.append(sequence.colourfulness[index])
    return np.concatenate(thumbs), np.concatenate(features), np.concatenate(colour)


def network_logits(network, files: LabelledFiles, config: TrainConfig) -> dict[str, np.ndarray]:
    """Each readable file's logits (C,) from a Keras ``network`` trained by ``config``, by path:
    decoded and prepared as the clean batches that calibration reads (the preprocessing of
    ``config``), so a network fitted with ``measure=False`` is scored without an inference graph."""
    lungs = _bundled_segmenter() if config.lung_mask else None
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    sequence = make_sequence(files.paths, files.labels, config.input_size, config.batch_size, False, config.seed,
                             pool=pool, lungs=lungs, lung_mask=config.lung_mask, harmonise=config.harmonise_storage)
    paths = np.asarray([str(p) for p in files.paths], dtype=object)
    views = parse_views(config.test_time_views)  # averaged as the model's inference graph will
    any_size = smaller_view_reader(network, views)
    out = {}
    try:
        for x, _, index in sequence.readable_batches():  # channel 0: the image (1: a lung mask, if any)
            logits, _ = averaged_logits(lambda batch: network(batch, training=False), x[..., :1], views, any_size)
            out.update(zip(paths[index], np.asarray(logits, dtype=np.float64)))
    finally:
        pool.shutdown(wait=False)
    return out


def calibrate_and_measure(classifier: Classifier, val_seq, val_labels: list[int]) -> dict:
    """Fit the temperature and the indeterminate band on validation (calibration) logits, store
    them in the card, return the report."""
    batches = list(val_seq.readable_batches())
    if not batches:  # a streamed set meets its unreadable files only here
        raise DatasetError("None of the validation images could be read.")
    logits = np.concatenate([classifier.logits(x[..., 0]) for x, _, _ in batches])
    labels = np.concatenate([y for _, y, _ in batches])
    ece_before = expected_calibration_error(softmax(logits), labels)
    classifier.card.temperature = fit_temperature(logits, labels)
    calibrated = softmax(logits, classifier.card.temperature)
    classifier.card.indeterminate_band = fit_indeterminate_band(calibrated, labels)
    report = classification_report(labels, calibrated, classifier.card.classes, classifier.card.positive_class)
    report["ece_before_calibration"] = ece_before
    report["temperature"] = classifier.card.temperature
    return report


def _guidance_segmenter(config: TrainConfig):
    """The lung segmenter lung guidance needs, or None when guidance is off.

    Raises DatasetError when guidance is asked for but the lung model is missing: a model trained
    without it would silently differ from what was asked.
    """
    if config.lung_guidance <= 0 and not config.lung_mask:
        return None
    segmenter = _bundled_segmenter()
    if segmenter is None:
        raise DatasetError("Lung guidance needs the lung model (models/lung_segmenter.keras), which is missing; "
                           "set lung guidance to 0 to train without it.")
    return segmenter


def _bundled_segmenter():
    return load_bundled_segmenter()


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
