"""``covidgui --self-test``: is this installation (a venv or the PyInstaller bundle) whole?

Loads the bundled model, classifies a generated chest-like image, opens the main window
offscreen, waits for its model to load, closes it, and exits 0; or prints which step failed and
why, and exits 1. It runs against a temporary user folder, so it neither reads nor changes the
user's models, active model, settings or window geometry.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from covidgui import __version__

WINDOW_TIMEOUT_S = 120


def _chest_like(size: int = 256):
    """A synthetic radiograph-like image (two dark lung fields in a bright body), uint8."""
    import numpy as np

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    body = 0.75 - 0.3 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    lungs = np.exp(-(((x - 0.3) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2)) + \
        np.exp(-(((x - 0.7) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2))
    return (np.clip(body - 0.45 * lungs + rng.normal(0, 0.03, (size, size)), 0, 1) * 255).astype(np.uint8)


def _classify(folder: Path) -> str:
    from PIL import Image

    # The self-test's imports are its checks: each part must import in this installation, in order.
    from covidgui.core.analysis.analyse import analyse
    from covidgui.core.output.presentation import present
    from covidgui.core.inference.classifier import INDETERMINATE, Classifier

    classifier = Classifier.load()
    path = folder / "self-test.png"
    Image.fromarray(_chest_like()).save(path)
    # The Image tab's own path: one decode, the prediction with its heatmap, the display pictures.
    analysis = analyse(classifier, path)
    if analysis.display is None or analysis.prediction.heatmap is None:
        raise RuntimeError("the analysis gave no display image or no heatmap")
    prediction = analysis.prediction.classify_anyway()
    # "Indeterminate" is an answer too: the model ran and said it cannot tell.
    names = [classifier.card.display_name(c) for c in classifier.card.classes] + [INDETERMINATE]
    if prediction.label not in names:
        raise RuntimeError(f"the label {prediction.label!r} is not one of the model's classes {names}")
    shown = present(prediction)  # in the views' words: no confidence for Indeterminate, its probabilities
    answer = shown.confidence_line or ", ".join(shown.probability_lines)
    return f"model {classifier.card.name} v{classifier.card.version}: {prediction.label} ({answer})"


def _window() -> str:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer

    from covidgui.gui.app import create_app
    from covidgui.gui.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    outcome: dict = {}
    # Visibility is read when the model is ready: quitting the event loop closes the windows.
    window.model_ready.connect(lambda card: outcome.update(ready=card.name, shown=window.isVisible()))
    window.model_unavailable.connect(lambda message: outcome.setdefault("failed", message))
    window.show()
    started = time.perf_counter()
    window.start_loading_model()
    timer = QTimer()
    timer.timeout.connect(lambda: (outcome or time.perf_counter() - started > WINDOW_TIMEOUT_S) and app.quit())
    timer.start(50)
    app.exec()
    timer.stop()
    shown = outcome.get("shown", window.isVisible())
    window.close()
    app.processEvents()
    if not shown:
        raise RuntimeError("the main window did not show")
    if "failed" in outcome:
        raise RuntimeError(f"the window could not load the model: {outcome['failed']}")
    if "ready" not in outcome:
        raise RuntimeError(f"the window's model was not ready after {WINDOW_TIMEOUT_S} s")
    return f"main window opened, model ready in {time.perf_counter() - started:.1f} s, closed"


def run() -> int:

    print(f"CovidGUI {__version__} self-test ({'bundle' if getattr(sys, 'frozen', False) else 'Python'} "
          f"{sys.version.split()[0]}, {sys.platform})", flush=True)
    with tempfile.TemporaryDirectory(prefix="covidgui-selftest-") as folder:
        os.environ["COVIDGUI_DATA_DIR"] = str(Path(folder) / "user-data")  # never the user's own
        for name, step in [("classify a generated image", lambda: _classify(Path(folder))),
                           ("open and close the main window", _window)]:
            started = time.perf_counter()
            try:
                detail = step()
            except Exception as exc:
                print(f"FAIL {name}: {exc}", flush=True)
                traceback.print_exc(file=sys.stderr)
                return 1
            print(f"ok   {name} ({time.perf_counter() - started:.1f} s): {detail}", flush=True)
    print("self-test passed", flush=True)
    return 0
