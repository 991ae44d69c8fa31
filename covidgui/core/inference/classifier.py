"""Loading a classifier with its model card, and predicting on images.

The classifier runs as its exported inference graph (LiteRT, covidgui.core.inference.runtime), so
loading and running a model imports no TensorFlow; TensorFlow is imported only to export the graph
of a Keras model that has none yet (one just trained, or one saved before graphs were written).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from covidgui.core.errors import ModelError
from covidgui.core.inference.keras_env import quiet_tensorflow
from covidgui.core.inference.gate import InputGate, gate_path
from covidgui.core.inference.lungs import (allowed_region, blank_outside, check_lungs, load_bundled_segmenter,
                                           lung_attention, mask_to_source)
from covidgui.core.inference.runtime import Graph, export_graph, load_keras
from covidgui.core.inference.views import averaged_logits, card_views, smaller_view_reader
from covidgui.core.io.xray import XRay
from covidgui.core.models.model_files import bundled_model_path, verified_companions
from covidgui.core.models.modelcard import ModelCard, read_card
from covidgui.core.inference.preprocess import Prepared, load_prepared, prepare, resize, to_source_space

INDETERMINATE = "Indeterminate"
NOT_XRAY = "Not a chest X-ray"
# Shown wherever a model without an input gate classifies (window, classify, report).
NO_INPUT_CHECK_WARNING = ("No input check: this model has no input gate, so it labels any picture (a photograph, "
                          "a document) COVID-19 or Normal. Use it on frontal chest X-rays only.")
# The convolution whose activations Grad-CAM weighs, and the pooled features the input gate
# models; every model we build names them so.
HEATMAP_LAYER = "last_conv"
EMBEDDING_LAYER = "embedding"
# The shortcut check: the image is classified again with everything outside the lungs blanked.
# When its label differs, or the probability of the shown class falls by more than this, the
# result "depends on what lies outside the lungs".
# (Its words, and every other word of a result, are in covidgui.core.output.presentation.)
OUTSIDE_LUNGS_SHIFT = 0.25


@dataclass
class Prediction:
    """One image's result.

    label: what to show: the display name of the predicted class, "Indeterminate" when the
        calibrated confidence falls inside the model card's indeterminate band, or
        "Not a chest X-ray" when the input gate rejected the image.
    class_label: the label the classifier gives, whatever the gate said ("classify anyway").
    class_name: the predicted class (a model-card class name), even when indeterminate.
    confidence: calibrated probability of ``class_name``, 0..1.
    probabilities: display name -> calibrated probability; they sum to 1.
    not_xray: the input gate's verdict; gate_score: its worst score over the threshold (> 1 rejects).
    heatmap: float32 (H, W) of the source image, 0..1, or None when not asked for.
    lungs_plausible: whether the lung model found a plausible pair of lung fields (None: no lung
        model); reported, and it rejects the image only when ``Classifier.LUNG_GATE`` is on.
    lung_mask: bool (H, W) of the source image, the segmented lung fields (predict_xray/predict_file
        only), or None.
    lung_attention: share of the heatmap's mass inside the lung fields, 0..1, measured on the model
        input; set when the lung model is loaded and a heatmap was made (single images with a
        heatmap, batches), else None.
    lung_only_label, lung_only_confidence: the shortcut check, the label (display name) and its
        calibrated probability when the image is classified again with everything outside the
        lung fields blanked; None without a lung model or plausible lungs.
    depends_on_outside_lungs: the check fired: the lung-only label differs, or the shown class's
        probability fell by more than OUTSIDE_LUNGS_SHIFT; None when the check did not run.
    warnings: short notes about the input file (lateral view, multi-frame, modality or body part
        other than a chest radiograph: ``XRay.metadata["short_warnings"]``), empty when none.
    """

    label: str
    class_label: str
    class_name: str
    confidence: float
    probabilities: dict[str, float]
    indeterminate: bool = False
    not_xray: bool = False
    gate_score: float | None = None
    path: Path | None = None
    heatmap: np.ndarray | None = field(default=None, repr=False)
    lungs_plausible: bool | None = None
    lung_mask: np.ndarray | None = field(default=None, repr=False)
    lung_attention: float | None = None
    lung_only_label: str | None = None
    lung_only_confidence: float | None = None
    depends_on_outside_lungs: bool | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def withheld(self) -> bool:
        """The gate rejected the image and nobody asked to classify it anyway: no class result or
        probability may be shown (the numbers are those of an image the model should not judge)."""
        return self.not_xray and self.label == NOT_XRAY

    @property
    def classified_anyway(self) -> bool:
        """The gate rejected the image but the user asked for the classifier's answer."""
        return self.not_xray and self.label != NOT_XRAY

    def classify_anyway(self) -> "Prediction":
        """The same result with the gate overridden: the classifier's label is shown."""
        return replace(self, label=self.class_label)

    def to_dict(self) -> dict:
        """JSON-ready fields (no heatmap). A withheld image (see :attr:`withheld`) has confidence,
        probabilities, lungs found, lung attention and the lung-only answer None; an indeterminate one has confidence None (no
        confidence for a label it did not give; its probabilities are there), as every view."""
        return {
            "path": str(self.path) if self.path is not None else None,
            "label": self.label,
            "confidence": None if self.withheld or self.indeterminate else round(self.confidence, 4),
            "probabilities": None if self.withheld else {k: round(v, 4) for k, v in self.probabilities.items()},
            "indeterminate": self.indeterminate,
            "not_xray": self.not_xray,
            "gate_score": None if self.gate_score is None else round(self.gate_score, 3),
            # The lung model's verdicts are model-derived too: on a withheld image (a landscape, the
            # moon) "lungs found" would mislead, so they are withheld with the rest.
            "lungs_found": None if self.withheld else self.lungs_plausible,
            "lung_attention": None if self.withheld or self.lung_attention is None else round(self.lung_attention, 4),
            # The shortcut check is a class answer too: withheld with the rest for a rejected image.
            "lung_only_label": None if self.withheld else self.lung_only_label,
            "lung_only_confidence": (None if self.withheld or self.lung_only_confidence is None
                                     else round(self.lung_only_confidence, 4)),
            "depends_on_outside_lungs": None if self.withheld else self.depends_on_outside_lungs,
            "classified_anyway": self.classified_anyway,
            "warnings": list(self.warnings),
        }


