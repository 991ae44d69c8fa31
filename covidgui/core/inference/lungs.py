"""Lung fields: a small segmentation model, and what the app does with its masks.

- :class:`LungSegmenter` loads ``models/lung_segmenter`` (its inference graph ``.tflite``, see
  covidgui.core.inference.runtime; or the ``.keras`` in safe mode) and its JSON card, and turns the *shared* model input (:func:`covidgui.core.inference.preprocess.prepare`: borders cropped,
  resized, histogram-equalised, 0..1) into a lung probability map; :meth:`LungSegmenter.segment`
  returns a mask in source-image space.
- :func:`lung_attention`: the share of a heatmap's mass inside the lungs (0..1), the figure a
  clinician checks to see that the classifier looked at the lungs.
- :func:`check_lungs`: is there a plausible pair of lung fields (two components of plausible size,
  one each side of the midline, at mid height)? The input gate uses it.
- :func:`outline_rgba`: the mask's outline as an RGBA overlay for the viewer and reports.

Everything is optional: :func:`load_bundled_segmenter` returns None when the model file is absent,
and callers then leave the lung features off. TensorFlow is imported only to export the graph of a
Keras model that has none.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidgui.core.errors import CovidGUIError, ModelError
from covidgui.core.inference.preprocess import prepare, resize, to_source_space
from covidgui.core.inference.runtime import Graph, export_graph, load_keras
from covidgui.core.models.model_files import verified_companions

log = logging.getLogger(__name__)

BUNDLED_SEGMENTER_NAME = "lung_segmenter.keras"
# Below this share of heatmap mass inside the lungs the result carries a warning (its words are in
# covidgui.core.output.presentation).
LOW_ATTENTION = 0.5
NO_LUNGS_REASON = "no plausible pair of lung fields was found"

# Plausible lung fields, as shares of the prepared (border-cropped, square) model input. The 275
# hand-drawn masks span: each lung 6.7..25 % of the input, the pair 15..46 %, smaller/larger
# 0.70..1.0, centroids 0.22..0.59 down. The bounds are much wider, because children, AP films
# and figures cropped from papers frame the chest differently and a diseased lung segments
# smaller; benchmarks/lungs.py checks them against every covid-xray image and the non-X-rays.
MIN_LUNG_AREA = 0.02
MAX_LUNG_AREA = 0.40
MIN_PAIR_AREA = 0.06
MAX_PAIR_AREA = 0.65
MIN_SIZE_RATIO = 0.2  # smaller / larger lung
CENTROID_ROWS = (0.12, 0.85)
# The pair must hold most of what the model called lung: scattered blobs are not lungs.
MIN_PAIR_SHARE = 0.8


def bundled_segmenter_path() -> Path:
    """Where the bundled lung model lives (``models/lung_segmenter.keras``); it may be absent."""
    return Path(str(importlib.resources.files("covidgui.models") / BUNDLED_SEGMENTER_NAME))


class LungSegmenter:
    """A lung model: prepared inputs (N, S, S) 0..1 -> lung probability (N, S, S) 0..1."""

    def __init__(self, network, card: dict | None = None, path: Path | None = None):
        """network: the model's :class:`~covidgui.core.inference.runtime.Graph`, or a Keras model
        (its graph is exported here, with TensorFlow)."""
        self.keras_model = None  # kept when given, to save (covidgui.core.training.lung_training)
        if not isinstance(network, Graph):
            self.keras_model = network
            network = Graph(segmenter_graph(network), getattr(network, "name", "lung model"))
        self.graph = network
        self.card = dict(card or {})
        self.path = path
        self.input_size = int(self.graph.input_shape[0])
        self.threshold = float(self.card.get("threshold", 0.5))

    @classmethod
    def load(cls, path: str | Path | None = None) -> "LungSegmenter":
        """Load a lung model (its graph ``name.tflite`` when its card records one, else the
        ``.keras`` in safe mode) and the JSON card beside it.

        path: None means the bundled model. Raises ModelError when either is missing or broken.
        """
        path = Path(path) if path is not None else bundled_segmenter_path()
        if not path.is_file():
            raise ModelError(f"The lung model file {path} does not exist.")
        card_file = path.with_suffix(".json")
        try:
            card = json.loads(card_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"The lung model card {card_file.name} is missing or unreadable: {exc}") from exc
        graph_file = verified_companions(path, card).get("graph")
        if graph_file is not None:
            network = Graph(graph_file.read_bytes(), path.name)
        else:  # saved before graphs were written: made from the network (TensorFlow)
            network = load_keras(path, "lung model")
        segmenter = cls(network, card, path)
        shape, out = (segmenter.input_size, segmenter.input_size, 1), segmenter.graph.output_shapes
        if segmenter.graph.input_shape != shape or list(out.values()) != [shape]:
            raise ModelError(f"{path.name} is not a lung segmentation model (input {segmenter.graph.input_shape}, "
                             f"output {list(out.values())}).")
        return segmenter

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Prepared inputs (N, S, S) 0..1, any S -> lung probability (N, s, s) float32 0..1, where s is
        this model's input size (inputs of another size are resized first)."""
        inputs = np.asarray(inputs, dtype=np.float32)
        s = self.input_size
        if inputs.shape[1:] != (s, s):
            inputs = np.stack([resize(x, (s, s)) for x in inputs])
        return self.graph(inputs[..., np.newaxis])["lung_probability"][..., 0]

    def masks(self, inputs: np.ndarray) -> np.ndarray:
        """Prepared inputs (N, S, S) -> boolean lung masks (N, s, s) in model-input space."""
        return self.probabilities(inputs) > self.threshold

    def segment(self, pixels: np.ndarray) -> np.ndarray:
        """Greyscale pixels (H, W) 0..1 -> boolean lung mask (H, W) in source-image space."""
        prepared = prepare(pixels, self.input_size)
        prob = self.probabilities(prepared.input[np.newaxis])[0]
        return mask_to_source(prob, prepared.crop_box, pixels.shape, self.threshold)


