"""Start-up on a machine without the libraries Qt's xcb plugin needs: the exact apt-get line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from covidgui.gui.xcb_check import (apt_get_line, check_xcb_libraries, debian_package, missing_libraries,
                                    xcb_plugin, xcb_will_be_used)

LDD_OUTPUT = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibX11-xcb.so.1 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)
"""


def test_the_missing_libraries_become_one_apt_get_line():
    missing = missing_libraries(LDD_OUTPUT)
    assert missing == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0",
                       "libX11-xcb.so.1"]
    assert apt_get_line(missing) == ("sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 "
                                     "libxkbcommon-x11-0 libx11-xcb1")
    assert debian_package("libdbus-1.so.3") == "libdbus-1-3" and debian_package("libEGL.so.1") == "libegl1"
    assert debian_package("libglib-2.0.so.0") == "libglib2.0-0"


def test_xcb_is_checked_only_when_qt_will_use_it():
    if not sys.platform.startswith("linux"):
        pytest.skip("xcb is Linux only")
    assert xcb_will_be_used({"DISPLAY": ":0"})
    assert xcb_will_be_used({"QT_QPA_PLATFORM": "xcb"})
    assert not xcb_will_be_used({"QT_QPA_PLATFORM": "offscreen"})
    assert not xcb_will_be_used({"WAYLAND_DISPLAY": "wayland-0"})


def _missing_here() -> list[str]:
    plugin = xcb_plugin()
    if plugin is None or not sys.platform.startswith("linux"):
        return []
    return missing_libraries(subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout)


def test_the_gui_command_prints_the_apt_get_line_instead_of_qts_abort():
    """On this machine (when it lacks some of the plugin's libraries, as a fresh one does)."""
    missing = _missing_here()
    if not missing:
        pytest.skip("every library of Qt's xcb plugin is installed here; nothing is missing to report")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":987"  # never contacted: the check runs before Qt
    done = subprocess.run([sys.executable, "-m", "covidgui"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert apt_get_line(missing) in done.stderr
    assert "Could not load the Qt platform plugin" not in done.stderr and "Traceback" not in done.stderr
    assert check_xcb_libraries() is not None
