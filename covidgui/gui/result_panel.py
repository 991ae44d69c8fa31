"""The result panel: label and what it means, calibrated confidence, each class's probability, the
model that gave them, and messages."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QFrame, QLabel, QProgressBar, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

from covidgui import DISCLAIMER
# The words and colours of a result are core's: one place for the panel, the Batch table, the CLI,
# the CSV and the report (LABEL_COLOURS and percent stay importable from here, for older callers).
from covidgui.core.output.presentation import (ATTENTION_HELP, LABEL_COLOURS, LUNGS_ONLY_HELP,
                                               NEUTRAL_COLOUR, NO_RESULT_COLOUR, model_line, percent, present)
from covidgui.gui.dicom_panel import DicomInfoPanel, HeatmapLegend

__all__ = ["LABEL_COLOURS", "HeadlineLabel", "ResultPanel", "percent"]


def _bar(value: float) -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, 1000)
    bar.setValue(round(value * 1000))
    bar.setTextVisible(False)
    bar.setFixedHeight(14)
    return bar


class HeadlineLabel(QLabel):
    """The big result word(s), wrapped only between words: "Not a chest X-ray" must not break as
    "X-" / "ray". Hyphens are shown as non-breaking hyphens; :meth:`text` gives the plain text."""

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self._plain = text
        super().setText(text.replace("-", "\u2011"))

    def text(self) -> str:
        return getattr(self, "_plain", super().text())


class ResultPanel(QWidget):
    """Shows one Prediction, or a message. Emits overlay changes for the image view."""

    overlay_toggled = Signal(bool)
    # The user asked for the classifier's answer on an image the gate rejected (the new Prediction).
    classified_anyway = Signal(object)
    overlay_opacity_changed = Signal(float)
    lung_outline_toggled = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumWidth(260)
        layout = QVBoxLayout(self)

        self.file_label = QLabel("")
        self.file_label.setObjectName("fileLabel")
        self.file_label.setWordWrap(True)
        self.label = HeadlineLabel("No image")
        self.label.setObjectName("resultLabel")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        # What the label means on the film ("Pattern typical of COVID-19 pneumonia …"), under it.
        self.meaning = QLabel("")
        self.meaning.setObjectName("resultMeaning")
        self.meaning.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.meaning.setWordWrap(True)
        self.meaning.setVisible(False)
        # The model that gave the result on display (not necessarily the one loaded now).
        self.model_label = QLabel("")
        self.model_label.setObjectName("modelLabel")
        self.model_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model_label.setWordWrap(True)
        self.model_label.setVisible(False)
        self.confidence_text = QLabel("")
        self.confidence_text.setObjectName("confidenceText")
        self.confidence_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.confidence_text.setWordWrap(True)  # wraps rather than clipping in a narrow panel
        self.confidence_bar = _bar(0.0)
        self.confidence_bar.setFixedHeight(20)

        self.probabilities_box = QFrame()
        self.probabilities_layout = QFormLayout(self.probabilities_box)
        # A long class name ("Pneumonia (not COVID-19): 62.2 %") takes the row and its bar goes below,
        # rather than the name being clipped in a narrow panel.
        self.probabilities_layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)

        self.message = QLabel("")
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.overlay_check = QCheckBox("Show heatmap (Grad-CAM)")
        self.overlay_check.setChecked(True)
        self.overlay_check.setEnabled(False)
        self.overlay_check.toggled.connect(self.overlay_toggled)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(45)
        self.opacity_slider.setEnabled(False)
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.opacity_slider.valueChanged.connect(lambda v: self.overlay_opacity_changed.emit(v / 100))

        self._build_lung_widgets()

        self.anyway_button = QPushButton("Classify anyway")
        self.anyway_button.setToolTip("Show the model's answer although this image does not look like a chest X-ray")
        self.anyway_button.setVisible(False)
        self.anyway_button.clicked.connect(self._classify_anyway)
        self._shown = None  # (prediction, file name, has heatmap) on display
        self.legend = HeatmapLegend()
        self.legend.setVisible(False)
        # Cautions about the input itself (lateral view, multi-frame file, other modality).
        self.warnings = QLabel("")
        self.warnings.setObjectName("inputWarnings")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #e65100; background: #fff3e0; padding: 6px; border-radius: 4px;")
        self.warnings.setVisible(False)
        self.dicom_info = DicomInfoPanel()

        disclaimer = QLabel(DISCLAIMER)
        disclaimer.setObjectName("disclaimer")
        disclaimer.setWordWrap(True)

        layout.addWidget(self.file_label)
        layout.addSpacing(8)
        layout.addWidget(self.label)
        layout.addWidget(self.meaning)
        layout.addWidget(self.confidence_text)
        layout.addWidget(self.confidence_bar)
        layout.addWidget(self.model_label)
        layout.addSpacing(12)
        self.probabilities_title = QLabel("<b>Probability of each class</b>")
        layout.addWidget(self.probabilities_title)
        layout.addWidget(self.probabilities_box)
        layout.addWidget(self.lung_attention_text)
        layout.addWidget(self.lung_warning)
        layout.addSpacing(8)
        layout.addWidget(self.overlay_check)
        layout.addWidget(QLabel("Heatmap opacity"))
        layout.addWidget(self.opacity_slider)
        layout.addWidget(self.legend)
        layout.addWidget(self.warnings)
        layout.addWidget(self.lung_check)
        layout.addWidget(self.message)
        layout.addWidget(self.anyway_button)
        layout.addWidget(self.dicom_info)
        layout.addStretch(1)
        layout.addWidget(disclaimer)
        self.clear("Drop a chest X-ray onto the window, or use File > Open (Ctrl+O).")

    def _set_label(self, text: str, colour: str = NEUTRAL_COLOUR) -> None:
        self.label.setText(text)
        self.label.setStyleSheet(f"color: {colour};")

    def _clear_probabilities(self) -> None:
        while self.probabilities_layout.rowCount():
            self.probabilities_layout.removeRow(0)

    def clear(self, message: str = "") -> None:
        self._shown = None
        self.anyway_button.setVisible(False)
        self.file_label.setText("")
        self._set_label("No image")
        self._show_meaning(None)
        self._show_model(None)
        self.confidence_text.setText("")
        self.confidence_text.setVisible(False)  # no empty line's gap under a label without a confidence
        self.confidence_bar.setValue(0)
        self._clear_probabilities()
        self.show_input_info([], None)
        self.legend.setVisible(False)
        self.overlay_toggled.emit(False)  # no heatmap without the result it belongs to
        self._show_lung_fields(None)
        self.message.setText(message)
        self.message.setProperty("kind", "hint")
        self._repolish(self.message)

    def show_pending(self, file_name: str, text: str) -> None:
        self.clear()
        self.file_label.setText(file_name)
        self._set_label("…")
        self.message.setText(text)

    def show_prediction(self, prediction, file_name: str, has_heatmap: bool = False, card=None) -> None:
        """prediction: a core.model.Prediction, shown in the words of core.output.presentation. An
        image the gate rejected shows only the message and a "Classify anyway" button.
        card: the ModelCard of the model that made ``prediction``, named under the result."""
        shown = present(prediction)
        if shown.withheld:
            self.clear()
            self._shown = (prediction, file_name, has_heatmap, card)
            self.file_label.setText(file_name)
            self._set_label(shown.label, shown.colour)
            self._show_model(card)
            self.message.setText("\n".join(shown.notes))
            self.anyway_button.setVisible(True)
            self._show_numbers(False)  # no class probabilities for an image the model should not judge
            self.overlay_check.setEnabled(False)
            self.opacity_slider.setEnabled(False)
            self.legend.setVisible(False)
            self.overlay_toggled.emit(False)
            return
        self.anyway_button.setVisible(False)
        self._show_numbers(True)
        self._shown = (prediction, file_name, has_heatmap, card)
        self.file_label.setText(file_name)
        self._set_label(shown.label, shown.colour)
        self._show_meaning(shown.meaning)
        self._show_model(card)
        # Indeterminate: no label, so no confidence in one; the class probabilities below say it.
        self.confidence_text.setText(shown.confidence_line or "")
        self.confidence_text.setVisible(shown.confidence_line is not None)
        self.confidence_bar.setVisible(shown.confidence is not None)
        self.confidence_bar.setValue(0 if shown.confidence is None else round(prediction.confidence * 1000))
        self._clear_probabilities()
        for line in shown.probabilities:
            self.probabilities_layout.addRow(line.text, _bar(line.value))
        self.overlay_check.setEnabled(has_heatmap)
        self.opacity_slider.setEnabled(has_heatmap)
        self.overlay_toggled.emit(has_heatmap and self.overlay_check.isChecked())
        self.legend.setVisible(has_heatmap)
        self._show_lung_fields(prediction, shown)
        self.message.setText("\n".join(shown.notes))
        self.message.setProperty("kind", "hint")
        self._repolish(self.message)

    def _show_meaning(self, meaning: str | None) -> None:
        self.meaning.setText(meaning or "")
        self.meaning.setVisible(bool(meaning))

    def _show_model(self, card) -> None:
        self.model_label.setText("" if card is None else model_line(card))
        self.model_label.setVisible(card is not None)

    def _show_numbers(self, visible: bool) -> None:
        for widget in (self.confidence_bar, self.probabilities_title, self.probabilities_box):
            widget.setVisible(visible)

    def _build_lung_widgets(self) -> None:
        """Attention on lungs, its warning, and the lung-outline toggle (off when no lung model)."""
        self.lung_attention_text = QLabel("")
        self.lung_attention_text.setObjectName("lungAttention")
        self.lung_attention_text.setWordWrap(True)  # "Lungs only …: COVID-19 81 %" must not clip in a narrow panel
        self.lung_attention_text.setToolTip(f"Attention on lungs: {ATTENTION_HELP}. Lungs only: {LUNGS_ONLY_HELP}.")
        self.lung_warning = QLabel("")
        self.lung_warning.setObjectName("lungWarning")
        self.lung_warning.setWordWrap(True)
        # Each caution in its own colour (core.output.presentation): a warning bold in the caution
        # colour, a qualifier of the result plain.
        self.lung_warning.setTextFormat(Qt.TextFormat.RichText)
        self.lung_warning.setVisible(False)
        self.lung_check = QCheckBox("Show lung outline")
        self.lung_check.setChecked(True)
        self.lung_check.setEnabled(False)
        self.lung_check.toggled.connect(self.lung_outline_toggled)

    def _show_lung_fields(self, prediction, shown=None) -> None:
        """Attention on lungs, the lungs-only check and their cautions, and the outline toggle, for
        ``prediction`` (None: all off); ``shown`` is its presentation."""
        lines = [] if shown is None else [line for line in (shown.attention_line, shown.lungs_only_line) if line]
        self.lung_attention_text.setText("\n".join(lines).replace(" %", "\u00a0%"))  # "%" never wraps alone
        self.lung_attention_text.setVisible(bool(lines))
        cautions = [] if shown is None else list(shown.caution_items)
        self.lung_warning.setText("".join(
            f'<p style="color: {c.colour}; font-weight: {"bold" if c.warns else "normal"}; margin: 0 0 4px 0;">'
            f'{html.escape(c.text)}</p>' for c in cautions))
        self.lung_warning.setVisible(bool(cautions))
        has_mask = getattr(prediction, "lung_mask", None) is not None
        self.lung_check.setEnabled(has_mask)
        self.lung_outline_toggled.emit(has_mask and self.lung_check.isChecked())

    def _classify_anyway(self) -> None:
        if self._shown is not None:
            prediction, file_name, has_heatmap, card = self._shown
            anyway = prediction.classify_anyway()
            self.show_prediction(anyway, file_name, has_heatmap, card)
            self.classified_anyway.emit(anyway)  # so that an exported report says so

    def show_input_info(self, warnings: list[str], dicom: dict | None, patient=None) -> None:
        """Cautions about the input (shown above the message) and the DICOM panel (None hides it)."""
        self.warnings.setText("\n".join(f"⚠ {w}" for w in warnings))
        self.warnings.setVisible(bool(warnings))
        self.dicom_info.show_info(dicom, patient)

    def show_error(self, file_name: str, text: str) -> None:
        self.clear()
        self.file_label.setText(file_name)
        self._set_label("No result", NO_RESULT_COLOUR)
        self.message.setText(text)
        self.message.setProperty("kind", "error")
        self._repolish(self.message)

    @staticmethod
    def _repolish(widget: QWidget) -> None:
        widget.style().unpolish(widget)
        widget.style().polish(widget)