def segmenter_graph(keras_model) -> bytes:
    """The inference graph of a lung model: x (N, S, S, 1) -> ``lung_probability`` (N, S, S, 1)."""
    return export_graph(keras_model, lambda x: {"lung_probability": keras_model(x, training=False)},
                        tuple(keras_model.input_shape[1:]))


def mask_to_source(probability: np.ndarray, crop_box, source_shape, threshold: float = 0.5) -> np.ndarray:
    """A lung probability map on the model input (any size) -> boolean mask (H, W) = source_shape.

    The probability is resized (bilinear) before thresholding, so the outline stays smooth.
    """
    return to_source_space(probability, crop_box, source_shape) > threshold


def load_bundled_segmenter() -> LungSegmenter | None:
    """The bundled lung model, or None (lung features off) when it is absent or cannot be loaded."""
    path = bundled_segmenter_path()
    if not path.is_file():
        return None
    try:
        return LungSegmenter.load(path)
    except CovidGUIError as exc:
        log.warning("lung features off: %s", exc)
        return None


def lung_attention(heatmap: np.ndarray, mask: np.ndarray) -> float | None:
    """Share of the heatmap's mass inside the lungs: sum(heat inside) / sum(heat), 0..1.

    heatmap: float (H, W) >= 0 (e.g. Grad-CAM 0..1); mask: bool (H, W) lung fields, same shape.
    Returns None when the heatmap has no mass (nothing to attribute).
    """
    heat = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    mask = np.asarray(mask, dtype=bool)
    if heat.shape != mask.shape:
        raise ValueError(f"heatmap {heat.shape} and mask {mask.shape} differ in shape")
    total = heat.sum()
    if total <= 0:
        return None
    return float(np.clip(heat[mask].sum() / total, 0.0, 1.0))


def low_attention(attention: float | None, threshold: float = LOW_ATTENTION) -> bool:
    """True when the share of attention on the lungs is known and below ``threshold``."""
    return attention is not None and attention < threshold


@dataclass(frozen=True)
class LungCheck:
    """The plausibility verdict on one mask. Areas are shares of the mask's image (0..1);
    centroids (row, column) are relative to its height and width."""

    plausible: bool
    reason: str
    areas: tuple[float, ...] = ()
    centroids: tuple[tuple[float, float], ...] = ()


