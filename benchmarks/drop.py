"""Time from a dropped file to a complete result, warm (issue 16: "a dropped film shown in under 50 ms").

    QT_QPA_PLATFORM=offscreen python benchmarks/drop.py [--runs 30] [--format png|jpg]

Prints two medians for a 1024-px image (a real Val X-ray resized when ../shared is present, else a
generated one), after a warm-up:
- worker: the Image tab worker's ``classify`` (decode, model, heatmap, lung outline, overlay) on
  the worker's own thread, from the path to the ClassifiedImage it emits;
- window: the real window, from ``MainWindow.classify(path)`` to the result shown and the window
  painted (the worker on its own thread, the signal, the result panel, the viewer);
- GUI thread alone: the window showing a finished result and painting (its part of "window").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("COVIDGUI_SHARED", REPO.parent / "shared")) / "data" / "covid-xray" / "Val" / "Covid"


def image_1024(folder: Path, fmt: str) -> Path:
    path = folder / f"xray_1024.{fmt}"
    sources = sorted(SHARED.glob("*.jp*g")) if SHARED.is_dir() else []
    if sources:
        im = Image.open(sources[0]).convert("L").resize((1024, 1024))
    else:
        im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1024, 1024), dtype=np.uint8))
    im.save(path, **({"quality": 92} if fmt == "jpg" else {}))
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--format", choices=["png", "jpg"], default="png")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from covidgui.gui.app import create_app
    from covidgui.gui.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    window.show()
    window.start_loading_model()
    deadline = time.perf_counter() + 180
    while window.card is None and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.01)
    if window.card is None:
        raise SystemExit("the model did not load")
    worker = window.inference.worker

    with tempfile.TemporaryDirectory() as tmp:
        path = image_1024(Path(tmp), args.format)
        # On the worker's own thread, as in the app; request id -1, which the window ignores.
        thread = window.inference._thread

        def on_worker_thread(call, *call_args) -> None:
            ended = threading.Event()

            def run():
                try:
                    call(*call_args)
                finally:
                    ended.set()

            thread.submit(run)
            ended.wait()

        for _ in range(3):
            on_worker_thread(worker.classify, -1, str(path))
        direct = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            on_worker_thread(worker.classify, -1, str(path))
            direct.append(time.perf_counter() - t0)
            app.processEvents()  # the window takes (and drops) each result, as in the app
        app.processEvents()

        # Each result as the worker's signal carries it (appended on the worker thread), to show the
        # last one again below.
        # Only the last is kept: holding every result (tens of MB of display buffers each) made each
        # run allocate fresh memory, which the app, which keeps one result, never does.
        emitted = [None]
        window.inference.worker.classified.connect(lambda result: emitted.__setitem__(0, result))
        shown = []
        # The GUI thread waits in its event loop, as in the app: a loop of processEvents() would hold
        # the GIL the worker's Python steps need and add its own delay to every result.
        waiting = QEventLoop()
        window.inference.worker.classified.connect(lambda *_: waiting.quit())  # runs after the window's slot
        for i in range(args.runs + 3):
            before = window.last_result
            t0 = time.perf_counter()
            window.classify(path)
            while window.last_result is before:  # set only for the current request's result
                waiting.exec()
            window.repaint()  # paint now, as the next frame would
            QApplication.processEvents()
            if i >= 3:
                shown.append(time.perf_counter() - t0)
        label = window.last_result.prediction.label
        # The GUI thread's part alone: the last result shown again, as its signal would show it.
        result = emitted[0]
        on_gui = []
        for i in range(args.runs + 3):
            t0 = time.perf_counter()
            window._on_classified(result)
            window.repaint()
            QApplication.processEvents()
            if i >= 3:
                on_gui.append(time.perf_counter() - t0)
    window.close()
    app.processEvents()
    print(f"1024-px {args.format.upper()} ({label}), warm, {args.runs} runs each")
    print(f"worker classify, path -> complete result:  median {statistics.median(direct) * 1000:.1f} ms")
    print(f"window, classify(path) -> result painted:  median {statistics.median(shown) * 1000:.1f} ms")
    print(f"GUI thread alone, result -> painted:       median {statistics.median(on_gui) * 1000:.1f} ms")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
