"""The main window driven as a user would: real drop events, menus, the worker thread."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtCore import QPointF, QMimeData, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from covidgui.gui.app import create_app
from covidgui.gui.main_window import MainWindow
from covidgui.gui.result_panel import LABEL_COLOURS

MODEL_TIMEOUT_MS = 120_000


@pytest.fixture
def window(qtbot):
    create_app()
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()


@pytest.fixture
def ready_window(qtbot, window):
    window.start_loading_model()
    qtbot.waitUntil(lambda: window.card is not None, timeout=MODEL_TIMEOUT_MS)
    return window


def drop_files(window, *paths) -> None:
    """Deliver a drag-enter and a drop carrying file URLs, as a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)


def wait_for_result(qtbot, window):
    qtbot.waitUntil(lambda: window.result_panel.label.text() not in ("…", "No image"), timeout=MODEL_TIMEOUT_MS)


def test_window_is_shown_before_the_model_is_ready(qtbot, window):
    window.start_loading_model()
    assert window.isVisible()
    assert window.card is None
    assert window.statusBar().currentMessage() == "Loading model…"
    # Wait on what the user sees: the window's slot runs after the worker's signal.
    qtbot.waitUntil(lambda: window.card is not None, timeout=MODEL_TIMEOUT_MS)
    assert window.statusBar().currentMessage().startswith("Ready")


def test_dropping_a_covid_xray_shows_the_label(qtbot, ready_window, covid_val):
    # The first COVID-19 image the model finds (it misses 3 of 29; benchmarks/model.py measures
    # that): the window must show the core's result for it, in the COVID-19 colour.
    classifier = ready_window.inference.worker.classifier
    image = next(p for p in sorted((covid_val / "Covid").iterdir()) if classifier.predict_file(p).label == "COVID-19")
    drop_files(ready_window, image)
    wait_for_result(qtbot, ready_window)
    panel = ready_window.result_panel
    assert panel.label.text() == "COVID-19"
    assert LABEL_COLOURS["COVID-19"].lower() in panel.label.styleSheet().lower()
    assert panel.file_label.text() == image.name
    assert "%" in panel.confidence_text.text()
    assert panel.probabilities_layout.rowCount() == 2
    assert ready_window.viewer.has_image()


def test_dropping_another_image_replaces_the_result(qtbot, ready_window, chest_png, tmp_path):
    drop_files(ready_window, chest_png)
    wait_for_result(qtbot, ready_window)
    assert ready_window.result_panel.file_label.text() == "chest.png"
    other = tmp_path / "second.png"
    other.write_bytes(chest_png.read_bytes())
    drop_files(ready_window, other)
    qtbot.waitUntil(lambda: ready_window.result_panel.file_label.text() == "second.png"
                    and ready_window.result_panel.label.text() != "…", timeout=MODEL_TIMEOUT_MS)


def test_a_bad_file_shows_a_readable_message(qtbot, ready_window, tmp_path):
    bad = tmp_path / "scan.jpg"
    bad.write_text("not really a JPEG")
    drop_files(ready_window, bad)
    qtbot.waitUntil(lambda: ready_window.result_panel.label.text() == "No result", timeout=MODEL_TIMEOUT_MS)
    message = ready_window.result_panel.message.text()
    assert "scan.jpg" in message and "not an image" in message
    assert "Traceback" not in message


def test_a_missing_model_is_reported_in_the_window(qtbot, tmp_path):
    create_app()
    win = MainWindow(model_path=str(tmp_path / "missing.keras"))
    qtbot.addWidget(win)
    win.show()
    win.start_loading_model()
    qtbot.waitUntil(lambda: "does not exist" in win.result_panel.message.text(), timeout=MODEL_TIMEOUT_MS)
    assert win.statusBar().currentMessage() == "No model loaded"
    win.close()


def test_about_box_says_research_use_only(ready_window):
    from covidgui.gui.resources import about_html

    text = about_html(ready_window.card)
    assert "research use only, not a diagnostic device" in text.lower()
    assert ready_window.card.name in text


def test_heatmap_overlay_toggles(qtbot, ready_window, covid_val):
    drop_files(ready_window, sorted((covid_val / "Covid").iterdir())[0])
    wait_for_result(qtbot, ready_window)
    panel, viewer = ready_window.result_panel, ready_window.viewer
    assert panel.overlay_check.isEnabled()
    assert viewer.overlay_visible()
    panel.overlay_check.click()
    assert not viewer.overlay_visible()
    panel.overlay_check.click()
    assert viewer.overlay_visible()
    panel.opacity_slider.setValue(80)
    assert ready_window.viewer._overlay.opacity() == pytest.approx(0.8)


def test_a_non_xray_is_withheld_until_classify_anyway(qtbot, ready_window, tmp_path):
    import numpy as np
    from PIL import Image

    noise = tmp_path / "holiday.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 500), dtype=np.uint8)).save(noise)
    drop_files(ready_window, noise)
    wait_for_result(qtbot, ready_window)
    panel = ready_window.result_panel
    assert panel.label.text() == "Not a chest X-ray"
    assert "does not look like a chest X-ray" in panel.message.text()
    assert panel.probabilities_layout.rowCount() == 0  # no result shown
    assert not ready_window.viewer.overlay_visible()
    panel.anyway_button.click()
    assert panel.label.text() in ("COVID-19", "Normal", "Indeterminate")
    assert panel.probabilities_layout.rowCount() == 2
    assert ready_window.viewer.overlay_visible()


