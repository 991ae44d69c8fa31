"""One image, from its file to everything a result shows, from one decode (the Image tab, classify --heatmap, report, self-test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from covidgui.core.inference.classifier import Prediction
from covidgui.core.inference.preprocess import Prepared, load_prepared, resize
from covidgui.core.io.xray import XRay
from covidgui.core.output.overlay import colorize, outline_rgba

# Display copies never need more than this many pixels per side.
MAX_DISPLAY_SIDE = 2048


@dataclass
class Analysis:
    """Everything one result needs, from one decode of the file.

    prediction: the classifier's result, exactly :meth:`Classifier.predict_file`'s (same decode, same
        model input), with its ``heatmap`` and ``lung_mask`` at the size of ``pixels`` when asked for.
    pixels: float32 (h, w) 0..1, the model's (reduced-size) decode; ``model_input`` float32 (S, S)
        0..1 is what the model saw, ``crop_box`` the region of ``pixels`` it came from.
    metadata: the file's (``XRay.metadata``): "warnings", "short_warnings", and for DICOM "dicom",
        "patient" (a PatientIdentity, whose repr hides the identifiers) and "file_levels".
    display: float32 (H, W) 0..1 greyscale for the eye, the longer side at most ``display_side``
        (same aspect ratio as ``pixels``); None when not asked for.
    overlay: uint8 RGBA (h, w, 4), the heatmap's colours at the heatmap's own resolution (a viewer
        stretches it over ``display``); lung_outline: uint8 RGBA (H, W, 4), the lung fields' outline
        drawn at display size (a line stays crisp only when drawn at the size it is shown). Either
        None when there is no heatmap, lung mask or display, or when pictures were not asked for.
    levels, view_pixels: DICOM: the file's window (``core.io.dicom.FileLevels``) and, with
        ``viewer_values``, the image in its own units normalised over the stored range, float32 (H, W) 0..1, for
        window/level beyond the file's window; else None.
    """

    path: Path
    prediction: Prediction
    pixels: np.ndarray = field(repr=False)
    model_input: np.ndarray = field(repr=False)
    crop_box: tuple[int, int, int, int]
    metadata: dict = field(default_factory=dict, repr=False)
    display: np.ndarray | None = field(default=None, repr=False)
    overlay: np.ndarray | None = field(default=None, repr=False)
    lung_outline: np.ndarray | None = field(default=None, repr=False)
    levels: object | None = None
    view_pixels: np.ndarray | None = field(default=None, repr=False)

    def display_heatmap(self) -> np.ndarray | None:
        """The heatmap at display size, float32 (H, W) 0..1 (None without heatmap or display)."""
        heat = self.prediction.heatmap
        if heat is None or self.display is None:
            return None
        return heat if heat.shape == self.display.shape else np.clip(resize(heat, self.display.shape), 0.0, 1.0)


def decode(path: str | Path, input_size: int, *, display: bool = True,
           viewer_values: bool = False, harmonise: bool = False) -> tuple[XRay, Prepared]:
    """The one decode :func:`analyse` needs: the model's reduced pixels and input, and (``display``)
    the full-size pixels of the same decode (``XRay.full_pixels``). Raises ImageLoadError.
    harmonise: the model's ``Classifier.harmonises`` (its card's preprocessing says).

    Callers that must fail fast on a bad file before the model is loaded (``covidgui report``)
    decode with this, then pass the result to :func:`analyse` as ``decoded``.
    """
    return load_prepared(path, input_size, viewer_values=viewer_values, keep_full=display, harmonise=harmonise)


def analyse(classifier, path: str | Path, *, display_side: int | None = MAX_DISPLAY_SIDE, display: bool = True,
            heatmap: bool = True, pictures: bool = True, viewer_values: bool = False,
            decoded: tuple[XRay, Prepared] | None = None) -> Analysis:
    """Decode ``path`` once and return everything its result needs (see :class:`Analysis`).

    classifier: a ``core.inference.classifier.Classifier`` (or anything with its ``input_size``
        and ``predict_xray``).
    display_side: the longest side of ``Analysis.display`` in pixels; None keeps the stored size.
    display: make the display image at all (off: ``classify --heatmap`` draws on ``pixels``).
    heatmap: make the Grad-CAM heatmap (and with the lung model, the attention on lungs).
    pictures: build the overlay and lung outline for a viewer (needs ``display``).
    viewer_values: DICOM: also keep its values in file units for window/level (``view_pixels``).
    decoded: the result of :func:`decode` with the same options, when the caller has decoded already.
    Raises ImageLoadError for a file that does not load.
    """
    xray, prepared = decoded if decoded is not None else decode(path, classifier.input_size, display=display,
                                                                viewer_values=viewer_values,
                                                                harmonise=classifier.harmonises)
    prediction = classifier.predict_xray(xray, heatmap, prepared)
    result = Analysis(Path(path), prediction, xray.pixels, prepared.input, prepared.crop_box, dict(xray.metadata))
    if display and xray.full_pixels is not None:
        result.display = _cap(xray.full_pixels, display_side).astype(np.float32, copy=False)
        result.levels = xray.metadata.get("file_levels")
        if result.levels is not None and xray.values is not None:
            result.view_pixels = result.levels.normalise(_cap(xray.values, display_side))
        if pictures:
            if prediction.heatmap is not None:
                result.overlay = colorize(prediction.heatmap)
            if prediction.lung_mask is not None:
                result.lung_outline = outline_rgba(prediction.lung_mask, result.display.shape)
    return result


def _cap(pixels: np.ndarray, side: int | None) -> np.ndarray:
    """``pixels`` (H, W) resized so that the longer side is at most ``side`` (None: as they are)."""
    h, w = pixels.shape
    scale = 1.0 if side is None else side / max(h, w)
    return pixels if scale >= 1 else resize(pixels, (round(h * scale), round(w * scale)))
