"""The training worker: checks folders, runs the training (covidgui.core.training.run) and saves.

Its calls run in order on a :class:`~covidgui.gui.worker.WorkerThread` (:class:`TrainingThread`)
and it reports only through signals; the tab shows what they carry. Cancelling is the one
exception: the worker is busy inside the run then, so :meth:`TrainingWorker.request_stop` sets a
thread-safe flag (and tells the child process) instead of queueing a call.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import fields

from PySide6.QtCore import QObject, Signal

from covidgui.core.data.datasummary import summarize_training_data
from covidgui.core.errors import CovidGUIError
from covidgui.core.models.registry import active_model_path, save_version, save_version_file
from covidgui.core.training.progress import RunEvent, TrainingOutcome
from covidgui.gui.worker import WorkerThread

log = logging.getLogger(__name__)


class TrainingWorker(QObject):
    summary_progress = Signal(int, int)  # files checked, files to check
    summary_ready = Signal(int, object)  # request id, core.datasummary.DatasetSummary
    progress = Signal(object)  # core.training.progress.RunEvent
    finished = Signal(object)  # core.training.progress.TrainingOutcome
    cancelled = Signal()
    failed = Signal(str)
    saved = Signal(object)  # core.registry.ModelVersion
    save_failed = Signal(str)

    # Train in a child process (True) or on this worker's thread (False): the same run either way
    # (covidgui.core.training.run.run_training). The process keeps the GUI's event loop free of
    # the interpreter lock that tracing and decoding hold; see
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

    def summarize(self, request_id: int, train_dir: str, val_dir: str, val_share: float, seed: int) -> None:
        try:
            summary = summarize_training_data(train_dir, val_dir or None, val_share, seed,
                                              progress=self.summary_progress.emit)
        except Exception as exc:  # never let a worker die silently
            log.error("dataset summary failed:\n%s", traceback.format_exc())
            self.failed.emit(f"The folders could not be checked: {exc}")
            return
        self.summary_ready.emit(request_id, summary)

    def train(self, summary, config, training_info: dict, adaptation: dict | None = None) -> None:
        """Train on a summary's readable files; emits finished, cancelled or failed. With
        ``adaptation`` ({"folds": K}) the active model is adapted to them instead
        (covidgui.core.training.adapt.run_adaptation)."""
        self._stop.clear()
        self._outcome = None
        if self.use_process:
            self._train_in_process(summary, config, training_info, adaptation)
        else:
            self._train_in_thread(summary, config, training_info, adaptation)

    def _train_in_process(self, summary, config, training_info: dict, adaptation: dict | None = None) -> None:
        import json
        import multiprocessing
        import tempfile
        from pathlib import Path

        # Here, not at the top: training code imports scikit-learn; only a started training pays for it.
        from covidgui.core.training.job import process_main, read_outcome, write_job

        self.remove_job_folder()
        job_dir = self._job_dir = Path(tempfile.mkdtemp(prefix="covidgui-training-"))
        write_job(job_dir, summary.train, summary.val, config, training_info, active_model_path(), adaptation)
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
                if event.get("event") in RunEvent.KINDS:
                    try:
                        self.progress.emit(RunEvent.from_dict(event))
                    except (KeyError, TypeError, ValueError):
                        pass
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
            known = {f.name for f in fields(TrainingOutcome)} - {"classifier"}
            self._outcome = TrainingOutcome(**{k: v for k, v in data.items() if k in known})
            self.finished.emit(self._outcome)

    def _train_in_thread(self, summary, config, training_info: dict, adaptation: dict | None = None) -> None:
        # Here, not at the top: as above (scikit-learn, Keras), only when a training runs.
        from covidgui.core.training.adapt import run_adaptation
        from covidgui.core.training.run import run_training

        try:
            if adaptation:
                outcome = run_adaptation(summary.train, summary.val, config, active_model_path(), self.progress.emit,
                                         self._stop, folds=int(adaptation["folds"]), seed=config.seed,
                                         training_info=training_info, starting_called="the active model",
                                         data_root=training_info.get("data"))
            else:
                outcome = run_training(summary.train, summary.val, config, self.progress.emit, self._stop,
                                       compare_with=active_model_path(), training_info=training_info)
        except CovidGUIError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:
            log.error("training failed:\n%s", traceback.format_exc())
            self.failed.emit(f"Training stopped with an unexpected error: {exc}")
            return
        if outcome is None:
            self.cancelled.emit()
            return
        self._outcome = outcome
        self.finished.emit(outcome)

    def remove_job_folder(self) -> None:
        import shutil

        if self._job_dir is not None:
            shutil.rmtree(self._job_dir, ignore_errors=True)
            self._job_dir = None

    def save(self, name: str, notes: str) -> None:
        """Store the last trained model as a new version; emits saved or save_failed."""
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
    """The Training tab's worker and the WorkerThread that runs its calls, in order."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.worker = TrainingWorker()
        self.thread = WorkerThread("training")

    def summarize(self, request_id: int, train_dir: str, val_dir: str, val_share: float, seed: int) -> None:
        self.thread.submit(self.worker.summarize, request_id, train_dir, val_dir, val_share, seed)

    def train(self, summary, config, training_info: dict, adaptation: dict | None = None) -> None:
        self.thread.submit(self.worker.train, summary, config, training_info, adaptation)

    def save(self, name: str, notes: str) -> None:
        self.thread.submit(self.worker.save, name, notes)

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Stop any training and end the thread; True when it ended within ``timeout_ms``."""
        self.worker.request_stop()
        ended = self.thread.stop(timeout_ms / 1000)
        if ended:
            self.worker.remove_job_folder()
        return ended
