"""Training a classifier on labelled folders, with the same preprocessing as inference.

:func:`train` is the one entry point (the Training tab, ``covidgui train``, the scripts and the
benchmarks call it): label cleaning when the recipe asks for it, then the fit loop. The parts, by
job, each in its own module of this room:

- :mod:`~covidgui.core.training.recipe`: :class:`TrainConfig` and its command-line options, the
  loss weights of classes and sources, the data a recipe accepts, the card's preprocessing entry;
- :mod:`~covidgui.core.training.network`: the CNN (:func:`build_classifier`), the network to start
  from, the geometric augmentation;
- :mod:`~covidgui.core.training.sequence`: :func:`make_sequence`, the batches ``fit`` reads (each
  film decoded, resized and segmented once per run when the set fits in memory);
- :mod:`~covidgui.core.training.fit_loop`: fit, BatchNorm re-estimation, calibration, the input gate;
- :mod:`~covidgui.core.training.label_cleaning`: the first pass that drops noisy sources' films.

Every public name of those parts stays importable from here.
"""

from __future__ import annotations

from covidgui.core.training.fit_loop import (ProgressListener, TrainResult, calibrate_and_measure, fit_classifier,
                                             gate_features, recalibrate_batch_norm)
from covidgui.core.training.label_cleaning import clean_noisy_labels, first_pass_normal_probability
from covidgui.core.training.network import build_augmentation, build_classifier, count_flops, starting_network
from covidgui.core.training.recipe import (PREPROCESSING_DESCRIPTION, TrainConfig, add_recipe_arguments,
                                           balanced_sample_weight, check_dataset, down_weight_sources,
                                           preprocessing_description, recipe_from, source_factors)
from covidgui.core.training.sequence import CACHE_LIMIT_BYTES, make_sequence

__all__ = [
    "CACHE_LIMIT_BYTES", "PREPROCESSING_DESCRIPTION", "ProgressListener", "TrainConfig", "TrainResult",
    "add_recipe_arguments", "balanced_sample_weight", "build_augmentation", "build_classifier",
    "calibrate_and_measure", "check_dataset", "clean_noisy_labels", "count_flops", "down_weight_sources",
    "first_pass_normal_probability", "gate_features", "make_sequence", "preprocessing_description",
    "recalibrate_batch_norm", "recipe_from", "source_factors", "starting_network", "train",
]


def train(train_files, val_files, config: TrainConfig | None = None, listener: ProgressListener | None = None,
          name: str = "covid-cnn", version: str = "1", display_names: dict[str, str] | None = None,
          positive_class: str | None = None, training_info: dict | None = None, strategy=None,
          measure: bool = True, reuse=None, gate=None) -> TrainResult:
    """Train a classifier from scratch (or from ``config.start_from``) on ``train_files``
    (:class:`covidgui.core.data.dataset.LabelledFiles`) and measure it on ``val_files``.

    The returned classifier is calibrated (temperature fitted on the validation logits) and its
    card holds the validation report; nothing is written to disk (see
    :mod:`covidgui.core.models.model_files`). Raises DatasetError for unusable data. When the
    listener asks to stop, training ends after the current batch and the result has ``cancelled=True``.
    With ``config.clean_noisy_sources``, :func:`clean_noisy_labels` first drops the noisy sources'
    films a first-pass model calls normal (recorded in the card).
    strategy: a ``tf.distribute.Strategy`` (see :mod:`covidgui.core.training.distribute`) under whose scope
        the model is built and trained; None trains on the default device.
    measure: False for a network that is only scored (see :func:`fit_classifier`).
    reuse: a compiled model kept between trainings of one recipe (see :func:`fit_classifier`).
    gate: an :class:`~covidgui.core.inference.gate.InputGate` to keep instead of fitting one (an
        adapted model keeps its starting model's: covidgui.core.training.adapt).
    """
    config = config or TrainConfig()
    listener = listener or ProgressListener()
    check_dataset(train_files, val_files)
    cleaning = None
    if config.clean_noisy_sources:
        train_files, cleaning = clean_noisy_labels(train_files, val_files, config, listener)
    return fit_classifier(train_files, val_files, config, listener, name, version, display_names, positive_class,
                          training_info, strategy, cleaning=cleaning, measure=measure, reuse=reuse,
                          gate=gate)
