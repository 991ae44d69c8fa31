"""The one way the window runs work off the GUI thread: calls queued in order on one Python thread.

A job object (a QObject created on the GUI thread: ``InferenceWorker``, ``BatchJob``,
``TrainingWorker``) has the Qt signals; a :class:`WorkerThread` runs its methods. The methods
report only by emitting those signals: emitting is thread-safe, and since the receivers (the
window's widgets) live on the GUI thread, Qt queues each call there. No widget is touched off the
GUI thread, and the GUI thread never waits for a job except when the window closes.

Cancelling is the one thing that does not go through the queue (the thread is busy inside the
job then): each job has a ``threading.Event`` or a ``request_stop`` method that the GUI thread
calls directly and the job polls.

Why a Python thread and not a QThread, QThreadPool or superqt's ``thread_worker`` (which runs on
``QThreadPool.globalInstance()``):
- the pool is as large as the machine has cores (2 here), so a running batch and a training job
  would leave a dropped image waiting in the pool's queue; here each job kind has its own thread;
- requests must run in order (load a model, then classify with it), which one thread gives;
- TensorFlow on QThreads crashed the process in tests (with TensorFlow 2.20 / Keras 3, the next
  Grad-CAM after a QThread that had run the model ended); part of it was later traced to PySide6
  6.12.0 (covidgui/gui/qt_compat.py), but Python threads are what the suite has exercised, and
  they need no event loop on the worker side.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from typing import Callable

log = logging.getLogger(__name__)


class WorkerThread:
    """Runs the calls given to :meth:`submit` one at a time, in order, on one daemon Python thread.

    A call that raises is logged (with its traceback) and the thread goes on with the next: jobs
    emit their own failure signals for errors a user can cause, this only keeps a bug from killing
    the thread silently.
    """

    def __init__(self, name: str):
        self.name = name
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0  # submitted calls not yet ended
        self._lock = threading.Lock()
        self._closed = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable, *args) -> bool:
        """Queue ``call(*args)``; False (nothing queued) once :meth:`close` or :meth:`stop` was called."""
        with self._lock:
            if self._closed:
                return False
            self._pending += 1
        self._calls.put((call, args))
        return True

    def close(self) -> None:
        """Take no more calls; the thread ends once the queued ones have run. Returns at once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._calls.put(None)

    def is_busy(self) -> bool:
        """Whether a call is running or waiting."""
        with self._lock:
            return self._pending > 0

    def is_finished(self) -> bool:
        """Whether the thread has ended (after :meth:`stop`)."""
        return not self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> bool:
        """Drop the waiting calls, let the running one end (cancel it first) and end the thread.
        True when it ended within ``timeout`` seconds (None: wait as long as it takes)."""
        self._stopping.set()
        self.close()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (after :meth:`close`); True when it ended within ``timeout``."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _serve(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            call, args = item
            try:
                if not self._stopping.is_set():
                    call(*args)
            except Exception:
                log.error("%s: %s failed:\n%s", self.name, getattr(call, "__name__", call), traceback.format_exc())
            finally:
                with self._lock:
                    self._pending -= 1
