"""The inference worker: loads the model and classifies images on its own thread.

It lives in a QThread and talks to the window only through signals, so the GUI thread never
imports TensorFlow, decodes an image or runs the model. Requests are queued in order; each carries
an id so the window can ignore results it no longer wants (the user dropped another image).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)

# Display copies never need more than this many pixels per side.
MAX_DISPLAY_SIDE = 2048


@dataclass
class ClassifiedImage:
    """What the window needs to show one result."""

    request_id: int
    path: Path
    display: np.ndarray  # uint8 (H, W) greyscale for the viewer
    prediction: object  # core.model.Prediction
    overlay: np.ndarray | None  # uint8 (H, W, 4) heatmap colours, same shape as display
    lung_outline: np.ndarray | None = None  # uint8 (H, W, 4) lung outline, same shape as display


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
        from covidgui.core.errors import CovidGUIError
        from covidgui.core.model import Classifier

        try:
            self.classifier = Classifier.load(path or None)
            # A first forward pass traces the graph now, not when the user drops the first image.
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
        from covidgui.core.errors import CovidGUIError
        from covidgui.core.images import load_xray, to_uint8

        if self.classifier is None:
            self.failed.emit(request_id, path, "No model is loaded, so no result can be shown.")
            return
        try:
            prediction = self.classifier.predict_file(path, heatmap=True)
            display = to_uint8(_display_size(load_xray(path).pixels))  # full resolution for the eye
            overlay = None
            if prediction.heatmap is not None:
                from covidgui.core.heatmap import colorize

                overlay = colorize(_display_size(prediction.heatmap))  # the viewer stretches it to fit
            lung_outline = None
            if prediction.lung_mask is not None:
                from covidgui.core.lungs import outline_rgba

                lung_outline = outline_rgba(prediction.lung_mask, display.shape)
            self.classified.emit(ClassifiedImage(request_id, Path(path), display, prediction, overlay, lung_outline))
        except CovidGUIError as exc:
            self.failed.emit(request_id, path, str(exc))
        except Exception as exc:
            log.error("classification failed for %s:\n%s", path, traceback.format_exc())
            self.failed.emit(request_id, path, f"{Path(path).name}: unexpected error ({exc}).")


def _display_size(pixels: np.ndarray) -> np.ndarray:
    from covidgui.core.preprocess import resize

    h, w = pixels.shape
    scale = MAX_DISPLAY_SIDE / max(h, w)
    return pixels if scale >= 1 else resize(pixels, (round(h * scale), round(w * scale)))


class InferenceThread(QObject):
    """Owns the worker's thread; the window holds one of these."""

    request_load = Signal(str)
    request_classify = Signal(int, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("inference")
        self.worker = InferenceWorker()
        self.worker.moveToThread(self.thread)
        self.request_load.connect(self.worker.load_model)
        self.request_classify.connect(self.worker.classify)
        self.thread.start()

    def stop(self) -> None:
        self.thread.quit()
        self.thread.wait()
