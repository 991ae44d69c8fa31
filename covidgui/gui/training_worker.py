"""The training worker: checks folders, trains, scores and saves on its own QThread.

The tab talks to it with signals (queued onto the worker's thread) and reads its results only from
signals. Cancelling is the one exception: the worker is busy inside ``train()`` then, so a queued
call would wait for the end; :meth:`TrainingWorker.request_stop` only sets a thread-safe flag that
the training listener polls after every batch.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass

from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)


@dataclass
class TrainingOutcome:
    """What the tab shows when training ends (all computed on the worker thread)."""

    result: object  # core.training.TrainResult
    new_scores: object  # core.comparison.Scores
    new_curves: dict
    active_scores: object | None
    active_curves: dict | None
    active_note: str  # why the active model could not be compared, when it could not
    seconds: float


class TrainingWorker(QObject):
    summary_progress = Signal(int, int)  # files checked, files to check
    summary_ready = Signal(int, object)  # request id, core.datasummary.DatasetSummary
    batch_done = Signal(int, int, int, int)  # epoch (0-based), epochs, batch (1-based), batches
    epoch_done = Signal(int, int, object)  # epoch (0-based), epochs, logs dict
    phase = Signal(str)  # a short status line ("Reading images…", "Scoring…")
    finished = Signal(object)  # TrainingOutcome
    cancelled = Signal()
    failed = Signal(str)
    saved = Signal(object)  # core.registry.ModelVersion
    save_failed = Signal(str)

    def __init__(self):
        super().__init__()
        self._stop = threading.Event()
        self._result = None

    def request_stop(self) -> None:
        """Ask a running training to stop after its current batch (callable from any thread)."""
        self._stop.set()

    @Slot(int, str, str, float, int)
    def summarize(self, request_id: int, train_dir: str, val_dir: str, val_share: float, seed: int) -> None:
        from covidgui.core.datasummary import summarize_training_data

        try:
            summary = summarize_training_data(train_dir, val_dir or None, val_share, seed,
                                              progress=self.summary_progress.emit)
        except Exception as exc:  # never let a worker die silently
            log.error("dataset summary failed:\n%s", traceback.format_exc())
            self.failed.emit(f"The folders could not be checked: {exc}")
            return
        self.summary_ready.emit(request_id, summary)

    @Slot(object, object, dict)
    def train(self, summary, config, training_info: dict) -> None:
        """Train on a summary's readable files; emits finished, cancelled or failed."""
        from covidgui.core.errors import CovidGUIError
        from covidgui.core.training import ProgressListener, train

        self._stop.clear()
        worker = self

        class Listener(ProgressListener):
            def on_batch(self, epoch, batch, batches):
                worker.batch_done.emit(epoch, config.epochs, batch, batches)

            def on_epoch(self, epoch, epochs, logs):
                worker.epoch_done.emit(epoch, epochs, dict(logs))

            def should_stop(self):
                return worker._stop.is_set()

        started = time.perf_counter()
        try:
            self.phase.emit("Reading images…")
            result = train(summary.train, summary.val, config, Listener(), name="retrained",
                           version="0", training_info=training_info)
            if result.cancelled or self._stop.is_set():
                self.cancelled.emit()
                return
            self.phase.emit("Scoring the new and the active model on the validation images…")
            outcome = self._score(result, summary.val, time.perf_counter() - started)
        except CovidGUIError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:
            log.error("training failed:\n%s", traceback.format_exc())
            self.failed.emit(f"Training stopped with an unexpected error: {exc}")
            return
        self._result = result
        self.finished.emit(outcome)

    def _score(self, result, val_files, seconds: float) -> TrainingOutcome:
        from covidgui.core.comparison import roc_curves, score_files
        from covidgui.core.errors import CovidGUIError
        from covidgui.core.model import Classifier
        from covidgui.core.registry import active_model_path

        new_scores = score_files(result.classifier, val_files)
        active_scores = active_curves = None
        note = ""
        try:
            active = Classifier.load(active_model_path())
            active_scores = score_files(active, val_files)
            active_curves = roc_curves(active_scores)
        except CovidGUIError as exc:
            note = f"The active model cannot be compared: {exc}"
        return TrainingOutcome(result, new_scores, roc_curves(new_scores), active_scores, active_curves, note,
                               seconds)

    @Slot(str, str)
    def save(self, name: str, notes: str) -> None:
        """Store the last trained model as a new version; emits saved or save_failed."""
        from covidgui.core.errors import CovidGUIError
        from covidgui.core.registry import save_version

        if self._result is None:
            self.save_failed.emit("There is no trained model to save.")
            return
        try:
            self.saved.emit(save_version(self._result.classifier, name, notes))
        except CovidGUIError as exc:
            self.save_failed.emit(str(exc))
        except Exception as exc:
            log.error("save failed:\n%s", traceback.format_exc())
            self.save_failed.emit(f"The model could not be saved: {exc}")


class TrainingThread(QObject):
    """Owns the worker's thread; the Training tab holds one of these."""

    request_summary = Signal(int, str, str, float, int)
    request_train = Signal(object, object, dict)
    request_save = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("training")
        self.worker = TrainingWorker()
        self.worker.moveToThread(self.thread)
        self.request_summary.connect(self.worker.summarize)
        self.request_train.connect(self.worker.train)
        self.request_save.connect(self.worker.save)
        self.thread.start()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Stop any training and end the thread; True when it ended within ``timeout_ms``."""
        self.worker.request_stop()
        self.thread.quit()
        return self.thread.wait(timeout_ms)
