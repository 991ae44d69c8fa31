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
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from covidgui.core.training.augment import acquisition_augment as augment_acquisition
from covidgui.core.training.augment import amplitude_mix as augment_amplitude_mix
from covidgui.core.scoring.calibration import fit_indeterminate_band, fit_temperature
from covidgui.core.analysis.batch import predict_files
from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.training.distribute import make_fit_work
from covidgui.core.errors import DatasetError, ImageLoadError
from covidgui.core.inference.gate import fit_gate, thumbnails
from covidgui.core.training.lung_guidance import LUNG_GUIDANCE_WEIGHT, training_mask
from covidgui.core.inference.lungs import LUNG_MARGIN, blank_outside, load_bundled_segmenter
from covidgui.core.scoring.metrics import classification_report, expected_calibration_error
from covidgui.core.inference.keras_env import quiet_tensorflow
from covidgui.core.inference.runtime import load_keras
from covidgui.core.inference.classifier import EMBEDDING_LAYER, HEATMAP_LAYER, Classifier, softmax
from covidgui.core.models.modelcard import ModelCard
from covidgui.core.inference.preprocess import HARMONISE_QUALITY, HARMONISED_SIDES, equalize_histogram, load_prepared

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
    # (covidgui.core.training.lung_guidance); 0 = off. Needs the bundled lung segmenter.
    lung_guidance: float = LUNG_GUIDANCE_WEIGHT
    # Each source of a class weighs the same in the loss (sources: LabelledFiles.groups), so one
    # large collection cannot define what its class looks like.
    source_balance: bool = True
    # Blur, noise, lost resolution and JPEG re-compression (covidgui.core.training.augment), on top of the
    # geometric augmentation; only when ``augment`` is on.
    acquisition_augment: bool = True
    # The model sees the lung fields alone, in training and at inference (everything outside them
    # blanked; recorded in the card's preprocessing, needs the lung segmenter).
    lung_mask: bool = False
    # Weight of the within-class source adversary (covidgui.core.training.fit_model): the features are
    # pushed not to tell apart the sources of one class (LabelledFiles.groups). 0 = off.
    source_adversary: float = 0.0
    # Share of training images given part of the Fourier amplitude spectrum of an image of another
    # class (covidgui.core.training.augment.amplitude_mix), so a collection's look stops predicting the class.
    amplitude_mix: float = 0.5
    # Channel multiplier of the CNN (1.0: 0.25 M parameters, 0.32 GFLOP at 224 px).
    width: float = 1.0
    # Label noise. label_smoothing: share of every training label spread evenly over the classes
    # (Keras CategoricalCrossentropy); a wrong label then costs a bounded loss instead of pulling
    # the features towards it (Lukasik et al. 2020, "Does label smoothing mitigate label noise?").
    label_smoothing: float = 0.0
    # noisy_sources (comma-separated source names, LabelledFiles.groups) weigh noisy_source_weight
    # times what they would inside their class, the class keeping its total weight
    # (down_weight_sources): a source whose labels are known to be noisy (report-mined, say) says
    # less about what its class looks like.
    noisy_sources: str = ""
    noisy_source_weight: float = 1.0
    # Label cleaning (clean_noisy_labels): before the real training, a first-pass model of the same
    # recipe trains on the files of every source but the noisy_sources (clean_epochs epochs; 0: as
    # many as ``epochs``), scores the noisy sources' training films (out of sample for it), and the
    # films it gives a calibrated Normal probability >= clean_threshold are dropped: a report-mined
    # "pneumonia" film that looks normal to a model that never saw its source is likely mislabelled.
    clean_noisy_sources: bool = False
    clean_threshold: float = 0.5
    clean_epochs: int = 0
    # Every image, in training and at inference, is first stored the way the two 224-px sources
    # were (covidgui.core.inference.preprocess.harmonise_storage; recorded in the card's
    # preprocessing), so how a source was stored stops telling the class.
    harmonise_storage: bool = False
    # Per-source loss factors, "name=factor,name=factor" (source_factors): a source whose classes
    # share the hospitals (siim-covid) can weigh more inside each of its classes, a doubtful one
    # less; each class keeps its total weight (down_weight_sources).
    source_weights: str = ""
    # A saved classifier (.keras) to start from instead of a new network: its architecture and
    # weights (its classes and input size must match the data's); train it gently (a lower
    # learning_rate, fewer epochs). Temperature, gate and band are refitted as for a new one.
    start_from: str = ""


