"""Minimal reproduction of the crash issue 14 calls "TensorFlow and Qt crash natively together".

    QT_QPA_PLATFORM=offscreen python scripts/repro_qt_none_leak.py          # the crash
    QT_QPA_PLATFORM=offscreen python scripts/repro_qt_none_leak.py --guard  # with covidgui's guard

No TensorFlow, no thread: QCoreApplication.processEvents() in a loop. With PySide6 6.12.0 on
Python 3.11 each call takes a reference to None that it never owned; the script prints the
drift per call and, without the guard, ends in "Fatal Python error: none_dealloc" within a few
thousand calls (TensorFlow only postpones it: it holds ~200,000 references to None, and its
tracing is then where the last one drops). PySide6 6.11.3 prints a drift of 0 and runs to the end.
See covidgui/gui/qt_compat.py.
"""

import faulthandler
import sys

faulthandler.enable()

from PySide6 import __version__ as pyside_version  # noqa: E402
from PySide6.QtCore import QCoreApplication, QEventLoop  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

app = QApplication([])
if "--guard" in sys.argv:
    from covidgui.gui.qt_compat import guard_none_refcount

    print("guarded:", guard_none_refcount())
before = sys.getrefcount(None)
for _ in range(1000):
    QCoreApplication.processEvents()
print(f"PySide6 {pyside_version}, Python {sys.version.split()[0]}: None's reference count changes by "
      f"{(sys.getrefcount(None) - before) / 1000:+.2f} per processEvents() call", flush=True)
for i in range(200_000):  # what a test helper or a modal loop driving the window does
    app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
print("ran 200,000 processEvents calls without a crash")
