"""The batch job: searches the folders and streams their files through the model on its own thread.

One :class:`BatchJob` per batch, on a thread of its own (covidgui.gui.worker), so that the single-image worker's thread stays
free: a clinician can open one image while a 10,000-file folder is being classified. It reuses the
classifier that the single-image worker loaded (its forward pass is a tf.function, safe to call
from several threads) instead of loading a second copy of the model.

Results travel to the GUI thread in chunks (one signal per inference batch, not per image).
Cancel is a threading.Event that the GUI thread sets directly, because the job's thread is busy in
its loop and would only see a queued signal once the whole batch had finished.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal, Slot

from covidgui.core.analysis.batch import classify_stream, find_images
from covidgui.gui.worker import WorkerThread

log = logging.getLogger(__name__)


@dataclass
class BatchSummary:
    """How a batch ended. ``done`` counts files with a row (classified or failed)."""

    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    error: str | None = None  # the batch itself could not run (not one file's problem)


class BatchJob(QObject):
    scanned = Signal(object)  # BatchSummary with total, skipped, unreadable: the search is over
    rows = Signal(list)  # list[core.batch.BatchItem], in file order
    finished = Signal(object)  # BatchSummary

    def __init__(self, classifier, inputs: list[str]):
        super().__init__()
        self.classifier = classifier
        self.inputs = list(inputs)
        self.cancel_event = threading.Event()

    @Slot()
    def run(self) -> None:
        summary = BatchSummary()
        try:
            scan = find_images(self.inputs)
            summary.total = len(scan.files)
            summary.skipped = len(scan.skipped)
            summary.unreadable = [(str(p), reason) for p, reason in scan.unreadable]
            self.scanned.emit(BatchSummary(summary.total, 0, 0, summary.skipped, list(summary.unreadable)))
            for chunk in classify_stream(self.classifier, scan.files, cancel=self.cancel_event, thumbnails=True):
                summary.done += len(chunk)
                summary.failed += sum(not item.ok for item in chunk)
                self.rows.emit(chunk)
        except Exception as exc:  # never let the job die silently: the view must leave "running"
            log.error("batch failed:\n%s", traceback.format_exc())
            summary.error = f"The batch stopped because of an unexpected error: {exc}"
        summary.cancelled = self.cancel_event.is_set() and summary.done < summary.total
        self.finished.emit(summary)


class BatchRunner(QObject):
    """Runs one BatchJob on a :class:`~covidgui.gui.worker.WorkerThread` of its own; the job's
    signals reach the GUI thread queued."""

    def __init__(self, classifier, inputs: list[str], parent=None):
        super().__init__(parent)
        self.job = BatchJob(classifier, inputs)
        self.thread: WorkerThread | None = None

    def start(self) -> None:
        self.thread = WorkerThread("batch")
        self.thread.submit(self.job.run)
        self.thread.close()  # the thread is this one batch's: it ends when the job has run

    def cancel(self) -> None:
        self.job.cancel_event.set()

    def is_running(self) -> bool:
        return self.thread is not None and not self.thread.is_finished()

    def wait(self, seconds: float | None = 30.0) -> bool:
        """Cancel and block until the thread has ended (for closing the window)."""
        self.cancel()
        return self.join(seconds)

    def join(self, seconds: float | None = None) -> bool:
        """Block until the thread has ended (it ends right after the job emits finished)."""
        return self.thread is None or self.thread.join(seconds)
