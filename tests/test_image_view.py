"""The viewer driven with real mouse wheel, drags and keys (pytest-qt)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from covidgui.gui.app import create_app
from covidgui.gui.image_view import DEFAULT_LEVELS, ImageView, display_buffers, window_lut
from covidgui.gui.viewer_panel import ViewerPanel, start_levels


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
    # The range slider follows the view: its handles are the window's ends (percent for a PNG).
    low, high = panel.window_slider.value()
    assert low == pytest.approx(max(0.0, (center - width / 2) * 100), abs=0.01)
    assert high == pytest.approx(min(100.0, (center + width / 2) * 100), abs=0.01)


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
    panel.window_slider.setValue((20.0, 40.0))  # the reader drags the handles: window 20..40 %
    assert panel.preset_box.currentIndex() == -1
    assert view.levels() == pytest.approx((0.3, 0.2))
    lungs = panel_presets(panel).index("Lungs (dark areas)")
    panel.preset_box.activated.emit(lungs)
    assert view.levels() == pytest.approx(view.auto_levels_for_image(1.0, 75.0))  # the image's darker grey values
    assert panel.preset_box.currentText() == "Lungs (dark areas)"
    view.set_levels(0.4, 0.6)  # a drag or slider move leaves the preset
    assert panel.preset_box.currentIndex() == -1


def test_a_new_image_starts_as_loaded_not_custom(panel):
    auto = panel_presets(panel).index("Auto contrast (1–99 %)")
    panel.preset_box.activated.emit(auto)
    assert panel.preset_box.currentText() == "Auto contrast (1–99 %)"
    panel.show_image(np.tile(np.linspace(0.0, 1.0, 300, dtype=np.float32), (200, 1)))
    assert panel.view.levels() == DEFAULT_LEVELS
    assert panel.preset_box.currentIndex() == 0 and panel.preset_box.currentText().startswith("As loaded")
    panel.view.set_levels(0.4, 0.3)
    assert panel.preset_box.currentIndex() == -1  # "Custom"
    panel.reset_button.click()
    assert panel.preset_box.currentIndex() == 0 and panel.view.levels() == DEFAULT_LEVELS


def test_dicom_window_in_file_units_widens_beyond_the_file_window(panel):
    """A 12-bit file with a narrow window: the bar shows its units, starts at its window, and
    widening to the stored range brings back the detail the file's window clips."""
    from covidgui.core.io.dicom import FileLevels

    values = np.tile(np.linspace(0, 4095, 400, dtype=np.float32), (300, 1))  # file units
    levels = FileLevels(window=(1500.0, 1000.0), stored_range=(0.0, 4095.0))
    panel.show_image(levels.normalise(values), levels)
    assert (panel.window_slider.minimum(), panel.window_slider.maximum()) == (0.0, 4095.0)
    assert panel.window_slider.value() == pytest.approx((1000.0, 2000.0), abs=0.5)
    assert panel.levels_text.text() == "L 1500  W 1000"
    assert panel.window_in_units() == pytest.approx((1500.0, 1000.0), abs=0.5)
    grey = panel.view.displayed_grey()
    bright = values[0] > 2100
    assert (grey[0][bright] == 255).all()  # beyond the file's window: clipped to white
    panel.window_slider.setValue((0.0, 4095.0))  # widen to the full stored range
    assert panel.levels_text.text() == "L 2048  W 4095"
    grey = panel.view.displayed_grey()
    assert grey[0][bright].min() < 200 and np.ptp(grey[0][bright]) > 50  # the detail is back
    panel.preset_box.activated.emit(panel_presets(panel).index("As loaded (file's window)"))
    assert panel.window_in_units() == pytest.approx((1500.0, 1000.0), abs=0.5)


def test_monochrome1_levels_keep_low_values_white(panel):
    from covidgui.core.io.dicom import FileLevels

    values = np.tile(np.linspace(0, 1023, 300, dtype=np.float32), (100, 1))
    levels = FileLevels(window=(512.0, 1024.0), stored_range=(0.0, 1023.0), inverted=True)
    panel.show_image(levels.normalise(values), levels)
    grey = panel.view.displayed_grey()
    assert grey[0, 0] > 250 and grey[0, -1] < 5  # value 0 white, 1023 black
    panel.set_window_in_units(200.0, 100.0)
    assert panel.window_slider.value() == pytest.approx((150.0, 250.0), abs=0.5)
    grey = panel.view.displayed_grey()
    assert (grey[0][values[0] < 150] == 255).all() and (grey[0][values[0] > 250] == 0).all()


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


