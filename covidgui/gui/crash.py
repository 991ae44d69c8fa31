"""Uncaught exceptions: logged with their traceback, and shown to the user in plain words.

``install(parent)`` replaces ``sys.excepthook`` and ``threading.excepthook``. Every uncaught
exception is written to the rotating log (covidgui.core.io.logs, patient identifiers removed) and a
dialog says that something went wrong and where the log is. Exceptions raised on other threads
reach the dialog through a queued signal, because widgets may only be touched on the GUI thread.
"""

from __future__ import annotations

import logging
import sys
import threading

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox

from covidgui.core.io.logs import log_path, setup_logging

log = logging.getLogger("covidgui.crash")

USER_MESSAGE = ("Something went wrong inside CovidGUI and the last action may not have finished.\n\n"
                "Your images were not changed. You can keep working; if it happens again, "
                "send the log file to your support contact:\n{log}")


class CrashReporter(QObject):
    """Logs uncaught exceptions from any thread and shows one dialog at a time on the GUI thread."""

    crashed = Signal(str)  # the exception's one-line summary (queued to the GUI thread)

    def __init__(self, parent=None, show_dialog: bool = True):
        super().__init__()
        self.parent_widget = parent
        self.show_dialog = show_dialog
        self.log_file = setup_logging()
        self.dialog: QMessageBox | None = None
        self.count = 0
        self._previous = (sys.excepthook, threading.excepthook)
        self.crashed.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self) -> "CrashReporter":
        sys.excepthook = self.handle
        threading.excepthook = lambda args: self.handle(args.exc_type, args.exc_value, args.exc_traceback,
                                                         args.thread.name if args.thread else "?")
        return self

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._previous

    def handle(self, exc_type, exc_value, exc_tb, thread_name: str | None = None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            self._previous[0](exc_type, exc_value, exc_tb)
            return
        self.count += 1
        thread_name = thread_name or threading.current_thread().name
        log.error("Uncaught exception on thread %s", thread_name, exc_info=(exc_type, exc_value, exc_tb))
        self.crashed.emit(exc_type.__name__)

    @Slot(str)
    def _show(self, summary: str) -> None:
        if not self.show_dialog or QApplication.instance() is None:
            return
        if self.dialog is not None and self.dialog.isVisible():
            return  # one dialog for a burst of errors; all are in the log
        self.dialog = QMessageBox(QMessageBox.Icon.Warning, "CovidGUI — unexpected error",
                                  USER_MESSAGE.format(log=self.log_file), QMessageBox.StandardButton.Ok,
                                  self.parent_widget)
        self.dialog.setObjectName("crashDialog")
        self.dialog.setDetailedText(f"Error type: {summary}\nLog file: {self.log_file}")
        self.dialog.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dialog.open()


def install(parent=None, show_dialog: bool = True) -> CrashReporter:
    return CrashReporter(parent, show_dialog).install()


__all__ = ["CrashReporter", "install", "log_path"]
