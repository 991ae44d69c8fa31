"""The image viewer with its window/level bar: a range slider, presets, invert, fit and reset.

Window/level is shown and set in the image's own units: for a DICOM file, the values after its
Modality LUT (core.dicom.FileLevels), starting from the file's window and widening up to the full
range its stored bits can hold, as DICOM viewers do; for other images (and DICOM files displayed
through a VOI LUT curve), percent of the decoded image's range. The range slider's two handles
are the window's ends (their boxes can be typed into); level and width are shown beside it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget
from superqt import QLabeledDoubleRangeSlider

from covidgui.gui.image_view import DEFAULT_LEVELS, ImageView

AS_LOADED = "As loaded (file's window)"
FULL_RANGE = "Full stored range"
AUTO = "Auto contrast (1–99 %)"
LUNGS = "Lungs (dark areas)"
MEDIASTINUM = "Mediastinum / bone (bright areas)"
# Presets: name -> (center, width) relative to the image's own window (0..1 = that window), or a
# name handled apart (as loaded, full range, auto, and those of IMAGE_PRESETS). For an image without
# a window of its own the "own window" is its full range.
PRESETS: dict[str, tuple[float, float] | None] = {
    AS_LOADED: (0.5, 1.0),
    FULL_RANGE: None,
    AUTO: None,
    LUNGS: None,
    MEDIASTINUM: None,
    "High contrast": (0.50, 0.40),
}
# Presets that window the image's own grey values as shown (percentiles, low..high), 1 = white
# whatever the photometric interpretation: the lungs are the dark part of what the film holds. A
# share of the file's window would not do: a MONOCHROME1 film's window (a CR chest, 0..30000 over
# values 800..26500) reaches far beyond its darkest pixels, and its "dark 60 %" held none of the lungs,
# which came out white. Measured on the dicom-real chest films and covid-xray: the lung fields
# span the 6th..68th percentiles of an image's grey values.
IMAGE_PRESETS: dict[str, tuple[float, float]] = {
    LUNGS: (1.0, 75.0),
    MEDIASTINUM: (40.0, 99.5),
}


def start_levels(levels=None) -> tuple[float, float]:
    """The window a new image starts at, in the view's 0..1 units: a DICOM file's own
    (core.dicom.FileLevels), else the full range."""
    return levels.to_view(*levels.window) if levels is not None else DEFAULT_LEVELS

class ViewerPanel(QWidget):
    """An :class:`ImageView` (``self.view``) above a bar of display controls."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = ImageView()
        self.levels = None  # core.dicom.FileLevels of the image shown, or None (percent units)
        # What "Auto contrast" and IMAGE_PRESETS chose for the image shown (by preset name).
        self._image_levels: dict[str, tuple[float, float] | None] = {}

        self.window_slider = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
        self.window_slider.setToolTip("Window: the values shown from black to white (drag either end, "
                                      "or the bar between them; type into the boxes)")
        self.window_slider.setMinimumWidth(160)
        self.levels_text = QLabel("")
        self.levels_text.setMinimumWidth(110)
        self.preset_box = QComboBox()
        self.preset_box.addItems(list(PRESETS))
        self.preset_box.setToolTip("Window/level presets")
        self.preset_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset_box.setMinimumContentsLength(12)
        self.invert_check = QCheckBox("Invert (I)")
        self.reset_button = QPushButton("Reset (R)")
        self.reset_button.setToolTip("Back to the image's own window (a DICOM file's window, else its full range)")
        self.fit_button = QPushButton("Fit (0)")
        self.fit_button.setToolTip("Fit the image to the window")

        # Two rows, so that the bar fits beside the result panel on a 1024-pixel screen.
        slider_row = QHBoxLayout()
        slider_row.setContentsMargins(6, 2, 6, 0)
        slider_row.addWidget(QLabel("Window"))
        slider_row.addWidget(self.window_slider, 1)
        tools = QHBoxLayout()
        tools.setContentsMargins(6, 0, 6, 2)
        tools.addWidget(self.levels_text)
        tools.addWidget(self.preset_box, 1)
        tools.addWidget(self.invert_check)
        tools.addWidget(self.reset_button)
        tools.addWidget(self.fit_button)
        hint = QLabel("Wheel: zoom · drag: pan · right-drag: window/level · display only, the model input is unchanged")
        hint.setObjectName("viewerHint")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #757575; font-size: 11px;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.view, 1)
        layout.addLayout(slider_row)
        layout.addLayout(tools)
        layout.addWidget(hint)

        self.window_slider.valueChanged.connect(self._slider_moved)
        self.preset_box.activated.connect(self._apply_preset)
        self.invert_check.toggled.connect(self.view.set_inverted)
        self.reset_button.clicked.connect(self._reset)
        self.fit_button.clicked.connect(self.view.fit)
        self.view.levels_changed.connect(self._show_levels)
        self.view.inverted_changed.connect(self.invert_check.setChecked)
        self._set_slider_range()
        self._show_levels(*self.view.levels())

    # -- the image ------------------------------------------------------------------------------
    def show_image(self, pixels, levels=None) -> None:
        """Show an image and start at its own window.

        pixels: greyscale (H, W) 0..1 as the viewer should paint it at a full-range window: for a
            DICOM file with ``levels``, ``levels.normalise(values)``; otherwise the decoded pixels.
            Or the same as ``image_view.DisplayBuffers`` made at ``start_levels(levels)`` off the GUI
            thread (the inference worker does).
        levels: core.dicom.FileLevels, or None for percent units.
        """
        self.levels = levels
        self._image_levels = {}
        self._set_slider_range()
        start = start_levels(levels)
        # A new image starts "as loaded", whatever preset the previous one had (otherwise the box
        # would compare the new levels with the old image's preset and say "Custom").
        self.preset_box.setCurrentIndex(0)
        self.view.set_image(pixels, start)

    # -- units ----------------------------------------------------------------------------------
    def _to_units(self, center: float, width: float) -> tuple[float, float]:
        """The view's 0..1 levels -> (center, width) in the units the bar shows."""
        if self.levels is not None:
            return self.levels.from_view(center, width)
        return center * 100.0, width * 100.0

    def _from_units(self, center: float, width: float) -> tuple[float, float]:
        if self.levels is not None:
            return self.levels.to_view(center, width)
        return center / 100.0, width / 100.0

    def _set_slider_range(self) -> None:
        low, high = self.levels.stored_range if self.levels is not None else (0.0, 100.0)
        self.window_slider.blockSignals(True)
        # Whole values for files whose range is wide (stored integers); decimals for narrow ones.
        self.window_slider.setDecimals(0 if high - low >= 100 else 2)
        self.window_slider.setRange(low, high)
        self.window_slider.setSingleStep(max((high - low) / 1000, 1e-3))
        self.window_slider.blockSignals(False)

    def window_in_units(self) -> tuple[float, float]:
        """(center, width) of the window shown, in the bar's units (file units or percent)."""
        return self._to_units(*self.view.levels())

    def set_window_in_units(self, center: float, width: float) -> None:
        self.view.set_levels(*self._from_units(center, width))

    # -- bar <-> view ---------------------------------------------------------------------------
    def _slider_moved(self, ends) -> None:
        low, high = sorted(float(v) for v in ends)
        if high <= low:
            return
        self.set_window_in_units((low + high) / 2, high - low)

    def _show_levels(self, center: float, width: float) -> None:
        c, w = self._to_units(center, width)
        low, high = self.window_slider.minimum(), self.window_slider.maximum()
        self.window_slider.blockSignals(True)
        self.window_slider.setValue((max(low, c - w / 2), min(high, c + w / 2)))
        self.window_slider.blockSignals(False)
        if self.levels is not None:
            unit = f" {self.levels.units}" if self.levels.units else ""
            self.levels_text.setText(f"L {c:.0f}  W {w:.0f}{unit}" if w >= 10 else f"L {c:.3g}  W {w:.3g}{unit}")
        else:
            self.levels_text.setText(f"L {c:.0f} %  W {w:.0f} %")
        # The preset box names a preset only while its levels are the ones shown.
        index = self.preset_box.currentIndex()
        if index >= 0:
            if not self._same(self._preset_levels(self.preset_box.itemText(index)), (center, width)):
                self.preset_box.setCurrentIndex(-1)
                self.preset_box.setPlaceholderText("Custom")
        elif self._same(self._preset_levels(AS_LOADED), (center, width)):
            self.preset_box.setCurrentIndex(0)  # back at the image's own window (R, or a drag back)

    @staticmethod
    def _same(a, b) -> bool:
        return a is not None and abs(a[0] - b[0]) <= 1e-6 and abs(a[1] - b[1]) <= 1e-6

    def _preset_levels(self, name: str) -> tuple[float, float] | None:
        """A preset's levels in the view's 0..1 units for the image shown (None: not known)."""
        if name == FULL_RANGE:
            return DEFAULT_LEVELS
        if name == AUTO or name in IMAGE_PRESETS:
            return self._image_levels.get(name)
        relative = PRESETS.get(name)
        if relative is None:
            return None
        own_center, own_width = self.view.default_levels()
        return own_center - own_width / 2 + relative[0] * own_width, relative[1] * own_width

    def _apply_preset(self, index: int) -> None:
        name = self.preset_box.itemText(index)
        self.preset_box.setCurrentIndex(index)  # before the levels change, so the box keeps the name
        if name == AUTO:
            self._image_levels[name] = self.view.auto_levels_for_image()
        elif name in IMAGE_PRESETS:
            self._image_levels[name] = self.view.auto_levels_for_image(*IMAGE_PRESETS[name])
        levels = self._preset_levels(name)
        if levels is not None:
            self.view.set_levels(*levels)
        self.preset_box.setCurrentIndex(index)

    def _reset(self) -> None:
        self.preset_box.setCurrentIndex(0)
        self.view.reset_levels()
