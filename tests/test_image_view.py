"""The viewer driven with real mouse wheel, drags and keys (pytest-qt)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from covidgui.gui.app import create_app
from covidgui.gui.image_view import DEFAULT_LEVELS, ImageView, window_lut
from covidgui.gui.viewer_panel import ViewerPanel


def ramp16() -> np.ndarray:
    """A float image with detail finer than 8 bits: a ramp over only 2 % of the range."""
    return np.tile(np.linspace(0.49, 0.51, 400, dtype=np.float32), (300, 1))


@pytest.fixture
def panel(qtbot):
    create_app()
    p = ViewerPanel()
    qtbot.addWidget(p)
    p.resize(700, 560)
    p.show()
    qtbot.waitExposed(p)
    p.view.set_image(ramp16())
    return p


def wheel(view: ImageView, clicks: int) -> None:
    vp = view.viewport()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    event = QWheelEvent(pos, vp.mapToGlobal(pos.toPoint()).toPointF(), QPoint(0, 0), QPoint(0, 120 * clicks),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, event)


def test_wheel_zooms_in_and_out_and_fit_restores(panel):
    view = panel.view
    fitted = view.zoom_factor()
    wheel(view, 2)
    assert view.zoom_factor() == pytest.approx(fitted * 1.25 ** 2, rel=1e-3)
    wheel(view, -3)
    assert view.zoom_factor() == pytest.approx(fitted / 1.25, rel=1e-3)
    panel.fit_button.click()
    assert view.zoom_factor() == pytest.approx(fitted, rel=1e-3)


def test_keys_zoom_fit_and_invert(qtbot, panel):
    view = panel.view
    fitted = view.zoom_factor()
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.zoom_factor() > fitted
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert view.zoom_factor() == pytest.approx(fitted, rel=1e-3)
    before = view.displayed_grey().copy()
    qtbot.keyClick(view, Qt.Key.Key_I)
    assert view.is_inverted() and panel.invert_check.isChecked()
    assert np.array_equal(view.displayed_grey(), 255 - before)


def test_right_drag_changes_window_and_level(qtbot, panel):
    view = panel.view
    vp = view.viewport()
    assert view.levels() == DEFAULT_LEVELS
    before = view.displayed_grey().copy()
    start = QPoint(vp.width() // 2, vp.height() // 2)
    qtbot.mousePress(vp, Qt.MouseButton.RightButton, pos=start)
    qtbot.mouseMove(vp, start + QPoint(-vp.width() // 2, 40))  # left = narrower window, down = level up
    qtbot.mouseRelease(vp, Qt.MouseButton.RightButton, pos=start + QPoint(-vp.width() // 2, 40))
    center, width = view.levels()
    assert width < DEFAULT_LEVELS[1] / 2
    assert center > DEFAULT_LEVELS[0]
    after = view.displayed_grey()
    assert not np.array_equal(before, after)
    # The sliders follow the view.
    assert panel.width_slider.value() == round(width * 1000)
    assert panel.level_slider.value() == round(center * 1000)


def test_narrow_window_reveals_detail_beyond_eight_bits(panel):
    view = panel.view
    assert np.ptp(view.displayed_grey()) <= 6  # 2 % of the range: a few grey levels at full window
    view.set_levels(0.5, 0.02)
    assert np.ptp(view.displayed_grey()) >= 250  # the same pixels spread over black..white
    panel.reset_button.click()
    assert view.levels() == DEFAULT_LEVELS


def test_presets_and_sliders_set_levels(panel):
    view = panel.view
    auto = list(panel_presets(panel)).index("Auto contrast (1–99 %)")
    panel.preset_box.activated.emit(auto)
    center, width = view.levels()
    assert center == pytest.approx(0.5, abs=0.01) and width < 0.05
    assert panel.preset_box.currentText() == "Auto contrast (1–99 %)"
    panel.level_slider.setValue(300)
    assert panel.preset_box.currentIndex() == -1
    assert view.levels()[0] == pytest.approx(0.3)
    lungs = panel_presets(panel).index("Lungs (dark areas)")
    panel.preset_box.activated.emit(lungs)
    assert view.levels() == pytest.approx((0.30, 0.60))
    assert panel.preset_box.currentText() == "Lungs (dark areas)"
    view.set_levels(0.4, 0.6)  # a drag or slider move leaves the preset
    assert panel.preset_box.currentIndex() == -1


def panel_presets(panel):
    return [panel.preset_box.itemText(i) for i in range(panel.preset_box.count())]


def test_window_lut_maps_the_window_to_black_and_white():
    lut = window_lut(0.5, 0.2)
    assert lut[int(0.39 * 65535)] == 0 and lut[int(0.61 * 65535)] == 255
    assert window_lut(0.5, 0.2, inverted=True)[int(0.39 * 65535)] == 255


def test_uint8_images_and_overlay_still_work(qtbot, panel):
    view = panel.view
    view.set_image((ramp16() * 255).astype(np.uint8))
    assert view.has_image()
    overlay = np.zeros((10, 10, 4), np.uint8)
    overlay[..., 0] = overlay[..., 3] = 255
    view.set_overlay(overlay)
    view.set_overlay_visible(True)
    assert view.overlay_visible()
    view.set_overlay_opacity(0.5)
    shown = view.rendered_image()
    assert (shown.width(), shown.height()) == (400, 300)
    assert shown.pixelColor(200, 150).red() > shown.pixelColor(200, 150).blue() + 50
    view.clear()
    assert not view.has_image()


def test_report_dialog_offers_patient_identifiers_off_by_default(qtbot, tmp_path):
    from pathlib import Path

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QCheckBox, QFileDialog

    from covidgui.gui.export_dialog import ask_report_destination

    create_app()
    seen = {}

    def answer():
        dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QFileDialog) and w.isVisible())
        box = dialog.findChild(QCheckBox)
        seen["default"] = box.isChecked()
        box.setChecked(True)
        dialog.accept()

    QTimer.singleShot(300, answer)
    path, include = ask_report_destination(None, Path(tmp_path / "scan.dcm"), has_patient=True)
    assert seen["default"] is False
    assert include is True and path == str(tmp_path / "scan-report.pdf")  # the proposed name
