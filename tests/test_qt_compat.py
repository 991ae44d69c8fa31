"""The native crash of issue 14: PySide6 6.12.0's processEvents takes a reference to None on each
call (Python 3.11 aborts with none_dealloc when None's count reaches 0); the guard gives it back."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

from PySide6.QtCore import QCoreApplication, QEventLoop

from covidgui.gui.app import create_app
from covidgui.gui.qt_compat import leaks_none, none_refcount_drift


def test_processevents_leaves_nones_reference_count_alone():
    app = create_app()
    assert none_refcount_drift(QCoreApplication.processEvents, 2000) == 0
    assert none_refcount_drift(lambda: app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5), 2000) == 0
    assert none_refcount_drift(QCoreApplication.sendPostedEvents, 2000) == 0


def _takes_none(times: int) -> None:
    for _ in range(times):
        ctypes.pythonapi.Py_DecRef(ctypes.py_object(None))


def _give_back_none(times: int) -> None:
    for _ in range(times):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))


def test_the_leak_probe_is_not_fooled_by_references_freed_during_one_round():
    """What wrapped 6.11.3's correct processEvents on CI: something else freed None's references
    while the probe ran once. A method that leaks on every call is still found."""
    calls = []

    def freed_elsewhere_at_first():  # 64 references dropped during the first round only
        calls.append(1)
        if len(calls) <= 64:
            _takes_none(1)

    def always_leaks():
        calls.append(1)
        _takes_none(1)

    try:
        assert not leaks_none(freed_elsewhere_at_first)
        assert not leaks_none(lambda: None)
        calls.clear()
        assert leaks_none(always_leaks)
    finally:
        _give_back_none(len(calls) + 64)


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