@pytest.mark.parametrize("dicom", [False, True])
@pytest.mark.parametrize("inverted", [False, True])
def test_buffers_made_off_the_gui_thread_paint_as_the_pixels_do(panel, dicom, inverted):
    """The worker's DisplayBuffers show exactly what the float pixels show: the same grey values,
    the same painted picture, and window/level and invert behave the same afterwards."""
    from covidgui.core.io.dicom import FileLevels

    levels = FileLevels(window=(1500.0, 1000.0), stored_range=(0.0, 4095.0)) if dicom else None
    pixels = ramp16() if not dicom else levels.normalise(np.tile(np.linspace(0, 4095, 400, dtype=np.float32),
                                                                 (300, 1)))
    pictures = []
    for shown in (pixels, display_buffers(pixels, start_levels(levels))):
        panel.view.set_inverted(inverted)
        panel.show_image(shown, levels)
        first = panel.view.displayed_grey(), panel.view.rendered_image(), panel.view.levels()
        panel.view.set_levels(0.5, 0.05)
        panel.view.set_inverted(not inverted)
        after = panel.view.displayed_grey(), panel.view.rendered_image()
        panel.view.reset_levels()
        pictures.append((first, after, panel.view.levels()))
    (first_a, after_a, reset_a), (first_b, after_b, reset_b) = pictures
    assert np.array_equal(first_a[0], first_b[0]) and first_a[1] == first_b[1] and first_a[2] == first_b[2]
    assert np.array_equal(after_a[0], after_b[0]) and after_a[1] == after_b[1]
    assert reset_a == reset_b


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
    # The proposed name, in the image's folder: dated, never the image's name (issue 28).
    assert include is True and Path(path).parent == tmp_path
    assert Path(path).name.startswith("CovidGUI report ") and "scan" not in Path(path).name


# -- window presets and the photometric interpretation (issue 28, item 9) ---------------------------
LUNG_ROWS, LEFT_LUNG, RIGHT_LUNG, MIDLINE = (0.35, 0.6), (0.2, 0.35), (0.65, 0.8), (0.45, 0.55)


def _region(grey: np.ndarray, rows, cols) -> np.ndarray:
    h, w = grey.shape
    return grey[int(h * rows[0]):int(h * rows[1]), int(w * cols[0]):int(w * cols[1])]


def _lungs_and_midline(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lungs = np.concatenate([_region(grey, LUNG_ROWS, LEFT_LUNG).ravel(), _region(grey, LUNG_ROWS, RIGHT_LUNG).ravel()])
    return lungs, _region(grey, LUNG_ROWS, MIDLINE).ravel()


def _apply(panel, name: str) -> np.ndarray:
    panel.preset_box.activated.emit(panel_presets(panel).index(name))
    assert panel.preset_box.currentText() == name
    return panel.view.displayed_grey()


def _assert_lungs_readable(panel) -> None:
    """"Lungs" shows the lung fields in greys (not washed out to white), darker than the midline;
    "Mediastinum / bone" shows the midline in greys, not black."""
    lungs, midline = _lungs_and_midline(_apply(panel, "Lungs (dark areas)"))
    assert 40 <= np.median(lungs) <= 220, np.median(lungs)
    assert np.mean(lungs >= 250) < 0.05  # it whitened 65 % of a MONOCHROME1 film's lungs
    assert np.median(lungs) < np.median(midline)
    _, midline = _lungs_and_midline(_apply(panel, "Mediastinum / bone (bright areas)"))
    assert 40 <= np.median(midline) <= 230


def test_the_lung_preset_shows_the_lungs_of_a_monochrome1_film_whose_window_reaches_past_its_pixels(panel):
    """A CR film stored MONOCHROME1 (high values dark) whose file window, 0..30000, reaches far beyond
    its darkest pixel (26500), as the dicom-real chest01 film's does; and its MONOCHROME2 twin."""
    from covidgui.core.io.dicom import FileLevels
    from tests.conftest import chest_like

    # 1 = white; a bright film, as chest01 is: its lungs sit at 60-80 % of the display range.
    picture = 0.45 + 0.55 * chest_like(256) / 255.0
    picture[:12, :] = 0.0  # air above the shoulders: the darkest pixels, at 26500
    top = 32767
    stored = 800 + (1.0 - picture) * 25700  # MONOCHROME1: white = low values
    mono1 = FileLevels(window=(15000.0, 30000.0), stored_range=(0.0, top), inverted=True)
    mono2 = FileLevels(window=(top - 15000.0, 30000.0), stored_range=(0.0, top), inverted=False)
    shown = {}
    for levels, values in ((mono1, stored), (mono2, top - stored)):
        panel.show_image(levels.normalise(values), levels)
        _assert_lungs_readable(panel)
        shown[levels.inverted] = _apply(panel, "Lungs (dark areas)")
    # The same picture whichever way it is stored.
    assert np.abs(shown[True].astype(int) - shown[False].astype(int)).max() <= 1


def test_the_lung_preset_shows_the_lungs_of_the_real_monochrome1_chest_film(panel):
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "dicom-real" / "chest01_RG1_J2KI.dcm"
    if not path.is_file():
        pytest.skip(f"the real MONOCHROME1 chest film is not at {path} (set COVIDGUI_SHARED_DATA)")
    from covidgui.core.io.images import load_xray

    xray = load_xray(path, viewer_values=True)
    levels = xray.metadata["file_levels"]
    assert levels.inverted  # MONOCHROME1
    panel.show_image(levels.normalise(xray.values), levels)
    _assert_lungs_readable(panel)
