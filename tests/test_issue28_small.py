"""Smaller things the clinician sees that must not mislead (issue 28, item 10)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from covidgui.gui.app import create_app

REPO = Path(__file__).resolve().parents[1]


def test_report_to_a_missing_folder_is_refused_naming_it_and_creates_nothing(tmp_path, chest_png):
    missing = tmp_path / "no-such" / "folder"
    run = subprocess.run([sys.executable, "-m", "covidgui", "report", str(chest_png), "-o", str(missing / "x.pdf")],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    err = run.stderr
    assert run.returncode == 2, err
    assert str(missing) in err and "does not exist" in err
    assert not (tmp_path / "no-such").exists()  # it created the folders silently before


def test_the_suggested_report_name_never_carries_the_image_name(qtbot, tmp_path):
    from covidgui.gui.export_dialog import default_report_name, report_dialog

    create_app()
    source = tmp_path / "SMITH_JOHN_CXR.dcm"
    for has_patient in (True, False):
        dialog, include = report_dialog(None, source, has_patient)
        qtbot.addWidget(dialog)
        assert not include.isChecked()  # patient details off by default
        suggested = Path(dialog.selectedFiles()[0]).name
        assert "SMITH" not in suggested and suggested.endswith(".pdf"), suggested
    assert default_report_name(datetime(2025, 3, 4, 9, 5)) == "CovidGUI report 2025-03-04 0905.pdf"


def test_lung_guidance_tooltip_does_not_promise_what_the_readme_denies():
    """README: lung guidance keeps the evidence on the lungs, and none of the recipes (lung guidance
    among them) stopped the model recognising where an image comes from."""
    from covidgui.gui.training_setup import LUNG_GUIDANCE_HELP

    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())  # line breaks do not matter
    assert "lung guidance, lung-fields-only input, a source adversary) changed them by more than a few points" in readme
    help_text = LUNG_GUIDANCE_HELP.lower()
    assert "cannot learn shortcuts" not in help_text
    assert "does not stop the model learning shortcuts" in help_text
    assert "recommended" not in help_text


def test_lung_guidance_tooltip_is_the_one_shown(qtbot):
    from covidgui.gui.training_setup import LUNG_GUIDANCE_HELP, SetupForm

    create_app()
    form = SetupForm(lung_model=True)
    qtbot.addWidget(form)
    assert form.lung_check.toolTip() == LUNG_GUIDANCE_HELP


class _Summary:
    ok = True
    train_counts = {"Covid": 4, "Normal": 4}
    val_counts = {"Covid": 1, "Normal": 1}
    unreadable: dict = {}


def _tab_with_an_unsaved_result(qtbot, monkeypatch):
    from covidgui.gui.training_tab import TrainingTab

    create_app()
    tab = TrainingTab()
    qtbot.addWidget(tab)
    tab.train_picker.edit.setText("/data/train")
    tab.summary, tab._summary_inputs = _Summary(), tab._inputs()
    tab.outcome = object()  # the last run's model, not saved
    started = []
    monkeypatch.setattr(tab.jobs, "train", lambda *args: started.append(args))
    monkeypatch.setattr(tab.results, "clear", lambda: None)
    return tab, started


@pytest.mark.parametrize("answer, starts", [(QMessageBox.StandardButton.No, False),
                                            (QMessageBox.StandardButton.Yes, True)])
def test_start_training_again_asks_before_discarding_an_unsaved_model(qtbot, monkeypatch, answer, starts):
    tab, started = _tab_with_an_unsaved_result(qtbot, monkeypatch)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or answer)
    tab.start_button.setEnabled(True)
    tab.start_button.click()
    assert len(asked) == 1 and "not been saved" in asked[0]
    assert bool(started) is starts
    assert tab.outcome is not None or starts  # "No" keeps the result to save


def test_start_training_after_saving_does_not_ask(qtbot, monkeypatch):
    tab, started = _tab_with_an_unsaved_result(qtbot, monkeypatch)
    tab.saved_version = object()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("asked although saved"))
    tab.start_button.setEnabled(True)
    tab.start_button.click()
    assert started


def test_the_gui_does_not_print_litert_info_on_start_up_but_keeps_warnings(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "COVIDGUI_DATA_DIR": str(tmp_path)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    # A native warning written to the process's stderr once the window is up must still show.
    script = ("import os, sys\n"
              "from PySide6.QtCore import QTimer\n"
              "from covidgui.gui import app\n"
              "made = app.create_app\n"
              "def create_app(*args):\n"
              "    qt = made(*args)\n"
              "    QTimer.singleShot(0, lambda: os.write(2, b'W0000 00:00:1.0 1 port.cc:1] native warning kept\\n'))\n"
              "    return qt\n"
              "app.create_app = create_app\n"
              "sys.exit(app.main(exit_when_ready=True))\n")
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "INFO: Created TensorFlow Lite" not in run.stderr
    assert "native warning kept" in run.stderr


def test_show_patient_details_is_the_first_row_of_the_dicom_panel(qtbot):
    from covidgui.gui.dicom_panel import DicomInfoPanel

    create_app()
    panel = DicomInfoPanel()
    qtbot.addWidget(panel)
    panel.show_info({"modality": "CR", "manufacturer": "FUJI PHOTO FILM CO. LTD."})
    panel.resize(260, 400)
    # Above the rows, so it is in view on a 768-px screen (it was below the fold, under them).
    assert panel.layout().itemAt(0).widget() is panel.reveal_check
    assert panel.reveal_check.y() < panel.fields["modality"].y()


def test_a_percent_sign_never_wraps_onto_its_own_line(qtbot):
    from types import SimpleNamespace

    from covidgui.gui.result_panel import ResultPanel

    create_app()
    panel = ResultPanel()
    qtbot.addWidget(panel)
    shown = SimpleNamespace(attention_line="Attention on lungs: 88 %",
                            lungs_only_line="Lungs only (outside blanked): Normal 98 %", caution_items=())
    panel._show_lung_fields(None, shown)
    text = panel.lung_attention_text.text()
    assert " %" not in text and "98\u00a0%" in text
