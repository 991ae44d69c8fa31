"""The lung features in the window: attention on lungs, its warning, the outline toggle, and the
window without the lung model."""

from __future__ import annotations

import math
import os

import pytest
from PySide6.QtWidgets import QApplication

from covidgui.core.inference import lungs
from covidgui.gui.app import create_app
from covidgui.gui.main_window import MainWindow
from tests.conftest import SHARED_DATA

SCREENSHOT_DIR = os.environ.get("COVIDGUI_SCREENSHOTS")  # set to a folder to keep the grabs


@pytest.fixture
def loaded_window(qtbot):
    """The main window with its model loaded by its own worker thread, as in the app.

    These tests used to drive the worker on the test's thread because TensorFlow "intermittently
    segfaulted while tracing" on the worker thread; the cause was PySide6 6.12.0 taking a
    reference to None on every processEvents() call (covidgui/gui/qt_compat.py), not the thread.
    """
    create_app()
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.start_loading_model()
    qtbot.waitUntil(lambda: win.card is not None, timeout=120_000)
    yield win
    win.close()


def show_file(window, path) -> None:
    """What a drop does (the worker thread classifies), then wait until the window shows it."""
    from pathlib import Path

    window.classify(path)
    QApplication.processEvents()
    _qtbot_wait(lambda: window.result_panel.file_label.text() == Path(path).name
                and window.result_panel.label.text() not in ("…", "No image"))


def _qtbot_wait(condition, timeout_s: float = 120.0) -> None:
    import time

    from PySide6.QtTest import QTest

    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "the window did not show the result in time"
        QTest.qWait(10)


@pytest.fixture
def ready_window(loaded_window):
    return loaded_window


@pytest.fixture
def adult_xray(ready_window):
    if ready_window.inference.worker.classifier.lungs is None:
        pytest.skip("no bundled lung model (models/lung_segmenter.keras)")
    folder = SHARED_DATA / "adult-normal"
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder}")
    held = ready_window.inference.worker.classifier.lungs.card["training"]["held_back"]
    return folder / held[0]


def test_result_shows_attention_on_lungs_and_the_outline_toggles(qtbot, ready_window, adult_xray):
    show_file(ready_window, adult_xray)
    panel, viewer = ready_window.result_panel, ready_window.viewer
    prediction = ready_window.inference.worker.classifier.predict_file(adult_xray, heatmap=True)
    assert panel.lung_attention_text.isVisible()
    # rounded down, so that 49.6 % never reads as 50 %
    lines = panel.lung_attention_text.text().replace("\u00a0", " ").split("\n")  # "%" joined to its number
    assert lines[0] == f"Attention on lungs: {math.floor(prediction.lung_attention * 100)} %"
    assert lines[1] == f"Lungs only (outside blanked): {prediction.lung_only_label} {prediction.lung_only_confidence * 100:.0f} %"
    assert panel.lung_warning.isVisible() == (prediction.lung_attention < 0.5 or prediction.depends_on_outside_lungs)
    assert panel.lung_check.isEnabled() and viewer.lung_outline_visible()
    qtbot.wait(100)  # let the layout settle before grabbing
    if SCREENSHOT_DIR:
        ready_window.grab().save(os.path.join(SCREENSHOT_DIR, "lungs-outline-on.png"))
    panel.lung_check.click()
    assert not viewer.lung_outline_visible()
    assert viewer.overlay_visible()  # the heatmap has its own toggle
    panel.lung_check.click()
    assert viewer.lung_outline_visible()


def test_low_attention_shows_the_warning(qtbot, ready_window, adult_xray):
    from dataclasses import replace

    panel = ready_window.result_panel
    prediction = ready_window.inference.worker.classifier.predict_file(adult_xray, heatmap=True)
    panel.show_prediction(replace(prediction, lung_attention=0.31, depends_on_outside_lungs=False),
                          adult_xray.name, True)
    assert panel.lung_attention_text.text().replace("\u00a0", " ").startswith("Attention on lungs: 31 %")
    assert panel.lung_warning.isVisible()
    assert "looked mostly outside the lungs" in panel.lung_warning.text()
    assert "depends on what lies outside the lungs" not in panel.lung_warning.text()


def test_a_result_that_depends_on_outside_the_lungs_says_so(qtbot, ready_window, adult_xray):
    from dataclasses import replace

    panel = ready_window.result_panel
    prediction = ready_window.inference.worker.classifier.predict_file(adult_xray, heatmap=True)
    panel.show_prediction(replace(prediction, lung_attention=0.8, lung_only_label="COVID-19",
                                  lung_only_confidence=0.71, depends_on_outside_lungs=True), adult_xray.name, True)
    assert "Lungs only (outside blanked): COVID-19 71 %" in panel.lung_attention_text.text().replace("\u00a0", " ")
    assert panel.lung_warning.isVisible()
    assert "depends on what lies outside the lungs" in panel.lung_warning.text()
    assert "looked mostly outside" not in panel.lung_warning.text()
    qtbot.wait(100)
    if SCREENSHOT_DIR:
        ready_window.grab().save(os.path.join(SCREENSHOT_DIR, "lungs-outside-dependence.png"))
    qtbot.wait(100)  # let the layout settle before grabbing
    if SCREENSHOT_DIR:
        ready_window.grab().save(os.path.join(SCREENSHOT_DIR, "lungs-low-attention.png"))


def test_the_window_works_without_the_lung_model(qtbot, monkeypatch, tmp_path, chest_png):
    monkeypatch.setattr(lungs, "bundled_segmenter_path", lambda: tmp_path / "absent.keras")
    create_app()
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.start_loading_model()
    qtbot.waitUntil(lambda: win.card is not None, timeout=120_000)
    assert win.inference.worker.classifier.lungs is None
    show_file(win, chest_png)
    panel = win.result_panel
    assert panel.label.text() in ("COVID-19", "Normal", "Indeterminate", "Not a chest X-ray")
    assert not panel.lung_attention_text.isVisible() and not panel.lung_check.isEnabled()
    assert not win.viewer.lung_outline_visible()
    win.close()