def softmax(logits: np.ndarray, temperature: float = 1.0, bias=None) -> np.ndarray:
    """Row-wise softmax of logits (N, C) divided by ``temperature``, plus ``bias`` (C,) when given;
    rows sum to 1."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    if bias is not None:
        z = z + np.asarray(bias, dtype=np.float64)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def classifier_graph(keras_model, views: tuple[str, ...] = ()) -> bytes:
    """The inference graph of a classifier we build (covidgui.core.training.train.build_classifier):
    x (N, S, S, 1) 0..1 -> ``logits`` (N, C), ``features`` (N, K: the pooled features the input
    gate models), ``maps`` (N, h, w, K: the final feature maps the pooling reads) and
    ``cam_weights`` (N, C, K: each class's Grad-CAM channel weights, see :meth:`Classifier.gradcam`).
    ``views``: test-time views (covidgui.core.inference.views) whose logits are averaged with the
    film's; the other outputs are the film's own.

    The head is pooling -> dropout -> dense, so the gradient of a class score with respect to the
    feature maps is the same at every pixel and for every image: its dense weights over the map's
    area. The weights are therefore computed here, exactly, rather than by a gradient tape (whose
    operations LiteRT cannot run). Raises ModelError for a network without that head.
    """
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    try:
        pooling = keras_model.get_layer(EMBEDDING_LAYER)
    except ValueError as exc:
        raise ModelError(f"The model {keras_model.name} has no layer named {EMBEDDING_LAYER!r}; "
                         "CovidGUI cannot run it.") from exc
    head = keras_model.layers[keras_model.layers.index(pooling) + 1:]
    dense = head[-1] if head else None
    if (not isinstance(pooling, keras.layers.GlobalAveragePooling2D) or not isinstance(dense, keras.layers.Dense)
            or dense.activation is not keras.activations.linear
            or not all(isinstance(layer, keras.layers.Dropout) for layer in head[:-1])):
        raise ModelError(f"The model {keras_model.name} does not end in pooling, dropout and a dense layer of "
                         "logits; CovidGUI cannot explain it.")
    kernel = np.asarray(dense.kernel, dtype=np.float64)  # (K, C)
    n_classes = kernel.shape[1]
    # Score of class c: its logit minus the mean of the others (see Classifier.gradcam).
    others = (kernel.sum(axis=1, keepdims=True) - kernel) / max(n_classes - 1, 1)
    h, w = pooling.input.shape[1:3]
    weights = tf.constant(((kernel - others) / (h * w)).T[np.newaxis], tf.float32)  # (1, C, K)
    outputs = keras.Model(keras_model.inputs, [keras_model.output, pooling.output, pooling.input])
    any_size = smaller_view_reader(keras_model, views)  # None: every view has the film's size

    def serve(x):
        # One pass over the films and their views of the film's size (the films' rows first), one
        # more per view of another size.
        logits, (features, maps) = averaged_logits(lambda batch: outputs(batch, training=False), x, views,
                                                   any_size)
        return {"logits": logits, "features": features, "maps": maps,
                "cam_weights": tf.zeros_like(logits[:, :1])[:, :, tf.newaxis] + weights}

    return export_graph(keras_model, serve, tuple(keras_model.input_shape[1:]),
                        also_track=(any_size,) if any_size is not None else ())


class Classifier:
    """A classifier's inference graph, its model card and (when present) its input gate and the
    lung model. Build with :meth:`load`, or from a Keras model just trained."""

    # Whether an image without a plausible pair of lung fields is "Not a chest X-ray" (when a lung
    # model is loaded). Off: benchmarks/lungs.py measured that the lung check rejects no non-X-ray
    # the model gate lets through (49/49 either way) but adds 2 false rejections among the 224
    # covid-xray/Train images. It is still run and reported ("lungs_found").
    LUNG_GATE = False

    def __init__(self, network, card: ModelCard, path: Path | None = None, gate=None, lungs=None):
        """network: the model's :class:`~covidgui.core.inference.runtime.Graph`, or a Keras model
        (its graph is exported here, with TensorFlow)."""
        self._keras_model = None
        if not isinstance(network, Graph):
            self._keras_model = network
            network = Graph(classifier_graph(network, card_views(card)), getattr(network, "name", "model"))
        self.graph = network
        # The lung segmenter (covidgui.core.inference.lungs.LungSegmenter) or None: lung features off.
        self.lungs = lungs
        self.card = card
        self.path = path
        self.gate = gate
        outputs = self.graph.output_shapes["logits"][-1]
        if outputs != len(card.classes):
            raise ModelError(f"{self.graph.name} has {outputs} outputs but its card names {len(card.classes)} classes.")
        # A model trained on lung fields alone (card preprocessing "lung_mask"): its inputs are
        # blanked outside the lungs before every pass, as in training.
        self.masks_lungs = bool(card.preprocessing.get("lung_mask"))

    @property
    def harmonises(self) -> bool:
        """A model trained on storage-harmonised images gets them at inference too (its card says)."""
        return self.card.harmonises_storage

    @property
    def keras_model(self):
        """The Keras model (to save or train further): the one given, else loaded from
        :attr:`path` (imports TensorFlow)."""
        if self._keras_model is None:
            if self.path is None:
                raise ModelError("This classifier has no Keras model and no file to load it from.")
            self._keras_model = load_keras(self.path)
        return self._keras_model

    @classmethod
    def load(cls, path: str | Path | None = None, lungs: bool = True) -> "Classifier":
        """Load a model (its inference graph ``name.tflite``, or the ``.keras`` in safe mode, no
        code from the file, when it has none), the card beside it and, when there is one, its
        input gate (``name.gate.npz``).

        path: the ``.keras`` model file; None means the bundled model.
        lungs: also load the bundled lung segmenter when it is present (lung features off if not).
        Raises ModelError when the file or its card is missing or does not load.
        """
        path = Path(path) if path is not None else bundled_model_path()
        if not path.is_file():
            raise ModelError(f"The model file {path} does not exist.")
        card = read_card(path)
        # The card records the digest of the model, its graph and its gate: a missing or foreign
        # companion is refused.
        companions = verified_companions(path, card)
        if companions.get("graph") is not None:
            network = Graph(companions["graph"].read_bytes(), path.name)
        else:  # saved before graphs were written: made from the network (TensorFlow)
            network = load_keras(path)
        classifier = cls(network, card, path)
        if companions.get("gate") is not None:
            try:
                gate = InputGate.load(companions["gate"])
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"The input gate {gate_path(path).name} cannot be read: {exc}") from exc
            features = classifier.graph.output_shapes["features"][-1]
            if gate.feature_mean.shape != (features,):
                raise ModelError(f"The input gate {gate_path(path).name} does not belong to {path.name} "
                                 f"(it models {gate.feature_mean.shape[0]} features, the model has {features}).")
            classifier.gate = gate
        if lungs:
            classifier.lungs = load_bundled_segmenter()
        return classifier

    @property
    def input_size(self) -> int:
        return self.card.input_size

    @property
    def input_check_warning(self) -> str | None:
        """:data:`NO_INPUT_CHECK_WARNING` when this model has no input gate, else None."""
        return NO_INPUT_CHECK_WARNING if self.gate is None else None

    def prepare(self, pixels: np.ndarray) -> Prepared:
        """Greyscale pixels (H, W) 0..1 -> this model's input (the shared preprocessing)."""
        return prepare(pixels, self.input_size, harmonise=self.harmonises)

    def forward(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prepared inputs (N, S, S) 0..1 -> (logits (N, C) float64, pooled features (N, F))."""
        return self._explain(inputs)[:2]

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """Raw outputs for prepared inputs (N, S, S) 0..1 -> (N, C) float64 logits."""
        return self.forward(inputs)[0]

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (N, C) for prepared inputs (N, S, S); rows sum to 1."""
        return self.calibrated(self.logits(inputs))

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """(N, C) calibrated probabilities of logits (N, C): the card's temperature, then its
        per-class logit offsets (``logit_bias``, fitted with the temperature on the calibration
        films of a source that holds both classes; none: 0), which move the decision threshold."""
        return softmax(logits, self.card.temperature, self.card.logit_bias)

    def predict_inputs(self, inputs: np.ndarray, colourfulness=None, paths=None,
                       lung_attention: bool = False) -> list[Prediction]:
        """Predictions for prepared inputs (N, S, S), with the gate's verdict when there is a gate.

        colourfulness: (N,) of the sources (``XRay.metadata["colourfulness"]``), 0 when unknown.
        lung_attention: also make each input's Grad-CAM and measure its attention on the lungs
            (when the lung model is loaded). The Grad-CAM comes from the same graph pass as the
            logits, so this costs a batch about 2 % (benchmarks/batch.py); evaluation skips it.
        """
        explain = lung_attention and self.lungs is not None
        results, lung_maps, cams = self._predict_inputs(inputs, colourfulness, paths, explain)
        if explain:
            for result, cam, lung_map in zip(results, cams, lung_maps):
                result.lung_attention = self._lung_attention(cam, lung_map)
        return results

    def _predict_inputs(self, inputs, colourfulness=None, paths=None, explain: bool = False):
        """(predictions, lung probability maps (N, s, s) on the model input or None, and with
        ``explain`` the Grad-CAM (N, S, S) of each prediction's class, else None)."""
        cams = None
        n = len(inputs)
        lung_maps, plausible, blanked, chosen = None, [None] * n, None, []
        if self.lungs is not None:
            lung_maps = self.lungs.probabilities(inputs)
            plausible = [check_lungs(m > self.lungs.threshold).plausible for m in lung_maps]
            blanked, chosen = self._lungs_only(inputs, lung_maps, plausible)
        elif self.masks_lungs:
            raise ModelError("This model decides from the lung fields alone and needs the lung model "
                             "(models/lung_segmenter.keras), which is missing.")
        if self.masks_lungs:
            inputs = blanked
        if explain:  # one pass gives the logits and the Grad-CAM of every class
            logits, features, activations, weights = self._explain(inputs)
            cams = self._cams(activations, weights, np.argmax(logits, axis=1), np.shape(inputs)[1:])
        else:
            logits, features = self.forward(inputs)
        probs = self.calibrated(logits)
        ratios = [None] * n
        if self.gate is not None:
            colour = np.zeros(n) if colourfulness is None else np.asarray(colourfulness, dtype=float)
            ratios = self.gate.accepts(inputs, features, colour)[1]
        paths = paths if paths is not None else [None] * n
        results = [self.prediction_from(p, r, path, ok) for p, r, path, ok in zip(probs, ratios, paths, plausible)]
        if chosen:
            self._check_outside_lungs(probs, blanked, chosen, results)
        return results, lung_maps, cams

    def _lungs_only(self, inputs, lung_maps, plausible) -> tuple[np.ndarray, list[int]]:
        """(the inputs (N, S, S) with everything outside each one's lung fields blanked, the indices
        of the inputs that had plausible lungs; the others are returned unchanged).
        plausible: each map's lung check (already run: not run twice)."""
        inputs = np.array(inputs, dtype=np.float32)
        chosen = []
        for i, (lung_map, ok) in enumerate(zip(lung_maps, plausible)):
            region = allowed_region(lung_map, inputs.shape[1:], self.lungs.threshold, plausible=ok)
            if region is not None:
                inputs[i] = blank_outside(inputs[i], region)
                chosen.append(i)
        return inputs, chosen

    def _check_outside_lungs(self, probs: np.ndarray, blanked: np.ndarray, chosen: list[int],
                             results: list[Prediction]) -> None:
        """The shortcut check (fills the lung_only_* and depends_on_outside_lungs of the ``chosen``
        results): their inputs with everything outside the lung fields blanked, in one more pass."""
        # A model that masks its inputs already saw only the lungs: its answer is the lungs-only one.
        lung_only = probs[chosen] if self.masks_lungs else self.calibrated(self.logits(blanked[chosen]))
        for i, row in zip(chosen, lung_only):
            shown = int(np.argmax(probs[i]))
            top = int(np.argmax(row))
            result = results[i]
            result.lung_only_label = self.card.display_name(self.card.classes[top])
            result.lung_only_confidence = float(row[top])
            result.depends_on_outside_lungs = bool(top != shown or probs[i][shown] - row[shown] > OUTSIDE_LUNGS_SHIFT)

    def _lung_attention(self, cam: np.ndarray, lung_map: np.ndarray) -> float | None:
        """Attention on lungs, measured on the model input (what the model saw): the Grad-CAM
        (S, S) against the lung probability map resized to it and thresholded. The single view
        and the batch both measure here, so one image gets one figure whichever path it takes."""
        return lung_attention(cam, resize(lung_map, cam.shape) > self.lungs.threshold)

    def prediction_from(self, probs: np.ndarray, gate_score: float | None = None,
                        path: Path | None = None, lungs_plausible: bool | None = None) -> Prediction:
        """Turn one row of calibrated probabilities (C,) into a Prediction.

        lungs_plausible: the lung check's verdict (None: not run); False rejects the image too.
        """
        card = self.card
        idx = int(np.argmax(probs))
        confidence = float(probs[idx])
        low, high = card.indeterminate_band
        # With two classes the top probability is >= 0.5, so the band's upper edge is what counts;
        # the lower edge serves models with more classes.
        indeterminate = low <= confidence < high
        class_name = card.classes[idx]
        class_label = INDETERMINATE if indeterminate else card.display_name(class_name)
        # The lung check rejects only when LUNG_GATE is on (see its comment); it is reported either way.
        not_xray = bool(gate_score is not None and gate_score > 1.0) or (self.LUNG_GATE and lungs_plausible is False)
        return Prediction(
            label=NOT_XRAY if not_xray else class_label,
            class_label=class_label,
            class_name=class_name,
            confidence=confidence,
            probabilities={card.display_name(c): float(p) for c, p in zip(card.classes, probs)},
            indeterminate=indeterminate,
            not_xray=not_xray,
            gate_score=None if gate_score is None else float(gate_score),
            path=path,
            lungs_plausible=lungs_plausible,
        )

    def predict_xray(self, xray: XRay, heatmap: bool = False, prepared: Prepared | None = None) -> Prediction:
        """Classify one decoded image (see :func:`covidgui.core.io.images.load_xray`); ``prepared``:
        its model input when already made (:func:`~covidgui.core.inference.preprocess.load_prepared`)."""
        result = self.predict_pixels(xray.pixels, xray.path, heatmap, xray.metadata.get("colourfulness", 0.0),
                                     prepared)
        result.warnings = list(xray.metadata.get("short_warnings", []))
        return result

    def predict_pixels(self, pixels: np.ndarray, path: Path | None = None, heatmap: bool = False,
                       colourfulness: float = 0.0, prepared: Prepared | None = None) -> Prediction:
        """Classify greyscale pixels (H, W) 0..1 as given; ``heatmap`` (H, W) when asked for, and
        the lung mask (and attention on lungs, with a heatmap) when the segmenter is loaded.
        prepared: ``self.prepare(pixels)`` when the caller has it already."""
        prepared = prepared if prepared is not None else self.prepare(pixels)
        results, lung_maps, cams = self._predict_inputs(prepared.input[np.newaxis], [colourfulness], [path], heatmap)
        result = results[0]
        cam = cams[0] if heatmap else None
        if cam is not None:
            result.heatmap = to_source_space(cam, prepared.crop_box, pixels.shape)
        if lung_maps is not None:
            result.lung_mask = mask_to_source(lung_maps[0], prepared.crop_box, pixels.shape, self.lungs.threshold)
            if cam is not None:
                result.lung_attention = self._lung_attention(cam, lung_maps[0])
        return result

    def predict_file(self, path: str | Path, heatmap: bool = False) -> Prediction:
        """Load and classify one file; raises ImageLoadError for a bad file.

        The file is decoded at reduced size (JPEG draft mode) by
        :func:`~covidgui.core.inference.preprocess.load_prepared`, exactly as in training and
        batches, so one image gets one result whichever path it takes; the heatmap then has the
        reduced image's shape (same aspect ratio as the source). The app's single-image path,
        with the display image and pictures, is :func:`covidgui.core.analysis.analyse.analyse`;
        many files go through :func:`covidgui.core.analysis.batch.classify_stream`.
        """
        xray, prepared = load_prepared(path, self.input_size, harmonise=self.harmonises)
        return self.predict_xray(xray, heatmap, prepared)

    def gradcam(self, model_input: np.ndarray, class_index: int) -> np.ndarray:
        """Grad-CAM of ``class_index`` for one prepared input (S, S): float32 (S, S), 0..1.

        The score is the class's logit minus the mean of the others (softmax only sees logit
        differences, so this is the evidence *for this class rather than the others*). Its gradient,
        averaged over each channel of the final feature maps (after the last convolution's
        BatchNorm and ReLU, i.e. what the pooling layer reads), weighs that channel's activations;
        the positive part of the sum is normalised to its maximum. Taking the raw convolution output
        instead (before BatchNorm) gave all-zero maps for most COVID-19 images: BatchNorm's scale
        can flip a channel's sign.
        """
        return self.gradcams(np.asarray(model_input)[np.newaxis], [class_index])[0]

    def gradcams(self, inputs: np.ndarray, class_indices) -> np.ndarray:
        """Grad-CAM (see :meth:`gradcam`) of one class per input: (N, S, S) -> float32 (N, S, S)."""
        _, _, activations, weights = self._explain(inputs)
        return self._cams(activations, weights, class_indices, np.shape(inputs)[1:])

    def _explain(self, inputs: np.ndarray):
        """One pass of the graph over prepared inputs (N, S, S): (logits (N, C) float64, pooled
        features (N, F) float64, final feature maps (N, h, w, K), Grad-CAM channel weights (N, C, K)).
        The maps and weights cost the pass almost nothing, so every pass returns them."""
        out = self.graph(np.asarray(inputs, dtype=np.float32)[..., np.newaxis])
        return (out["logits"].astype(np.float64), out["features"].astype(np.float64), out["maps"],
                out["cam_weights"])

    @staticmethod
    def _cams(activations: np.ndarray, weights: np.ndarray, class_indices, size) -> np.ndarray:
        """Each input's map for its class: the positive part of the weighted feature maps,
        normalised to its maximum and resized to the input: float32 (N, *size), 0..1."""
        chosen = weights[np.arange(len(weights)), np.asarray(class_indices, dtype=int)]  # (N, K)
        cams = np.maximum(np.einsum("nhwk,nk->nhw", activations, chosen), 0.0)
        out = np.empty((len(cams), *size), dtype=np.float32)
        for i, cam in enumerate(cams):
            peak = float(cam.max())
            out[i] = np.clip(resize(cam / peak if peak > 0 else cam, tuple(size)), 0.0, 1.0)
        return out
