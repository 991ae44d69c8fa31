"""A training recipe: its settings, the loss weights of files and sources, the data it accepts.

:class:`TrainConfig` (one command-line option per field), the class- and source-balancing weights,
:func:`check_dataset`, and the preprocessing entry a trained model's card records.

Plain Python and NumPy: importing it imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.errors import DatasetError
from covidgui.core.inference.preprocess import HARMONISE_QUALITY, HARMONISED_SIDES
from covidgui.core.inference.views import CARD_KEY as VIEWS_CARD_KEY, VIEWS, parse_views
from covidgui.core.training.lung_guidance import LUNG_GUIDANCE_WEIGHT


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
    # The network of a new model: "compact" (the CNN of covidgui.core.training.network, ``width``
    # applies) or "efficientnet-lite0" (covidgui.core.training.efficientnet_lite: 3.4 M parameters,
    # 0.7 GFLOP), whose layers start from ``pretrained_weights`` (an ImageNet .npz) when it is given.
    architecture: str = "compact"
    pretrained_weights: str = ""
    # Test-time views (covidgui.core.inference.views), comma-separated, e.g. "mirrored,zoom90,zoom95":
    # the model's logits are averaged over the film and these altered copies; "" = the film alone.
    test_time_views: str = ""
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
    # With start_from: the layers before this named layer (e.g. "last_conv"), or before the first
    # layer at 1/N of the input's side ("scale:N"), keep the starting model's weights and BatchNorm
    # statistics throughout; "" = every layer trains. On a few dozen films of a new site the early
    # filters have too little data to move safely, and the backward pass through them is most of a
    # step's cost.
    freeze_before: str = ""
    # After fit, BatchNorm statistics re-estimated on clean (un-augmented) training films
    # (fit_loop.recalibrate_batch_norm); off: the running averages of the last training steps stay.
    reestimate_batch_norm: bool = True
    # What a new network computes in while training (covidgui.core.training.precision): "auto" =
    # bfloat16 for the compact CNN on a processor with bfloat16 instructions, else float32;
    # "float32"; "bfloat16". The kept model computes in float32 whatever it trained in.
    precision: str = "auto"
    # With start_from: the logits layer first fitted to the training films' embeddings (a logistic
    # regression, covidgui.core.training.head_first), then every trainable layer fine-tuned.
    head_first: bool = False


def add_recipe_arguments(parser, defaults: TrainConfig) -> None:
    """One ``argparse`` option per TrainConfig field (``--amplitude-mix 0.5``), defaulting to
    ``defaults``; booleans take 0/1. The scripts that compare and train recipes share it."""
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
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


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


PREPROCESSING_DESCRIPTION = {
    "function": "covidgui.core.inference.preprocess.prepare",
    "steps": ["greyscale 0..1 (ITU-R 601 luma; alpha composited on black)",
              "crop uniform borders (at most 20 % per side)",
              "resize to input_size x input_size (bilinear, antialiased)",
              "global histogram equalisation",
              "in-model: rescale 0..1 to -1..1"],
}


def preprocessing_description(lung_mask: bool = False, harmonise_storage: bool = False,
                              test_time_views: str = "") -> dict:
    """The card's preprocessing entry; ``harmonise_storage`` adds the storage chain of the 224-px
    sources, ``lung_mask`` the blanking outside the lungs, ``test_time_views`` the views whose
    logits are averaged with the film's (each with its flag or list, which inference reads)."""
    views = parse_views(test_time_views)
    if not (lung_mask or harmonise_storage or views):
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
    if views:
        steps.append("logits averaged over the film and its views: " + ", ".join(f"{v} ({VIEWS[v]})" for v in views))
        flags[VIEWS_CARD_KEY] = list(views)
    return {**PREPROCESSING_DESCRIPTION, "steps": steps, **flags}


def source_counts(files: LabelledFiles) -> dict[str, int]:
    """Images per source (LabelledFiles.groups), when the files name their sources."""
    if len(files.groups) != len(files.paths):
        return {}
    return {name: files.groups.count(name) for name in sorted(set(files.groups))}
