"""Icons, style sheet and texts from ``resources/`` (found with importlib.resources)."""

from __future__ import annotations

import html
import importlib.resources

from PySide6.QtGui import QIcon, QPixmap

from covidgui import DISCLAIMER, __version__


def _resource(name: str):
    return importlib.resources.files("covidgui.resources") / name


def app_icon() -> QIcon:
    pixmap = QPixmap()
    pixmap.loadFromData(_resource("icon.png").read_bytes())
    return QIcon(pixmap)


def style_sheet() -> str:
    return _resource("style.qss").read_text(encoding="utf-8")


def about_html(card=None) -> str:
    """The About box: what the app is, the disclaimer, and the loaded model's card summary."""
    text = _resource("about.html").read_text(encoding="utf-8")
    if card is None:
        model = "<p><i>The model is still loading (or failed to load).</i></p>"
    else:
        model = "<p><b>Model</b><br>" + html.escape(card.summary()).replace("\n", "<br>") + "</p>"
    return text.format(version=__version__, disclaimer=html.escape(DISCLAIMER), model=model)