def add_recipe_arguments(parser, defaults: TrainConfig) -> None:
    """One ``argparse`` option per TrainConfig field (``--amplitude-mix 0.5``), defaulting to
    ``defaults``; booleans take 0/1. The scripts that compare and train recipes share it."""
    from dataclasses import fields

    for f in fields(TrainConfig):
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes", "on"), default=value,
                                metavar="0|1")
        else:
            parser.add_argument(flag, type=type(value), default=value)


def recipe_from(args) -> TrainConfig:
    """The TrainConfig of parsed :func:`add_recipe_arguments` options."""
    from dataclasses import fields

    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


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


def build_classifier(input_size: int, n_classes: int, seed: int = 0, width: float = 1.0):
    """A compact CNN: greyscale (S, S, 1) in 0..1 -> (n_classes,) logits.

    Two strided convolutions (16, 32 channels) bring the image to 1/4 resolution cheaply, two
    more (64, 128) each followed by max-pooling to 1/16, then a 128-channel convolution named
    ``last_conv`` for Grad-CAM, global average pooling and one dense layer. About 0.32 GFLOP and
    0.25 M parameters at 224 x 224 (see ``count_flops``); ``width`` multiplies every channel count
    (the cost grows with its square).
    Rescaling to -1..1 lives inside the model, as the design asks.
    """
    quiet_tensorflow()
    import keras
    from keras import layers

    init = keras.initializers.HeNormal(seed=seed)

    def conv(x, filters, name=None, stride=1):
        filters = max(4, round(filters * width))
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


