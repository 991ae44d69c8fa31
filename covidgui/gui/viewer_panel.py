"""The image viewer with its window/level bar: sliders, presets, invert, fit and reset."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout,
                               QWidget)

from covidgui.gui.image_view import DEFAULT_LEVELS, ImageView

# Presets in the decoded image's 0..1 units (the file's own window is already applied to it):
# name -> (center, width), or None for the image's 1st..99th percentile.
PRESETS: dict[str, tuple[float, float] | None] = {
    "Full range (as loaded)": DEFAULT_LEVELS,
    "Auto contrast (1–99 %)": None,
    "Lungs (dark areas)": (0.30, 0.60),
    "Mediastinum / bone (bright areas)": (0.70, 0.60),
    "High contrast": (0.50, 0.40),
}
_SLIDER_STEPS = 1000


def _slider(tooltip: str, low: int, high: int) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(low, high)
    slider.setToolTip(tooltip)
    slider.setMinimumWidth(90)
    return slider


class ViewerPanel(QWidget):
    """An :class:`ImageView` (``self.view``) above a bar of display controls."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = ImageView()
        self.level_slider = _slider("Level (window centre): brightness", 0, _SLIDER_STEPS)
        self.width_slider = _slider("Window width: contrast (narrower = more contrast)", 4, 2 * _SLIDER_STEPS)
        self.levels_text = QLabel("")
        self.levels_text.setMinimumWidth(120)
        self.preset_box = QComboBox()
        self.preset_box.addItems(list(PRESETS))
        self.preset_box.setToolTip("Window/level presets")
        self.invert_check = QCheckBox("Invert (I)")
        self.reset_button = QPushButton("Reset (R)")
        self.reset_button.setToolTip("Back to the full range of the image as loaded")
        self.fit_button = QPushButton("Fit (0)")
        self.fit_button.setToolTip("Fit the image to the window")

        bar = QHBoxLayout()
        bar.setContentsMargins(6, 2, 6, 2)
        bar.addWidget(QLabel("Level"))
        bar.addWidget(self.level_slider, 1)
        bar.addWidget(QLabel("Width"))
        bar.addWidget(self.width_slider, 1)
        bar.addWidget(self.levels_text)
        bar.addWidget(self.preset_box)
        bar.addWidget(self.invert_check)
        bar.addWidget(self.reset_button)
        bar.addWidget(self.fit_button)
        hint = QLabel("Wheel: zoom · drag: pan · right-drag: window/level · display only, the model input is unchanged")
        hint.setObjectName("viewerHint")
        hint.setStyleSheet("color: #757575; font-size: 11px;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.view, 1)
        layout.addLayout(bar)
        layout.addWidget(hint)

        self.level_slider.valueChanged.connect(self._sliders_moved)
        self.width_slider.valueChanged.connect(self._sliders_moved)
        self.preset_box.activated.connect(self._apply_preset)
        self.invert_check.toggled.connect(self.view.set_inverted)
        self.reset_button.clicked.connect(self._reset)
        self.fit_button.clicked.connect(self.view.fit)
        self._auto_levels: tuple[float, float] | None = None  # what "Auto contrast" chose last
        self.view.levels_changed.connect(self._show_levels)
        self.view.inverted_changed.connect(self.invert_check.setChecked)
        self._show_levels(*self.view.levels())

    def _sliders_moved(self) -> None:
        self.view.set_levels(self.level_slider.value() / _SLIDER_STEPS, self.width_slider.value() / _SLIDER_STEPS)

    def _show_levels(self, center: float, width: float) -> None:
        for slider, value in ((self.level_slider, center), (self.width_slider, width)):
            slider.blockSignals(True)
            slider.setValue(round(value * _SLIDER_STEPS))
            slider.blockSignals(False)
        self.levels_text.setText(f"L {center * 100:.0f} %  W {width * 100:.0f} %")
        # The preset box names a preset only while its levels are the ones shown.
        name = self.preset_box.currentText()
        preset = self._auto_levels if name and PRESETS.get(name) is None else PRESETS.get(name)
        if preset is not None and (abs(preset[0] - center) > 1e-6 or abs(preset[1] - width) > 1e-6):
            self.preset_box.setCurrentIndex(-1)
            self.preset_box.setPlaceholderText("Custom")
        elif self.preset_box.currentIndex() == -1 and (center, width) == DEFAULT_LEVELS:
            self.preset_box.setCurrentIndex(0)  # a new image starts at the full range

    def _apply_preset(self, index: int) -> None:
        levels = PRESETS[self.preset_box.itemText(index)]
        if levels is None:
            self.view.auto_levels()
            self._auto_levels = self.view.levels()
        else:
            self.view.set_levels(*levels)
        self.preset_box.setCurrentIndex(index)

    def _reset(self) -> None:
        self.view.reset_levels()
        self.preset_box.setCurrentIndex(0)
