"""The soak scenario: the real window, driven through ``app.exec`` by timers, as a busy user would.

    python -m tests.soak_window IMAGES_DIR BATCH_DIR TRAIN_DIR

Run by tests/test_soak.py in its own process, so that a native crash (TensorFlow and Qt together)
shows as an exit code and a faulthandler trace instead of killing the test run. Steps, each
started when the previous one has visibly finished:

1. wait for the model; 2. drop the images of IMAGES_DIR one by one, a few milliseconds apart,
switching tabs every few drops (only the last drop's result may be shown); 3. start a batch on
BATCH_DIR and cancel it once it has made progress; 4. start a 1-epoch training on TRAIN_DIR and
cancel it at its first batch; 5. check that the last dropped image is still the one shown.

Prints one JSON line (what it saw) and exits 0 when every step held, 1 when one did not, 3 when
the scenario did not finish within its time limit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# A hang guard, not a speed test: the training step starts a child process that imports
# TensorFlow, which took over 50 s with the suite's two workers and other jobs on the 2 cores.
LIMIT_S = 100.0


def main(images_dir: str, batch_dir: str, train_dir: str) -> int:
    from PySide6.QtCore import QPointF, QMimeData, Qt, QTimer, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    from covidgui.gui import crash
    from covidgui.gui.app import create_app
    from covidgui.gui.main_window import MainWindow

    images = sorted(Path(images_dir).glob("*.png"))
    app = create_app()
    window = MainWindow()
    window.crash_reporter = crash.install(window, show_dialog=False)
    window._confirm_stop_training = lambda: True  # no question box at the end
    window.resize(1200, 800)
    window.show()
    seen: dict = {"drops": 0, "tab_switches": 0, "shown_results": set(), "steps": []}
    started = time.perf_counter()

    def finish(code: int, why: str = "") -> None:
        seen["steps"].append(why or "done")
        seen["code"] = code
        window.close()
        app.exit(code)

    def drop(path: Path) -> None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        pos = QPointF(window.width() / 2, window.height() / 2)
        QApplication.sendEvent(window, QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime,
                                                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
        QApplication.sendEvent(window, QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                                  Qt.KeyboardModifier.NoModifier))

    def when(condition, then, every_ms: int = 20) -> None:
        """Call ``then`` once ``condition()`` holds, checking from the event loop."""
        timer = QTimer(window)

        def check():
            if condition():
                timer.stop()
                then()

        timer.timeout.connect(check)
        timer.start(every_ms)

    # Every result the window shows, in order: a stale one shown after a newer drop is a failure.
    original = window._on_classified

    def record(result):
        original(result)
        if result.request_id == window._request_id:
            seen["shown_results"].add(result.analysis.path.name)

    window.inference.worker.classified.disconnect(window._on_classified)
    window.inference.worker.classified.connect(record)

    def step_drops():
        seen["steps"].append("model ready")
        queue = list(images)
        timer = QTimer(window)

        def next_drop():
            if not queue:
                timer.stop()
                when(lambda: window.result_panel.file_label.text() == images[-1].name
                     and window.viewer.has_image(), step_batch)
                return
            drop(queue.pop(0))
            seen["drops"] += 1
            if seen["drops"] % 7 == 0:
                window.tabs.setCurrentIndex((window.tabs.currentIndex() + 1) % window.tabs.count())
                seen["tab_switches"] += 1

        timer.timeout.connect(next_drop)
        timer.start(3)

    def step_batch():
        seen["steps"].append(f"last image shown: {window.result_panel.file_label.text()}")
        view = window.batch_view

        def finished(summary):
            seen["batch"] = {"total": summary.total, "done": summary.done, "cancelled": summary.cancelled}
            view.batch_finished.disconnect(finished)
            step_training()

        view.batch_finished.connect(finished)
        window.classify_batch([batch_dir])
        when(lambda: view.progress.value() > 0, view.cancel_button.click, every_ms=5)

    def step_training():
        tab = window.open_training_tab()
        tab.fixed_settings = {"input_size": 48}
        tab.epochs_spin.setValue(1)
        tab.batch_spin.setValue(4)
        tab.set_training_folder(train_dir)

        def start():
            seen["steps"].append("training data checked")
            tab.start_button.click()
            seen["training_started"] = tab.is_training()
            when(lambda: tab.progress.value() > 0, cancel, every_ms=5)

        def cancel():
            seen["training_batches_seen"] = tab.progress.value()
            tab.cancel_button.click()
            when(lambda: not tab.is_training(), ended)

        def ended():
            seen["training_end"] = tab.progress_label.text()
            window.tabs.setCurrentIndex(0)
            step_check()

        when(lambda: tab.summary is not None and tab._summary_inputs == tab._inputs() and tab.start_button.isEnabled(),
             start)

    def step_check():
        shown = window.result_panel.file_label.text()
        seen["last_shown"] = shown
        ok = (shown == images[-1].name and window.viewer.has_image() and seen["batch"]["cancelled"]
              and seen.get("training_started") and "cancelled" in seen["training_end"]
              and window.crash_reporter.count == 0)
        finish(0 if ok else 1)

    def watchdog():
        if "code" not in seen:
            finish(3, f"time limit of {LIMIT_S:.0f} s reached")

    window.model_ready.connect(lambda _card: step_drops())
    QTimer.singleShot(0, window.start_loading_model)
    QTimer.singleShot(int(LIMIT_S * 1000), watchdog)
    code = app.exec()
    seen["seconds"] = round(time.perf_counter() - started, 1)
    seen["shown_results"] = sorted(seen["shown_results"])
    seen["uncaught_exceptions"] = window.crash_reporter.count
    print(json.dumps(seen), flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
