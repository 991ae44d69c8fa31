"""One training run: train, keep the model, score it beside the active model, report progress.

:func:`run_training` is the whole run. The Training tab's child process
(:mod:`covidgui.core.training.job`), its thread fallback (``covidgui.gui.training_worker``) and
``covidgui train`` all call it; they differ only in where its progress events
(:class:`~covidgui.core.training.progress.RunEvent`) go (a pipe as JSON, a Qt signal, a terminal
line) and in what they ask for (a comparison with the active model, where to save).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from covidgui.core.data.dataset import short_file_hashes
from covidgui.core.errors import CovidGUIError
from covidgui.core.inference.classifier import Classifier
from covidgui.core.models.model_files import save_model
from covidgui.core.scoring.comparison import roc_curves, score_files, score_unseen
from covidgui.core.models.modelcard import FILE_HASHES_KEY
from covidgui.core.training.progress import READING_TEXT, SCORING_TEXT, RunEvent, TrainingOutcome
from covidgui.core.training.train import ProgressListener, train


def run_training(train_files, val_files, config, on_event: Callable[[RunEvent], None],
                 stop: threading.Event | None = None, *, save_to: str | Path | None = None,
                 compare_with: str | Path | None = None, score: bool = True, name: str = "retrained",
                 version: str = "0", training_info: dict | None = None, strategy=None) -> TrainingOutcome | None:
    """Train a model on ``train_files`` (core.data.dataset.LabelledFiles), measure it on
    ``val_files``, save it to ``save_to`` when given and score it beside the active model.

    on_event: called with each :class:`RunEvent`, on the training thread.
    stop: set it (from any thread) to end the run after the current batch; the run then returns
        None and has written nothing, so a cancelled training never replaces a good model.
    score: score the new model on the validation files (``new_scores``, ``new_curves``); and,
        with ``compare_with`` (a .keras path), the model there too on the validation files it
        was never trained or calibrated on (``active_scores``, ``active_curves``, or
        ``active_note`` when it cannot be compared).
    strategy: a ``tf.distribute.Strategy``, or None for the default device.
    Raises the project's errors (e.g. DatasetError) for unusable data.
    """
    stop = stop or threading.Event()

    class Listener(ProgressListener):
        def on_batch(self, epoch, batch, batches):
            on_event(RunEvent("batch", epoch=epoch, epochs=config.epochs, batch=batch, batches=batches))

        def on_epoch(self, epoch, epochs, logs):
            on_event(RunEvent("epoch", epoch=epoch, epochs=epochs, logs={k: float(v) for k, v in logs.items()}))

        def should_stop(self):
            return stop.is_set()

    started = time.perf_counter()
    on_event(RunEvent.phase(READING_TEXT))
    # Which files the model is fitted on (train) and calibrated on (val: temperature, gate, band),
    # by content: an evaluation then reports them apart from files the model never saw.
    training_info = {**(training_info or {}),
                     FILE_HASHES_KEY: {"train": short_file_hashes(train_files), "calibration": short_file_hashes(val_files)}}
    result = train(train_files, val_files, config, Listener(), name=name, version=version,
                   training_info=training_info, strategy=strategy)
    if result.cancelled or stop.is_set():
        return None
    outcome = TrainingOutcome(result.history, result.unreadable, 0.0, report=result.report,
                              classifier=result.classifier)
    if score:
        on_event(RunEvent.phase(SCORING_TEXT))
    if save_to is not None:
        outcome.model_path = str(save_model(result.classifier, save_to))
    if score:
        outcome.new_scores = score_files(result.classifier, val_files)
        outcome.new_curves = roc_curves(outcome.new_scores)
        if compare_with is not None:
            try:
                outcome.active_scores = score_unseen(Classifier.load(compare_with), val_files)
                outcome.active_curves = roc_curves(outcome.active_scores)
            except CovidGUIError as exc:
                outcome.active_note = f"The active model cannot be compared: {exc}"
    outcome.seconds = time.perf_counter() - started
    return outcome
