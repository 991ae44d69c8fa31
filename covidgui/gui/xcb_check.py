"""Before the window: are the system libraries Qt's X11 (xcb) platform plugin needs installed?

On a fresh Debian/Ubuntu machine ``libxcb-cursor0`` (Qt 6.5+), and on minimal systems
``libxcb-icccm4``, ``libxcb-keysyms1``, ``libxkbcommon-x11-0`` and others, are missing; Qt then
aborts with "Could not load the Qt platform plugin "xcb"", which names no package. This asks
``ldd`` which of the plugin's libraries cannot be found and prints the one ``apt-get`` line that
installs them. No Qt import here: it must run before Qt loads the plugin.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin (``Qt/plugins/platforms/libqxcb.so``), when there is one."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return path if path.is_file() else None


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames ``ldd`` reports as "not found", each once, in order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


# Libraries whose Debian package does not follow the naming rule below.
_PACKAGE_EXCEPTIONS = {"libglib-2.0.so.0": "libglib2.0-0", "libGLdispatch.so.0": "libglvnd0",
                       "libgthread-2.0.so.0": "libglib2.0-0", "libgobject-2.0.so.0": "libglib2.0-0"}


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships a library: ``libxcb-cursor.so.0`` -> ``libxcb-cursor0``,
    ``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0`` (Debian's naming rule: the soname's
    version is appended, after a hyphen when the name ends in a digit)."""
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    match = re.match(r"^(.+?)\.so\.(\d+)", soname)
    if not match:
        return soname
    name, version = match.group(1).lower(), match.group(2)
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def apt_get_line(sonames: list[str]) -> str:
    return "sudo apt-get install " + " ".join(dict.fromkeys(debian_package(s) for s in sonames))


def xcb_will_be_used(environ=os.environ) -> bool:
    """Whether Qt will try the xcb plugin: on Linux, unless another platform is asked for or a
    Wayland session is there for Qt to use instead."""
    if not sys.platform.startswith("linux"):
        return False
    asked = environ.get("QT_QPA_PLATFORM", "")
    if asked:
        return asked.split(":")[0].split(";")[0] == "xcb"
    return not environ.get("WAYLAND_DISPLAY")


def check_xcb_libraries(plugin: Path | None = None) -> str | None:
    """The message to print when the xcb plugin's libraries are missing, else None (also when
    this cannot be checked: no plugin, no ``ldd``)."""
    plugin = plugin or xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is None or ldd is None:
        return None
    try:
        done = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    missing = missing_libraries(done.stdout)
    if not missing:
        return None
    return ("CovidGUI cannot open its window: Qt's X11 (xcb) platform plugin needs system libraries that "
            f"are not installed ({', '.join(missing)}).\n"
            "On Debian or Ubuntu, install them with:\n\n"
            f"    {apt_get_line(missing)}\n\n"
            "then start CovidGUI again. (The command line works without them: covidgui classify, "
            "evaluate, train, report.)")
