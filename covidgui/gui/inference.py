"""The inference worker: loads the model and classifies images on its own thread.

It runs on its own thread (see InferenceThread) and talks to the window only through signals, so the GUI thread never
imports TensorFlow, decodes an image or runs the model. Requests are queued in order; each carries
an id so the window can ignore results it no longer wants (the user dropped another image).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from covidgui.core.analysis.analyse import MAX_DISPLAY_SIDE, Analysis, analyse
from covidgui.core.errors import CovidGUIError
from covidgui.core.inference.classifier import Classifier
from covidgui.gui.image_view import DisplayBuffers, display_buffers
from covidgui.gui.viewer_panel import start_levels
from covidgui.gui.worker import WorkerThread

log = logging.getLogger(__name__)


@dataclass
class ClassifiedImage:
    """What the window shows of one result: its analysis (core.analysis.analyse.Analysis), the
    viewer's 16-bit pixels and first grey values, made on the worker so the GUI thread only wraps
    them in a pixmap, and the model that made it: its card and its missing-input-gate warning (the
    panel and the report name that model, whichever is loaded by the time they are read)."""

    request_id: int
    analysis: Analysis
    shown: DisplayBuffers
    card: object = None
    input_check_warning: str | None = None


class InferenceWorker(QObject):
    model_loaded = Signal(object)  # ModelCard
    model_failed = Signal(str)
    classified = Signal(object)  # ClassifiedImage
    failed = Signal(int, str, str)  # request id, path, message

    def __init__(self):
        super().__init__()
        self.classifier = None

    @Slot(str)
    def load_model(self, path: str) -> None:
        """Load the model at ``path`` ('' = the bundled one). Emits model_loaded or model_failed."""
        try:
            self.classifier = Classifier.load(path or None)
            # A first pass makes this thread's interpreter now, not when the user drops the first image.
            self.classifier.probabilities(np.zeros((1, self.classifier.input_size, self.classifier.input_size),
                                                   np.float32))
        except CovidGUIError as exc:
            self.classifier = None
            self.model_failed.emit(str(exc))
            return
        except Exception as exc:  # never let a worker die silently
            log.error("model load failed:\n%s", traceback.format_exc())
            self.classifier = None
            self.model_failed.emit(f"The model could not be loaded: {exc}")
            return
        self.model_loaded.emit(self.classifier.card)

    @Slot(int, str)
    def classify(self, request_id: int, path: str) -> None:
        """Decode, classify and explain one image; emits classified or failed."""
        if self.classifier is None:
            self.failed.emit(request_id, path, "No model is loaded, so no result can be shown.")
            return
        try:
            # One decode: the model's reduced pixels (as the CLI and batch read them) and the
            # display copy; DICOM also in its own units for the window/level panel.
            result = analyse(self.classifier, path, display_side=MAX_DISPLAY_SIDE, viewer_values=True)
            shown = display_buffers(result.view_pixels if result.view_pixels is not None else result.display,
                                    start_levels(result.levels))
            self.classified.emit(ClassifiedImage(request_id, result, shown, self.classifier.card,
                                                 getattr(self.classifier, "input_check_warning", None)))
        except CovidGUIError as exc:
            self.failed.emit(request_id, path, str(exc))
        except Exception as exc:
            log.error("classification failed for %s:\n%s", path, traceback.format_exc())
            self.failed.emit(request_id, path, f"{Path(path).name}: unexpected error ({exc}).")


class InferenceThread(QObject):
    """Runs the worker's requests one at a time, in order, on its WorkerThread (covidgui.gui.worker);
    the window holds one of these. The worker's signals reach the window through Qt's queued
    connections, since the window's slots live on the GUI thread."""

    request_load = Signal(str)
    request_classify = Signal(int, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.worker = InferenceWorker()
        self._thread = WorkerThread("inference")
        self.request_load.connect(self._submit_load)
        self.request_classify.connect(self._submit_classify)

    @Slot(str)
    def _submit_load(self, path: str) -> None:
        self._thread.submit(self.worker.load_model, path)

    @Slot(int, str)
    def _submit_classify(self, request_id: int, path: str) -> None:
        self._thread.submit(self.worker.classify, request_id, path)

    def stop(self) -> None:
        """Drop queued requests and wait for the running one (at most one image or a model load)."""
        self._thread.stop()