def starting_network(path: str | Path, input_size: int, n_classes: int):
    """The Keras network of a saved classifier to train further (``TrainConfig.start_from``).
    Raises DatasetError when its input size or class count does not fit the data."""
    network = load_keras(Path(path), "model to start from")
    inputs, outputs = network.input_shape, network.output_shape
    if tuple(inputs[1:3]) != (input_size, input_size) or outputs[-1] != n_classes:
        raise DatasetError(f"The model to start from ({Path(path).name}) takes {inputs[1]} x {inputs[2]} px and "
                           f"gives {outputs[-1]} classes; this training needs {input_size} px and {n_classes} classes.")
    return network


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
                  sample_weight=None, cache: bool | None = None, pool=None,
                  lungs=None, acquisition_augment: bool = False, amplitude_mix: float = 0.0,
                  lung_mask: bool = False, source_ids=None, one_hot: int = 0, harmonise: bool = False):
    """A ``keras.utils.PyDataset`` yielding (x (B, S, S, 1), y (B,), sample_weight (B,)).

    Files that fail to decode get weight 0 (they neither train nor count) and are recorded in
    ``.unreadable``; the batch is never stopped by one bad file.
    sample_weight: (N,) weight of each file in the loss (see :func:`balanced_sample_weight`); None: 1.
    lungs: a :class:`covidgui.core.inference.lungs.LungSegmenter`; then x is (B, S, S, 2), the image and its
        lung mask (:func:`covidgui.core.training.lung_guidance.training_mask`).
    acquisition_augment: blur, noise, lost resolution, re-compression (:mod:`covidgui.core.training.augment`)
        before equalisation; and
    amplitude_mix: share of images whose amplitude spectrum is mixed with that of an image of
        another class in the same batch (strength 0.2-0.6). Both only in ``seq[i]`` (what ``fit``
        reads); ``seq.clean(i)`` gives the batch without them.
    lung_mask: every image blanked outside its lung mask, in every batch (a lung-fields-only model).
    harmonise: every image decoded through :func:`covidgui.core.inference.preprocess.harmonise_storage`
        first, as inference does for such a model.
    source_ids: (N,) int source index of each file, for the source adversary: then ``seq[i]`` gives
        ((x, source (B,)), y, w); ``seq.clean(i)`` always gives x alone.
    one_hot: when > 0, ``seq[i]`` gives y as (B, one_hot) one-hot rows (for a categorical loss with
        label smoothing); ``seq.clean(i)`` always gives class indices.
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
            self._cache: dict[int, tuple[np.ndarray, np.ndarray | None] | None] = {}
            self._order = np.arange(len(paths))
            self._rng = np.random.default_rng(seed)
            self._lock = threading.Lock()
            self._epoch = 0
            if shuffle:
                self._rng.shuffle(self._order)

        def __len__(self):
            return math.ceil(len(paths) / batch_size)

        def _load(self, index: int) -> tuple[np.ndarray, np.ndarray | None] | None:
            """(image (S, S) resized but not yet equalised, lung mask (S, S) or None), or None."""
            if cache and index in self._cache:
                return self._cache[index]
            try:
                # Inference's own decode and preprocessing; augmentation later starts from the
                # resized pixels before equalisation (see _input).
                xray, prepared = load_prepared(paths[index], size, harmonise=harmonise)
                self.colourfulness[index] = xray.metadata.get("colourfulness", 0.0)
                mask = training_mask(lungs, prepared.input) if lungs is not None else None
                item = (prepared.resized, mask)
            except ImageLoadError as exc:
                with self._lock:
                    self.unreadable[str(paths[index])] = exc.reason
                item = None
            if cache:
                self._cache[index] = item
            return item

        def _input(self, item, epoch_rng) -> np.ndarray:
            """The model input of one loaded item: equalised, augmented when ``epoch_rng`` is given."""
            small, mask = item
            if epoch_rng is not None and acquisition_augment:
                small = augment_acquisition(small, epoch_rng)
            x = equalize_histogram(small)
            if mask is not None and lung_mask:
                x = blank_outside(x, mask)
            return x if mask is None else np.stack([x, mask], axis=-1)

        def batch(self, i: int, augmented: bool):
            idx = self.batch_indices(i)
            items = list(pool.map(self._load, idx))
            # One generator per (epoch, batch): reproducible whatever order the batches are read in.
            rng = np.random.default_rng([seed, self._epoch, i]) if augmented else None
            if rng is not None and amplitude_mix > 0:
                items = self._mix_amplitudes(items, [labels[j] for j in idx], rng)
            blank = np.zeros((size, size) if lungs is None else (size, size, 2), np.float32)
            x = np.stack([self._input(item, rng) if item is not None else blank for item in items])
            x = x[..., None] if lungs is None else x
            y = np.asarray([labels[j] for j in idx], dtype=np.int32)
            w = np.asarray([0.0 if item is None else (1.0 if sample_weight is None else sample_weight[j])
                            for item, j in zip(items, idx)], dtype=np.float32)
            return x, y, w

        @staticmethod
        def _mix_amplitudes(items, batch_labels, rng):
            """Give a share of the batch the amplitude spectrum of an image of another class."""
            readable = [k for k, item in enumerate(items) if item is not None]
            out = list(items)
            for k in readable:
                others = [o for o in readable if batch_labels[o] != batch_labels[k]]
                if others and rng.random() < amplitude_mix:
                    small, mask = items[k]
                    other = items[others[int(rng.integers(len(others)))]][0]
                    out[k] = (augment_amplitude_mix(small, other, rng.uniform(0.2, 0.6)), mask)
            return out

        def __getitem__(self, i):
            x, y, w = self.batch(i, augmented=acquisition_augment or amplitude_mix > 0)
            if one_hot:
                y = np.eye(one_hot, dtype=np.float32)[y]
            if source_ids is None:
                return x, y, w
            return (x, source_ids[self.batch_indices(i)]), y, w

        def clean(self, i):
            """Batch ``i`` without augmentation (BatchNorm re-estimation, gate, calibration)."""
            return self.batch(i, augmented=False)

        def batch_indices(self, i: int) -> np.ndarray:
            return self._order[i * batch_size:(i + 1) * batch_size]

        def on_epoch_end(self):
            self._epoch += 1
            if shuffle:
                self._rng.shuffle(self._order)

        def warm(self) -> None:
            """Decode everything once (fills the cache, finds unreadable files)."""
            list(pool.map(self._load, range(len(paths))))

    seq = _Sequence()
    seq.n_classes = n_classes
    seq.paths_for_warm, seq.pool_for_warm = paths, pool
    return seq


def balanced_sample_weight(labels: list[int], groups: list[str] | None, n_classes: int) -> np.ndarray:
    """(N,) loss weights under which each class counts equally and, inside a class, each of its
    sources (``groups``) does too: n / (k * g_c * n_cg). groups None: classes only (n / (k * n_c))."""
    labels = np.asarray(labels)
    groups = np.asarray(groups if groups is not None else [""] * len(labels))
    weights = np.zeros(len(labels), dtype=np.float32)
    for c in range(n_classes):
        in_class = labels == c
        names = np.unique(groups[in_class])
        for name in names:
            members = in_class & (groups == name)
            weights[members] = len(labels) / (n_classes * len(names) * members.sum())
    return weights


def down_weight_sources(weights: np.ndarray, labels: list[int], groups: list[str],
                        factors: dict[str, float]) -> np.ndarray:
    """(N,) ``weights`` with the files of the named sources (``groups``) multiplied by their factor,
    then every class scaled back to its total weight: a noisy source says less about what its
    class looks like, and the class as a whole weighs what it did. A class whose sources are all
    named is left as it was (there is nothing cleaner to learn it from)."""
    weights = np.asarray(weights, dtype=np.float32).copy()
    labels, groups = np.asarray(labels), np.asarray(groups)
    factor = np.array([factors.get(str(g), 1.0) for g in groups], dtype=np.float32)
    for c in np.unique(labels):
        in_class = labels == c
        if (factor[in_class] != 1.0).all() or (factor[in_class] == 1.0).all():
            continue
        total = weights[in_class].sum()
        weights[in_class] *= factor[in_class]
        weights[in_class] *= total / weights[in_class].sum()
    return weights


def source_factors(config: TrainConfig) -> dict[str, float]:
    """Source name -> loss factor: the noisy sources' weight times any ``source_weights`` entry
    ({} when neither is set). Raises DatasetError for a malformed ``source_weights``."""
    factors: dict[str, float] = {}
    if config.noisy_source_weight != 1.0:
        factors = {n.strip(): config.noisy_source_weight for n in config.noisy_sources.split(",") if n.strip()}
    for entry in filter(None, (e.strip() for e in config.source_weights.split(","))):
        name, _, value = entry.partition("=")
        try:
            factor = float(value)
        except ValueError:
            raise DatasetError(f"Source weight {entry!r} is not 'source=factor'.") from None
        if not name.strip() or factor <= 0:
            raise DatasetError(f"Source weight {entry!r} needs a source name and a factor above 0.")
        factors[name.strip()] = factors.get(name.strip(), 1.0) * factor
    return factors


def _normal_class(classes: list[str]) -> str | None:
    return next((c for c in classes if c.lower() == "normal"), None)


def clean_noisy_labels(train_files: LabelledFiles, val_files: LabelledFiles, config: TrainConfig,
                       listener: ProgressListener | None = None) -> tuple[LabelledFiles, dict]:
    """(the training files without the noisy sources' films that look normal, what was done).

    A first-pass model of the same recipe (cleaning off; ``config.clean_epochs`` epochs, 0: as many
    as ``config.epochs``) trains on every training file outside ``config.noisy_sources`` and
    calibrates on the validation files outside them (so it never saw the noisy sources: its scores
    of their films are out of sample), on the classes those files still hold. It scores the noisy
    sources' training films, and those whose calibrated probability of the Normal class is
    >= ``config.clean_threshold`` are dropped. Nothing is dropped (``skipped`` says why) when no
    noisy source is among the training files, when there is no Normal class, or when fewer than two
    classes (or Normal) remain without the noisy sources. Unreadable films are kept (training
    gives them weight 0 anyway). Film names of dropped files are listed per source.
    """
    names = [n.strip() for n in config.noisy_sources.split(",") if n.strip()]
    groups = np.array(train_files.group_names())
    noisy = np.isin(groups, names)
    info = {"sources": names, "threshold": config.clean_threshold,
            "first_pass_epochs": config.clean_epochs or config.epochs,
            "scored": {}, "dropped": {}, "dropped_files": {}}
    normal = _normal_class(train_files.classes)
    first_classes = [c for i, c in enumerate(train_files.classes)
                     if any(lab == i and not n for lab, n in zip(train_files.labels, noisy))]
    if not noisy.any():
        return train_files, {**info, "skipped": "no noisy source among the training files"}
    if normal is None or normal not in first_classes or len(first_classes) < 2:
        return train_files, {**info, "skipped": "without the noisy sources there is no Normal class "
                                                "or fewer than two classes to learn"}
    first_train = train_files.subset(~noisy, first_classes)
    val_noisy = np.isin(val_files.group_names(), names)
    val_lower = [c.lower() for c in first_classes]
    val_keep = [not n and val_files.classes[lab].lower() in val_lower
                for lab, n in zip(val_files.labels, val_noisy)]
    first_val = val_files.subset(val_keep, [c for c in val_files.classes if c.lower() in val_lower])
    to_score = train_files.subset(noisy)
    info["first_pass_classes"] = first_classes
    info["first_pass_train_sources"] = _source_counts(first_train)
    p_normal = first_pass_normal_probability(first_train, first_val, to_score, config, listener)
    drop = np.zeros(len(train_files), dtype=bool)
    drop[np.flatnonzero(noisy)] = p_normal >= config.clean_threshold  # NaN (unreadable) stays
    for name in names:
        in_source = groups == name
        if in_source.any():
            info["scored"][name] = int(in_source.sum())
            info["dropped"][name] = int((drop & in_source).sum())
            info["dropped_files"][name] = sorted(Path(p).name for p, d in zip(train_files.paths, drop & in_source)
                                                 if d)
    return train_files.subset(~drop), info


def first_pass_normal_probability(first_train: LabelledFiles, first_val: LabelledFiles,
                                  to_score: LabelledFiles, config: TrainConfig,
                                  listener: ProgressListener | None = None) -> np.ndarray:
    """(N,) calibrated Normal probability of each ``to_score`` file under a first-pass model trained
    by :func:`train` on ``first_train`` (calibrated on ``first_val``); NaN for unreadable files."""
    first = replace(config, clean_noisy_sources=False, epochs=config.clean_epochs or config.epochs)
    result = train(first_train, first_val, first, listener, name="first-pass", version="0")
    card = result.classifier.card
    normal = card.display_name(_normal_class(card.classes))
    out = np.full(len(to_score), np.nan)
    # Through the one batch engine, as every user of a model scores files.
    for i, scored in enumerate(predict_files(result.classifier, to_score.paths)):
        if not isinstance(scored, ImageLoadError):
            out[i] = scored.probabilities[normal]
    return out


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
    strategy: a ``tf.distribute.Strategy`` (see :mod:`covidgui.core.training.distribute`) under whose scope
        the model is built and trained; None trains on the default device.
    """
    config = config or TrainConfig()
    listener = listener or ProgressListener()
    check_dataset(train_files, val_files)
    cleaning = None
    if config.clean_noisy_sources:
        train_files, cleaning = clean_noisy_labels(train_files, val_files, config, listener)
        check_dataset(train_files, val_files)
    # Validation labels follow the training class order whatever the folder's case.
    lower = [c.lower() for c in train_files.classes]
    val_labels = [lower.index(val_files.classes[v].lower()) for v in val_files.labels]

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    n_classes = len(train_files.classes)
    size = config.input_size
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    weights = balanced_sample_weight(train_files.labels,
                                     train_files.group_names() if config.source_balance else None, n_classes)
    weights = down_weight_sources(weights, train_files.labels, train_files.group_names(), source_factors(config))
    lungs = _guidance_segmenter(config)
    # The source adversary needs two sources in some class to have anything to tell apart.
    source_names = sorted(set(train_files.group_names()))
    source_classes, source_ids = None, None
    if config.source_adversary > 0 and len(source_names) > n_classes:
        groups = train_files.group_names()
        source_ids = np.array([source_names.index(g) for g in groups], dtype=np.int32)
        source_classes = [train_files.labels[groups.index(name)] for name in source_names]
    one_hot = n_classes if config.label_smoothing > 0 else 0
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
        _warm_unless_stopped(train_seq, listener)
        _warm_unless_stopped(val_seq, listener)

    # Keras takes the distribution strategy from the scope the model is built and compiled in.
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        classifier_model = (starting_network(config.start_from, size, n_classes) if config.start_from
                            else build_classifier(size, n_classes, config.seed, config.width))
        augmentation = build_augmentation(config.seed) if config.augment else None
        from covidgui.core.training.fit_model import build_fit_model  # imports Keras: only when training

        fit_model = build_fit_model(classifier_model, augmentation, 1 if lungs is None else 2,
                                    guidance=config.lung_guidance if lungs is not None else 0.0,
                                    source_classes=source_classes, adversary_weight=config.source_adversary,
                                    features_layer=EMBEDDING_LAYER)
        steps = len(train_seq) * config.epochs
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.05)
        # An exponential moving average of the weights (about the last 4 epochs) is what is kept:
        # with a few hundred images single checkpoints vary a lot from seed to seed.
        fit_model.compile(optimizer=keras.optimizers.Adam(schedule, use_ema=True, ema_momentum=0.99),
                          loss=(keras.losses.CategoricalCrossentropy(from_logits=True,
                                                                     label_smoothing=config.label_smoothing)
                                if one_hot else keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
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
        preprocessing=preprocessing_description(config.lung_mask, config.harmonise_storage),
        architecture={"name": classifier_model.name, "parameters": int(classifier_model.count_params()),
                      "flops_per_image": count_flops(classifier_model), "heatmap_layer": HEATMAP_LAYER},
        training={**(training_info or {}), "config": asdict(config),
                  **({"label_cleaning": cleaning} if cleaning is not None else {}),
                  "lung_guidance": ({"segmenter": lungs.card.get("name", "lung segmenter"),
                                     "weight": config.lung_guidance, "margin": LUNG_MARGIN,
                                     "images_without_plausible_lungs": _unguided_count(train_seq)}
                                    if lungs is not None and config.lung_guidance > 0 else None),
                  "train_sources": _source_counts(train_files), "val_sources": _source_counts(val_files),
                  "epochs_run": len(history.history.get("loss", [])),
                  "train_counts": train_files.counts(), "val_counts": val_files.counts(),
                  "tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    # The lung model too, as Classifier.load gives it: the new model is scored and shown with the
    # same lung features and shortcut check as a loaded one.
    classifier = Classifier(classifier_model, card, lungs=lungs if lungs is not None else _bundled_segmenter())
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
    "function": "covidgui.core.inference.preprocess.prepare",
    "steps": ["greyscale 0..1 (ITU-R 601 luma; alpha composited on black)",
              "crop uniform borders (at most 20 % per side)",
              "resize to input_size x input_size (bilinear, antialiased)",
              "global histogram equalisation",
              "in-model: rescale 0..1 to -1..1"],
}


def preprocessing_description(lung_mask: bool = False, harmonise_storage: bool = False) -> dict:
    """The card's preprocessing entry; ``harmonise_storage`` adds the storage chain of the 224-px
    sources, ``lung_mask`` the blanking outside the lungs (each with its flag, which inference reads)."""
    if not (lung_mask or harmonise_storage):
        return PREPROCESSING_DESCRIPTION
    steps = list(PREPROCESSING_DESCRIPTION["steps"])
    flags = {}
    if harmonise_storage:
        steps.insert(1, "stored as the 224-px sources were: resized to "
                        + " then ".join(f"{side} x {side}" for side in HARMONISED_SIDES)
                        + f", JPEG quality {HARMONISE_QUALITY}")
        flags["harmonise_storage"] = True
    if lung_mask:
        steps.insert(-1, "everything outside the lung fields (lung model, 4 % margin) set to 0.5, "
                         "unless no plausible pair of lungs is found")
        flags["lung_mask"] = True
    return {**PREPROCESSING_DESCRIPTION, "steps": steps, **flags}


def _source_counts(files: LabelledFiles) -> dict[str, int]:
    """Images per source (LabelledFiles.groups), when the files name their sources."""
    if len(files.groups) != len(files.paths):
        return {}
    return {name: files.groups.count(name) for name in sorted(set(files.groups))}


def recalibrate_batch_norm(model, sequence, max_batches: int = 100) -> None:
    """Re-estimate BatchNorm statistics on clean (un-augmented) training images.

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
        batches = min(max_batches, len(sequence))
        passes = 0
        for i in range(batches):
            x, _, w = sequence.clean(i)
            keep = w > 0
            if keep.any():
                for layer in norms:
                    layer.momentum = passes / (passes + 1)
                model(x[keep][..., :1], training=True)  # channel 0: the image (1: a lung mask, if any)
                passes += 1
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
    for i in range(len(sequence)):
        x, _, w = sequence.clean(i)
        keep = w > 0
        if not keep.any():
            continue
        inputs = x[keep, ..., 0]
        thumbs.append(thumbnails(inputs))
        features.append(classifier.forward(inputs)[1])
        colour.append(sequence.colourfulness[sequence.batch_indices(i)][keep])
    return np.concatenate(thumbs), np.concatenate(features), np.concatenate(colour)


def calibrate_and_measure(classifier: Classifier, val_seq, val_labels: list[int]) -> dict:
    """Fit the temperature and the indeterminate band on validation (calibration) logits, store
    them in the card, return the report."""
    logits, labels = [], []
    for i in range(len(val_seq)):
        x, y, w = val_seq.clean(i)
        keep = w > 0
        logits.append(classifier.logits(x[keep, ..., 0]))
        labels.append(y[keep])
    logits = np.concatenate(logits)
    labels = np.concatenate(labels)
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


def _unguided_count(sequence) -> int:
    """How many cached training images had no plausible lungs (an all-ones mask: no guidance)."""
    return sum(1 for item in sequence._cache.values()
               if item is not None and item[1] is not None and item[1].min() >= 1.0)


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
