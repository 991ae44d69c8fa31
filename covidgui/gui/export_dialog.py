"""Where to write a report, and whether it may carry the patient's identifiers."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QFileDialog, QWidget


def ask_report_destination(parent: QWidget, source: Path, has_patient: bool) -> tuple[str, bool] | None:
    """A save dialog with an "Include patient identifiers" box (off by default).

    Returns (path, include_patient), or None when the user cancels.
    """
    dialog = QFileDialog(parent, "Export report", str(source.with_name(source.stem + "-report.pdf")),
                         "PDF report (*.pdf)")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setDefaultSuffix("pdf")
    # The tick box lives in Qt's own dialog: native dialogs cannot take extra widgets.
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    include = QCheckBox("Include patient identifiers (name, ID, birth date)")
    include.setChecked(False)
    include.setEnabled(has_patient)
    layout = dialog.layout()
    if layout is not None:
        layout.addWidget(include, layout.rowCount(), 0, 1, -1)
    if not dialog.exec():
        return None
    files = dialog.selectedFiles()
    return (files[0], include.isChecked()) if files else None