def test_tensorflow_is_not_imported_before_the_window_is_shown():
    code = textwrap.dedent("""
        import sys
        from covidgui.gui.app import create_app
        from covidgui.gui.main_window import MainWindow
        app = create_app()
        w = MainWindow()
        w.show()
        app.processEvents()
        print("tensorflow" in sys.modules, "keras" in sys.modules, w.isVisible())
        w.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "True"]


# -- what the clinician sees must never mislead (issue 28) --------------------------------------------
def _report_words(path) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(page.extract_text() for page in PdfReader(str(path)).pages).split())


def test_switching_the_model_classifies_the_shown_image_again(qtbot, tmp_path, chest_png):
    """Issue 28: a result outlived its model. With a user's model active, an image is shown; back on
    the bundled model (Models > Manage), the panel, the export and the report must all be the bundled
    model's answer, naming it, never the first model's numbers credited to the second."""
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.models import registry
    from covidgui.core.models.modelcard import ModelCard, read_card
    from covidgui.core.models.model_files import bundled_model_path
    from covidgui.core.training.train import build_classifier

    card = ModelCard(name="Clinic", version="0", classes=["Covid", "Normal"], input_size=32)
    saved = registry.save_version(Classifier(build_classifier(32, 2), card), "Clinic")
    registry.set_active(saved.id)
    bundled = read_card(bundled_model_path())
    create_app()
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.start_loading_model()
    qtbot.waitUntil(lambda: win.card is not None, timeout=MODEL_TIMEOUT_MS)
    assert win.card.name == "Clinic"
    drop_files(win, chest_png)
    wait_for_result(qtbot, win)
    panel = win.result_panel
    assert f"Clinic version {saved.card.version}" in _report_words(win.export_report(tmp_path / "before.pdf"))

    dialog = win.show_models()
    dialog.select("bundled")
    dialog.use_button.click()
    # Until the bundled model has answered, there is nothing to export and nothing of Clinic shown.
    assert not win.export_report_action.isEnabled()
    assert panel.label.text() == "…"
    qtbot.waitUntil(lambda: win.card is not None and panel.label.text() not in ("…", "No image"),
                    timeout=MODEL_TIMEOUT_MS)
    expected = win.inference.worker.classifier.predict_file(chest_png)
    assert panel.label.text() == expected.label
    assert win.export_report_action.isEnabled()
    out = win.export_report(tmp_path / "after.pdf")
    text = _report_words(out)
    assert f"{bundled.name} version {bundled.version}" in text and "Clinic" not in text
    assert f"Result: {expected.label}" in text
    assert panel.model_label.text() == f"Model: {bundled.name} v{bundled.version}"  # the panel names it too
    dialog.close()
    win.close()


def _hip_film():
    from tests.conftest import SHARED_DATA

    film = SHARED_DATA / "dicom-real" / "other10_RG2_hip_JPLL"
    if not film.is_file():
        pytest.skip(f"shared data not found at {film}")
    return film


def _is_grey(pdf_path) -> bool:
    import numpy as np
    from pypdf import PdfReader

    (image,) = PdfReader(str(pdf_path)).pages[0].images
    rgb = np.asarray(image.image.convert("RGB")).astype(int)
    return int(np.abs(rgb - rgb[..., :1]).max()) <= 2


def test_the_report_of_a_withheld_film_draws_nothing_of_the_model(qtbot, ready_window, tmp_path):
    """Issue 28: a hip film the gate withheld got lung outlines (and, from the CLI, a heatmap) in its
    report. Window and CLI print it as decoded."""
    from covidgui.cli import main as cli_main

    film = _hip_film()
    drop_files(ready_window, film)
    wait_for_result(qtbot, ready_window)
    assert ready_window.result_panel.label.text() == "Not a chest X-ray"
    out = ready_window.export_report(tmp_path / "window.pdf")
    assert _is_grey(out) and "Heatmap" not in _report_words(out)
    assert cli_main(["report", str(film), "-o", str(tmp_path / "cli.pdf")]) == 0
    assert _is_grey(tmp_path / "cli.pdf") and "Heatmap" not in _report_words(tmp_path / "cli.pdf")


def test_an_indeterminate_result_shows_no_confidence_in_the_panel(qtbot, ready_window, chest_png):
    """Issue 28: "Indeterminate — Confidence 83.7 %" with the bar 84 % full. The class probabilities
    are shown; no confidence line, no confidence bar."""
    from dataclasses import replace

    drop_files(ready_window, chest_png)
    wait_for_result(qtbot, ready_window)
    panel = ready_window.result_panel
    prediction = ready_window.last_result.prediction
    panel.show_prediction(replace(prediction, label="Indeterminate", indeterminate=True, not_xray=False,
                                  confidence=0.837, probabilities={"COVID-19": 0.837, "Normal": 0.163}),
                          chest_png.name, True)
    assert panel.label.text() == "Indeterminate"
    assert "%" not in panel.confidence_text.text() and not panel.confidence_bar.isVisible()
    rows = [panel.probabilities_layout.itemAt(r, panel.probabilities_layout.ItemRole.LabelRole).widget().text()
            for r in range(panel.probabilities_layout.rowCount())]
    assert rows == ["COVID-19: 83.7 %", "Normal: 16.3 %"]
