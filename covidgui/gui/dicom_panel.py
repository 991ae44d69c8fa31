"""The DICOM information panel and the heatmap's colour scale, both shown beside the result."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from covidgui.core.output.overlay import colorize
from covidgui.gui.image_view import rgba_to_qimage

HIDDEN = "••••••"
# (label, key in core.dicom.dicom_info), in the order a reader looks for them.
DICOM_ROWS = [("Modality", "modality"), ("View position", "view_position"), ("Study date", "study_date"),
              ("Body part", "body_part"), ("Manufacturer", "manufacturer"), ("Compression", "transfer_syntax")]


class DicomInfoPanel(QGroupBox):
    """Modality, view, study date, body part, manufacturer; patient identifiers behind a tick box.

    Hidden for files that are not DICOM. Identifiers are shown only while "Show patient details"
    is ticked, and are never logged.
    """

    def __init__(self, parent=None):
        super().__init__("DICOM information", parent)
        self._patient = None
        form = QFormLayout()
        self.fields: dict[str, QLabel] = {}
        for label, key in DICOM_ROWS:
            value = QLabel("")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)
            self.fields[key] = value
            form.addRow(label + ":", value)
        self.patient_fields: dict[str, QLabel] = {}
        for label in ("Patient name", "Patient ID", "Birth date"):
            value = QLabel(HIDDEN)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.patient_fields[label] = value
            form.addRow(label + ":", value)
        self.reveal_check = QCheckBox("Show patient details")
        self.reveal_check.setToolTip("Patient identifiers stay hidden unless you ask; they are never logged.")
        self.reveal_check.toggled.connect(self._show_patient)
        layout = QVBoxLayout(self)
        # First in the panel, not under its rows: on a 768-px screen the panel's end is below the fold.
        layout.addWidget(self.reveal_check)
        layout.addLayout(form)
        self.setVisible(False)

    def show_info(self, info: dict | None, patient=None) -> None:
        """info: core.dicom.dicom_info(...) or None for a non-DICOM file; patient: PatientIdentity."""
        self.reveal_check.setChecked(False)  # each new file starts hidden
        self._patient = patient
        if not info:
            self.setVisible(False)
            return
        for key, label in self.fields.items():
            label.setText(str(info.get(key) or "—"))
        self._show_patient(False)
        self.setVisible(True)

    def _show_patient(self, revealed: bool) -> None:
        rows = dict(self._patient.as_rows()) if self._patient is not None else {}
        for label, field in self.patient_fields.items():
            field.setText((rows.get(label) or "—") if revealed else HIDDEN)


class HeatmapLegend(QWidget):
    """The overlay's colour scale: low attention (transparent) to high attention (red)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.bar = QLabel()
        self.bar.setFixedHeight(14)
        self.bar.setMinimumWidth(120)
        self.bar.setScaledContents(True)
        self.bar.setToolTip("Heatmap colours: where the model looked most (red) and least (blue/none)")
        low, high = QLabel("low"), QLabel("high attention")
        for label in (low, high):
            label.setStyleSheet("color: #546e7a; font-size: 11px;")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(low)
        row.addWidget(self.bar, 1)
        row.addWidget(high)
        self._drawn = False

    def showEvent(self, event):
        # Drawn on first show, so that matplotlib (its colour maps) is not imported at start-up.
        if not self._drawn:
            self.bar.setPixmap(QPixmap.fromImage(rgba_to_qimage(legend_rgba())))
            self._drawn = True
        super().showEvent(event)


def legend_rgba(width: int = 256, height: int = 14, backdrop: int = 90) -> np.ndarray:
    """uint8 (height, width, 4): the overlay colours from 0 to 1, over a grey as they appear on an X-ray."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    rgba = colorize(ramp).astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0
    rgb = rgba[..., :3] * alpha + backdrop * (1 - alpha)
    return np.concatenate([rgb, np.full_like(alpha, 255)], axis=-1).astype(np.uint8)
