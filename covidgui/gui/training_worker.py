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
    """What the tab shows when training ends (computed by the training process or thread)."""

    history: dict  # Keras history: loss, accuracy, val_loss, val_accuracy per epoch
    new_scores: object  # core.comparison.Scores
    new_curves: dict
    active_scores: object | None
    active_curves: dict | None
    active_note: str  # why the active model could not be compared, when it could not
    seconds: float
    model_path: str | None = None  # the trained model in the job folder (process mode)
    classifier: object | None = None  # the trained classifier (thread mode)


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

    # Train in a child process (True) or on this worker's thread (False). The process keeps the
    # GUI's event loop free of the interpreter lock that tracing and decoding hold; see
    # covidgui.core.training.job and benchmarks/training.py gui --thread for the comparison.
    # Every build trains in the child, the windowed Windows .exe included: it is a multiprocessing
    # (spawn) process talking over pipes, so it needs no console streams, and a frozen app runs it
    # through multiprocessing.freeze_support (covidgui.__main__).
    use_process = True
    # A cancelled child that has not ended after this many seconds is killed.
    KILL_AFTER_S = 1.5

    def __init__(self):
        super().__init__()
        self._stop = threading.Event()
        self._outcome: TrainingOutcome | None = None
        self._proc = None  # the training child (multiprocessing.Process) while it runs
        self._control = None  # the pipe that tells it to stop
        self._proc_lock = threading.Lock()
        self._job_dir = None  # the last run's folder (its model waits there until saved)

    def request_stop(self) -> None:
        """Ask a running training to stop (callable from any thread): after the current batch,
        and a child process that has not ended within KILL_AFTER_S is killed."""
        self._stop.set()
        with self._proc_lock:
            proc, control = self._proc, self._control
            if proc is None or not proc.is_alive():
                return
            try:
                control.send_bytes(b"stop")
            except (OSError, ValueError):
                pass

        def kill_if_running():
            if proc.is_alive():
                proc.kill()

        timer = threading.Timer(self.KILL_AFTER_S, kill_if_running)
        timer.daemon = True
        timer.start()

    @Slot(int, str, str, float, int)
    def summarize(self, request_id: int, train_dir: str, val_dir: str, val_share: float, seed: int) -> None:
        from covidgui.core.data.datasummary import summarize_training_data

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
        self._stop.clear()
        self._outcome = None
        if self.use_process:
            self._train_in_process(summary, config, training_info)
        else:
            self._train_in_thread(summary, config, training_info)

    def _train_in_process(self, summary, config, training_info: dict) -> None:
        import json
        import multiprocessing
        import tempfile
        from pathlib import Path

        from covidgui.core.models.registry import active_model_path
        from covidgui.core.training.job import process_main, read_outcome, write_job

        self.remove_job_folder()
        job_dir = self._job_dir = Path(tempfile.mkdtemp(prefix="covidgui-training-"))
        write_job(job_dir, summary.train, summary.val, config, training_info, active_model_path())
        log_path = job_dir / "stderr.log"
        log_path.touch()
        # spawn on every platform: a fresh interpreter (never a fork of a process holding Qt's and
        # TensorFlow's threads), and in a frozen app multiprocessing.freeze_support runs it.
        context = multiprocessing.get_context("spawn")
        events, child_events = context.Pipe(duplex=False)
        child_control, control = context.Pipe(duplex=False)
        proc = context.Process(target=process_main, args=(str(job_dir), child_events, child_control, str(log_path)),
                               name="covidgui-training", daemon=True)
        proc.start()
        child_events.close()  # so that the child's end closing ends the loop below
        child_control.close()
        with self._proc_lock:
            self._proc, self._control = proc, control
        if self._stop.is_set():  # cancelled while the process was starting
            self.request_stop()
        ended = None
        try:
            while True:
                try:
                    event = json.loads(events.recv_bytes())  # bytes of JSON: nothing is unpickled here
                except (EOFError, OSError):
                    break
                except ValueError:
                    continue
                kind = event.get("event")
                if kind == "batch":
                    self.batch_done.emit(event["epoch"], event["epochs"], event["batch"], event["batches"])
                elif kind == "epoch":
                    self.epoch_done.emit(event["epoch"], event["epochs"], event["logs"])
                elif kind == "phase":
                    self.phase.emit(event["text"])
                else:
                    ended = event
            proc.join()
        finally:
            with self._proc_lock:
                self._proc = self._control = None
            events.close()
            control.close()
        if self._stop.is_set() or (ended or {}).get("event") == "cancelled":
            self.remove_job_folder()
            self.cancelled.emit()
        elif ended is None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            self.failed.emit(f"The training process ended unexpectedly (exit code {proc.exitcode}). "
                             + " ".join(tail))
        elif ended["event"] == "failed":
            self.failed.emit(ended["message"])
        else:
            try:  # JSON and plain arrays from the job folder (not the path the child named): no code runs here
                data = read_outcome(job_dir)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.failed.emit(f"The training results could not be read: {exc}")
                return
            self._outcome = TrainingOutcome(data["history"], data["new_scores"], data["new_curves"],
                                            data["active_scores"], data["active_curves"], data["active_note"],
                                            data["seconds"], model_path=data["model_path"])
            self.finished.emit(self._outcome)

    def _train_in_thread(self, summary, config, training_info: dict) -> None:
        from covidgui.core.errors import CovidGUIError
        from covidgui.core.training.train import ProgressListener, train

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
        self._outcome = outcome
        self.finished.emit(outcome)

    def _score(self, result, val_files, seconds: float) -> TrainingOutcome:
        from covidgui.core.scoring.comparison import roc_curves, score_files
        from covidgui.core.errors import CovidGUIError
        from covidgui.core.inference.classifier import Classifier
        from covidgui.core.models.registry import active_model_path

        new_scores = score_files(result.classifier, val_files)
        active_scores = active_curves = None
        note = ""
        try:
            active = Classifier.load(active_model_path())
            active_scores = score_files(active, val_files)
            active_curves = roc_curves(active_scores)
        except CovidGUIError as exc:
            note = f"The active model cannot be compared: {exc}"
        return TrainingOutcome(result.history, new_scores, roc_curves(new_scores), active_scores, active_curves,
                               note, seconds, classifier=result.classifier)

    def remove_job_folder(self) -> None:
        import shutil

        if self._job_dir is not None:
            shutil.rmtree(self._job_dir, ignore_errors=True)
            self._job_dir = None

    @Slot(str, str)
    def save(self, name: str, notes: str) -> None:
        """Store the last trained model as a new version; emits saved or save_failed."""
        from covidgui.core.errors import CovidGUIError
        from covidgui.core.models.registry import save_version, save_version_file

        outcome = self._outcome
        if outcome is None:
            self.save_failed.emit("There is no trained model to save.")
            return
        try:
            if outcome.model_path:
                self.saved.emit(save_version_file(outcome.model_path, name, notes))
            else:
                self.saved.emit(save_version(outcome.classifier, name, notes))
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
        ended = self.thread.wait(timeout_ms)
        if ended:
            self.worker.remove_job_folder()
        return ended
