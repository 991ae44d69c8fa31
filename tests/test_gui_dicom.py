"""A DICOM dropped on the main window: the caution, the information panel, and the exports."""

from __future__ import annotations

import os

from pypdf import PdfReader

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
