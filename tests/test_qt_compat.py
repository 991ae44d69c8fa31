"""The native crash of issue 14: PySide6 6.12.0's processEvents takes a reference to None on each
call (Python 3.11 aborts with none_dealloc when None's count reaches 0); the guard gives it back."""

from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtCore import QCoreApplication, QEventLoop

from covidgui.gui.app import create_app
from covidgui.gui.qt_compat import none_refcount_drift


def test_processevents_leaves_nones_reference_count_alone():
    app = create_app()
    assert none_refcount_drift(QCoreApplication.processEvents, 2000) == 0
    assert none_refcount_drift(lambda: app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5), 2000) == 0
    assert none_refcount_drift(QCoreApplication.sendPostedEvents, 2000) == 0


def test_a_window_driven_by_a_processevents_loop_does_not_abort():
    """What crashed "within seconds": a loop of processEvents(flags, ms) driving the window, in a
    process of its own (a small one: None has only a few thousand references to lose there)."""
    code = ("from PySide6.QtCore import QEventLoop\n"
            "from covidgui.gui.app import create_app\nfrom covidgui.gui.main_window import MainWindow\n"
            "app = create_app(); w = MainWindow(); w.show()\n"
            "for _ in range(100_000):\n    app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)\n"
            "w.close(); print('survived')\n")
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0 and "survived" in done.stdout, done.stderr[-2000:]
    assert "none_dealloc" not in done.stderr
