"""What the app remembers between sessions: window geometry, last folders, heatmap opacity.

Kept with QSettings in an INI file next to the user's models (``registry.data_dir()``, so
``COVIDGUI_DATA_DIR`` moves it too); the active model is remembered by covidgui.core.models.registry.
A settings file that cannot be parsed, or a value of the wrong type, falls back to the default:
a damaged file must never stop the app from starting. A damaged file is set aside as
``settings.ini.corrupt`` so the next save starts clean.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QRect, QSettings
from PySide6.QtGui import QGuiApplication

from covidgui.core.models.registry import data_dir

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.ini"
DEFAULT_OPACITY = 45  # percent, the result panel's default


def settings_path() -> Path:
    return data_dir() / SETTINGS_FILE


class AppSettings:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else settings_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)
        if self.qsettings.status() != QSettings.Status.NoError:
            log.warning("settings file unreadable (%s); using defaults", self.qsettings.status().name)
            self.qsettings = None
            try:
                self.path.replace(self.path.with_name(self.path.name + ".corrupt"))
            except OSError:
                pass
            self.qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)

    def _get(self, key: str, default, kind):
        try:
            value = self.qsettings.value(key, default)
        except Exception:  # a value Qt cannot convert
            return default
        if value is None:
            return default
        try:
            if kind is QByteArray:
                return value if isinstance(value, QByteArray) else default
            if kind is int:
                return int(value)
            return kind(value)
        except (TypeError, ValueError):
            return default

    # -- values ----------------------------------------------------------------------------------
    def last_folder(self, purpose: str) -> str:
        """The folder last used for ``purpose`` ("open", "batch", "export"), if it still exists."""
        folder = self._get(f"folders/{purpose}", "", str)
        return folder if folder and Path(folder).is_dir() else ""

    def set_last_folder(self, purpose: str, path: str | Path) -> None:
        path = Path(path)
        self.qsettings.setValue(f"folders/{purpose}", str(path if path.is_dir() else path.parent))

    def overlay_opacity(self) -> int:
        value = self._get("view/overlay_opacity", DEFAULT_OPACITY, int)
        return value if 0 <= value <= 100 else DEFAULT_OPACITY

    def set_overlay_opacity(self, percent: int) -> None:
        self.qsettings.setValue("view/overlay_opacity", int(percent))

    def window_geometry(self) -> QByteArray | None:
        return self._get("window/geometry", None, QByteArray)

    def set_window_geometry(self, geometry: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)

    def sync(self) -> None:
        self.qsettings.sync()


# Room left for a window's frame when it is fitted to a screen before it has one (before it is
# shown, Qt knows only the inside of the window): a title bar.
TITLE_BAR = 32


def fit_to_screen(window, available: QRect | None = None) -> None:
    """Shrink and move ``window`` so that it lies, frame included, inside ``available`` (default:
    its screen's available geometry, the screen less task bars). A default or saved size bigger
    than this screen (a window saved on a larger monitor, or grown by a tab) must never open with
    its bottom or right edge, and the buttons there, off screen."""
    if available is None:
        screen = window.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        available = screen.availableGeometry()
    if available.isEmpty():
        return
    frame = window.frameGeometry()
    extra_w, extra_h = frame.width() - window.width(), frame.height() - window.height()
    if extra_h <= 0:  # no frame yet: allow for a title bar
        extra_h = TITLE_BAR
    width = min(window.width(), available.width() - extra_w)
    height = min(window.height(), available.height() - extra_h)
    if (width, height) != (window.width(), window.height()):
        window.resize(max(width, 1), max(height, 1))
    outer_w, outer_h = window.width() + extra_w, window.height() + extra_h
    x = max(available.left(), min(frame.x(), available.right() + 1 - outer_w))
    y = max(available.top(), min(frame.y(), available.bottom() + 1 - outer_h))
    if (x, y) != (frame.x(), frame.y()):
        window.move(x, y)  # moves the frame's corner


def restore_window(window) -> AppSettings:
    """Apply saved geometry and opacity to a MainWindow, fitted to the screen; returns the settings
    for later saves."""
    settings = AppSettings()
    geometry = settings.window_geometry()
    if geometry is not None and not geometry.isEmpty():
        window.restoreGeometry(geometry)  # returns False for garbage; the default size stays
    fit_to_screen(window)
    window.result_panel.opacity_slider.setValue(settings.overlay_opacity())
    window.viewer.set_overlay_opacity(settings.overlay_opacity() / 100)
    return settings


def save_window(window, settings: AppSettings) -> None:
    settings.set_window_geometry(window.saveGeometry())
    settings.set_overlay_opacity(window.result_panel.opacity_slider.value())
    settings.sync()