def check_lungs(mask: np.ndarray) -> LungCheck:
    """Is there a plausible pair of lung fields in ``mask`` (bool (h, w), model-input space)?

    The two largest connected components must each cover 2..40 % of the image (6..65 % together,
    the smaller at least a fifth of the larger), one on each side of the vertical midline, their
    centroids between 12 % and 85 % of the height, and together hold 80 % of the lung pixels.
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    labels, count = ndimage.label(mask)
    if count < 2:
        return LungCheck(False, f"{count} lung region(s) found, two expected")
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(sizes)[::-1][:2]
    areas = tuple(float(sizes[i]) / (h * w) for i in order)
    centroids = tuple((float(r) / h, float(c) / w)
                      for r, c in ndimage.center_of_mass(mask, labels, [int(i) + 1 for i in order]))
    pair = sum(areas)

    def verdict(ok: bool, reason: str) -> LungCheck:
        return LungCheck(ok, reason, areas, centroids)

    if not all(MIN_LUNG_AREA <= a <= MAX_LUNG_AREA for a in areas):
        return verdict(False, "a lung region has an implausible size")
    if not MIN_PAIR_AREA <= pair <= MAX_PAIR_AREA or areas[1] < MIN_SIZE_RATIO * areas[0]:
        return verdict(False, "the lung regions have implausible sizes")
    if pair < MIN_PAIR_SHARE * mask.sum() / (h * w):
        return verdict(False, "the lung regions are scattered")
    cols = sorted(c for _, c in centroids)
    if not (cols[0] < 0.5 < cols[1]):
        return verdict(False, "the lung regions are not on either side of the midline")
    if not all(CENTROID_ROWS[0] <= r <= CENTROID_ROWS[1] for r, _ in centroids):
        return verdict(False, "the lung regions are not at chest height")
    return verdict(True, "two plausible lung fields")


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice overlap of two boolean masks of the same shape: 2|A∩B| / (|A|+|B|), 1.0 when both empty."""
    a = np.asarray(predicted, dtype=bool)
    b = np.asarray(truth, dtype=bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


# How far (share of the input's side, about 9 px at 224) the allowed region reaches beyond the
# segmented lungs: the lung model was trained on normal adults and can stop short of a dense
# peripheral or basal opacity, which is where COVID-19 pneumonia tends to sit. Measured on the
# bundled split: margin 0 gave 127/134 validation images right, 0.04 gave 128/134 with attention
# on lungs 80 % instead of 87-91 % (the model card records the run).
LUNG_MARGIN = 0.04


def allowed_region(probability: np.ndarray, shape: tuple[int, int], threshold: float = 0.5,
                   margin: float | None = None, plausible: bool | None = None) -> np.ndarray | None:
    """The lung fields plus ``margin`` (default LUNG_MARGIN) as bool (shape), from the lung
    model's probability map (any size); None when it shows no plausible pair of lungs.

    plausible: ``check_lungs(probability > threshold).plausible`` when the caller has it already.
    Training guides and blanks with it, and the shortcut check at inference blanks with it, so
    "inside the lungs" means the same thing in both."""
    margin = LUNG_MARGIN if margin is None else margin
    if plausible is None:
        plausible = check_lungs(probability > threshold).plausible
    if not plausible:
        return None
    mask = resize(probability, tuple(shape)) > threshold
    if margin > 0:
        from scipy import ndimage

        mask = ndimage.binary_dilation(mask, iterations=max(1, round(margin * mask.shape[0])))
    return mask


# What "blanked" means: mid-grey, the mean of a histogram-equalised input, so a blanked region
# carries no brightness signal of its own (benchmarks/lungs.py's occlusion check uses the same).
BLANK_VALUE = 0.5


def blank_outside(model_input: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The prepared input (S, S) 0..1 with everything where ``mask`` (S, S) is 0 set to mid-grey."""
    return np.where(np.asarray(mask) > 0, model_input, BLANK_VALUE).astype(np.float32)
