"""Starting the GUI: the window first, then the model in the worker thread."""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from covidgui.core.io.logs import quiet_native_info
from covidgui.gui import crash
from covidgui.gui.main_window import MainWindow
from covidgui.gui.qt_compat import guard_none_refcount
from covidgui.gui.resources import app_icon, style_sheet


def create_app(argv: list[str] | None = None) -> QApplication:
    guard_none_refcount()  # PySide6 6.12.0's processEvents leaks None, which aborts Python 3.11
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("CovidGUI")
    app.setOrganizationName("CovidGUI")
    app.setWindowIcon(app_icon())
    app.setStyleSheet(style_sheet())
    return app


class FileOpenFilter(QObject):
    """macOS hands files opened from the Finder (double-click, "Open with", a drop on the Dock
    icon) to a running app as QFileOpenEvent, not as arguments."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window

    def eventFilter(self, watched, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.FileOpen and event.file():
            self.window.open_paths([event.file()])
            return True
        return False


def main(model_path: str | None = None, report_startup: bool = False, exit_when_ready: bool = False,
         files: list[str] | None = None) -> int:
    """Run the GUI until the window closes; returns the exit code.

    report_startup: print "window-shown S" and "model-ready S" (seconds since this call) to stdout,
        for benchmarks/startup.py. exit_when_ready: quit once the model has loaded.
    files: open these once the window shows (one file: Image tab; several or a folder: Batch tab);
        they are classified as soon as the model has loaded.
    """
    started = time.perf_counter()
    # LiteRT's native INFO line at the model's first run ("Created TensorFlow Lite XNNPACK delegate"),
    # which TF_CPP_MIN_LOG_LEVEL does not reach; its warnings and errors still show.
    quiet_native_info()
    app = create_app()
    window = MainWindow(model_path)
    window.crash_reporter = crash.install(window)  # uncaught exceptions: log + plain dialog
    window.file_open_filter = FileOpenFilter(window)
    app.installEventFilter(window.file_open_filter)

    def report(event: str) -> None:
        if report_startup:
            print(f"{event} {time.perf_counter() - started:.3f}", flush=True)

    window.show()
    # Runs on the first turn of the event loop, i.e. once the window has been shown.
    QTimer.singleShot(0, lambda: (report("window-shown"), window.start_loading_model(),
                                  window.open_paths(files or [])))
    # The window's own signals fire on the GUI thread (the worker's fire on the worker's).
    window.model_ready.connect(lambda _card: report("model-ready"))
    if exit_when_ready:
        window.model_ready.connect(window.close)
        window.model_unavailable.connect(window.close)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
