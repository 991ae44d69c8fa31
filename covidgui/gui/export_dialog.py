"""Where to write a report, and whether it may carry the patient's identifiers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QFileDialog, QWidget


def default_report_name(when: datetime | None = None) -> str:
    """The report's suggested file name: the time, never the image's name, which can carry the
    patient's (SMITH_JOHN_CXR.png), whatever the "Include patient details" box says."""
    return f"CovidGUI report {(when or datetime.now()):%Y-%m-%d %H%M}.pdf"


def report_dialog(parent: QWidget, source: Path, has_patient: bool) -> tuple[QFileDialog, QCheckBox]:
    """The dialog :func:`ask_report_destination` shows, and its "Include patient details" box."""
    dialog = QFileDialog(parent, "Export report", str(source.parent / default_report_name()), "PDF report (*.pdf)")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setDefaultSuffix("pdf")
    # The tick box lives in Qt's own dialog: native dialogs cannot take extra widgets.
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    # Always offered: the image's file name is an identifier too (SMITH_JOHN_CXR.png).
    include = QCheckBox("Include patient details (image file name" + ("; name, ID, birth date)" if has_patient else ")"))
    include.setChecked(False)
    layout = dialog.layout()
    if layout is not None:
        layout.addWidget(include, layout.rowCount(), 0, 1, -1)
    return dialog, include


def ask_report_destination(parent: QWidget, source: Path, has_patient: bool) -> tuple[str, bool] | None:
    """A save dialog with an "Include patient details" box (off by default): the DICOM patient
    identifiers and the image's file name go into the report only when it is ticked. The file name
    it suggests never carries the image's name (:func:`default_report_name`).

    Returns (path, include_patient), or None when the user cancels.
    """
    dialog, include = report_dialog(parent, source, has_patient)
    if not dialog.exec():
        return None
    files = dialog.selectedFiles()
    return (files[0], include.isChecked()) if files else None
