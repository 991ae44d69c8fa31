"""A DICOM dropped on the main window: the caution, the information panel, and the exports."""

from __future__ import annotations

import os

from pypdf import PdfReader
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from covidgui import DISCLAIMER
from covidgui.gui.dicom_panel import HIDDEN
from tests.conftest import chest_like
from tests.dicom_factory import PATIENT_ID, make_xray_dicom
from tests.test_gui import drop_files, ready_window, wait_for_result, window  # noqa: F401 (fixtures)


def test_lateral_dicom_shows_caution_info_and_hidden_identifiers(qtbot, ready_window, tmp_path):
    dcm = make_xray_dicom(tmp_path / "IM0001", chest_like(320) / 255.0, bits=16, photometric="MONOCHROME1",
                          view_position="LL")
    drop_files(ready_window, dcm)
    wait_for_result(qtbot, ready_window)
    panel = ready_window.result_panel
    # A synthetic image: the input gate may withhold the label; the cautions show either way.
    assert panel.label.text() in ("COVID-19", "Normal", "Indeterminate", "Not a chest X-ray")
    assert panel.warnings.isVisible() and "frontal" in panel.warnings.text()
    info = panel.dicom_info
    assert info.isVisible()
    assert info.fields["modality"].text() == "DX" and info.fields["view_position"].text() == "LL"
    assert all(f.text() == HIDDEN for f in info.patient_fields.values())
    info.reveal_check.click()
    assert info.patient_fields["Patient ID"].text() == PATIENT_ID
    info.reveal_check.click()
    assert info.patient_fields["Patient ID"].text() == HIDDEN
    if panel.anyway_button.isVisible():  # withheld by the gate: the reader asks for the answer
        panel.anyway_button.click()
    assert panel.legend.isVisible()
    assert panel.probabilities_layout.rowCount() == 2
    qtbot.wait(50)
    if os.environ.get("COVIDGUI_SCREENSHOTS"):
        ready_window.grab().save(os.path.join(os.environ["COVIDGUI_SCREENSHOTS"], "dicom_window.png"))

    # Window/level is display only: the result does not change when the reader adjusts it.
    label_before = panel.label.text()
    ready_window.viewer.set_levels(0.3, 0.2)
    assert panel.label.text() == label_before

    report = ready_window.export_report(tmp_path / "report.pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(str(report)).pages)
    assert label_before in text and DISCLAIMER in text and ready_window.card.version in text
    assert PATIENT_ID not in text
    with_patient = ready_window.export_report(tmp_path / "with.pdf", include_patient=True)
    assert PATIENT_ID in "\n".join(p.extract_text() for p in PdfReader(str(with_patient)).pages)

    png = ready_window.export_image(tmp_path / "shown.png")
    from PIL import Image

    assert Image.open(png).size == (320, 320)


def test_png_after_dicom_hides_the_dicom_panel(qtbot, ready_window, tmp_path, chest_png):
    drop_files(ready_window, make_xray_dicom(tmp_path / "a.dcm", chest_like() / 255.0, bits=8))
    wait_for_result(qtbot, ready_window)
    assert ready_window.result_panel.dicom_info.isVisible()
    assert not ready_window.result_panel.warnings.isVisible()
    drop_files(ready_window, chest_png)
    qtbot.waitUntil(lambda: ready_window.result_panel.file_label.text() == "chest.png"
                    and ready_window.result_panel.label.text() not in ("…", "No image"), timeout=120_000)
    assert not ready_window.result_panel.dicom_info.isVisible()
    assert ready_window.export_report_action.isEnabled()


def test_structured_report_dropped_shows_its_message(qtbot, ready_window, tmp_path):
    from tests.dicom_factory import make_structured_report

    drop_files(ready_window, make_structured_report(tmp_path / "sr.dcm"))
    qtbot.waitUntil(lambda: ready_window.result_panel.label.text() == "No result", timeout=120_000)
    assert "holds no image" in ready_window.result_panel.message.text()
    assert not ready_window.export_report_action.isEnabled()


SIZES = [(1024, 700), (1366, 768), (1920, 1080)]


def test_real_angiography_file_is_readable_at_every_window_size(qtbot, ready_window):
    """The 96-frame XA file of dicom-real: withheld with its cautions; at 1024 x 700 the panel
    scrolls instead of squeezing, each text gets the height it needs, the headline wraps between
    words only."""
    from pathlib import Path

    import pytest

    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "dicom-real" / "other17_XA_multiframe96.dcm"
    if not path.is_file():
        pytest.skip(f"{path} not found (set COVIDGUI_SHARED_DATA)")
    drop_files(ready_window, path)
    wait_for_result(qtbot, ready_window)
    panel = ready_window.result_panel
    assert panel.label.text() == "Not a chest X-ray" and panel.probabilities_layout.rowCount() == 0
    assert "96 frames" in panel.warnings.text() and "Modality XA" in panel.warnings.text()
    shots = Path(os.environ.get("COVIDGUI_SCREENSHOTS", ""))
    for width, height in SIZES:
        ready_window.resize(width, height)
        qtbot.waitUntil(lambda: ready_window.width() == width and ready_window.height() == height, timeout=5000)
        qtbot.wait(50)
        squeezed = [w for w in [panel.label, panel.warnings, panel.message, *panel.dicom_info.fields.values()]
                    if w.isVisible() and w.height() < w.heightForWidth(w.width()) - 1]
        assert not squeezed, [(w.text(), w.height(), w.heightForWidth(w.width())) for w in squeezed]
        # "Not a chest X-ray" breaks between words, never inside "X-ray": no line ends in a hyphen.
        metrics = panel.label.fontMetrics()
        assert metrics.horizontalAdvance("X-ray") < panel.label.width()
        assert "\u2011" in QLabel.text(panel.label)  # shown with a non-breaking hyphen
        if width == 1024:
            scroll = ready_window.result_scroll.verticalScrollBar()
            assert scroll.maximum() > 0  # it scrolls rather than squeezing
        if os.environ.get("COVIDGUI_SCREENSHOTS"):
            ready_window.grab().save(str(shots / f"xa-{width}x{height}.png"))


def test_real_chest_film_window_level_is_in_its_own_units(qtbot, ready_window):
    """The 1993 Fuji CR chest film (MONOCHROME1, 10-bit, Window 550/1024, an old-style file
    without preamble): the bar starts at the file's window in its units and widens to 0..1023."""
    import pytest

    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "dicom-real" / "chest04_CR-MONO1-10-chest_noext"
    if not path.is_file():
        pytest.skip(f"{path} not found (set COVIDGUI_SHARED_DATA)")
    drop_files(ready_window, path)
    wait_for_result(qtbot, ready_window)
    assert ready_window.result_panel.label.text() in ("COVID-19", "Normal", "Indeterminate")
    bar = ready_window.viewer_panel
    assert (bar.window_slider.minimum(), bar.window_slider.maximum()) == (0.0, 1023.0)
    assert bar.levels_text.text() == "L 550  W 1024"
    assert bar.window_slider.value() == pytest.approx((38.0, 1023.0), abs=0.5)
    bar.window_slider.setValue((300.0, 700.0))
    assert bar.window_in_units() == pytest.approx((500.0, 400.0), abs=0.5)
    assert bar.preset_box.currentIndex() == -1
    ready_window.viewer.setFocus()
    qtbot.keyClick(ready_window.viewer, Qt.Key.Key_R)  # reset: the file's window again
    assert bar.levels_text.text() == "L 550  W 1024" and bar.preset_box.currentIndex() == 0
