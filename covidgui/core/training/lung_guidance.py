"""Training the classifier to decide from the lung fields ("right for the right reasons").

Our classifier ends in global average pooling and one dense layer, so its logit for class c is the
spatial mean of an *evidence map* ``E_c(i, j) = A(i, j) . W_c`` (A: the final feature maps, W: the
dense kernel), and Grad-CAM is exactly that map (its channel weights are W_c / (h * w)). That makes
the share of evidence outside the lungs cheap to compute and differentiable, so training can
penalise it directly (in the spirit of Ross et al. 2017, "Right for the right reasons", which
penalised input gradients outside an annotated region).

The penalty, per image, is the share of the absolute evidence for each class *against the others*
(``E_c - mean of the other classes' E``) that lies outside the segmented lung fields, 0..1. Both
signs count: evidence outside the lungs may neither support a class nor argue against one, so the
decision is made inside them. Images without a plausible pair of lungs get a mask of ones (no
penalty) rather than a wrong one.

Masks come from the bundled lung segmenter (:mod:`covidgui.core.inference.lungs`) on the same prepared input
as the classifier; they ride as a second input channel through the geometric augmentation, so the
image and its mask always move together. Only the training model
(:func:`covidgui.core.training.fit_model.build_fit_model`) adds the penalty; the saved classifier is the plain one.
"""

from __future__ import annotations

import numpy as np

from covidgui.core.inference.lungs import LungSegmenter, allowed_region


# The penalty's weight when guidance is on (the bundled model's and the app's default).
LUNG_GUIDANCE_WEIGHT = 1.0


def training_mask(segmenter: LungSegmenter, model_input: np.ndarray, margin: float | None = None) -> np.ndarray:
    """The lung mask for one prepared input (S, S): float32 (S, S), 1 inside the lungs, 0 outside;
    all ones when the segmenter finds no plausible pair of lungs (no guidance for that image)."""
    return training_masks(segmenter, model_input[np.newaxis], margin)[0]


def training_masks(segmenter: LungSegmenter, model_inputs: np.ndarray, margin: float | None = None) -> np.ndarray:
    """:func:`training_mask` of each prepared input (N, S, S), with one pass of the segmenter for
    all of them: float32 (N, S, S)."""
    model_inputs = np.asarray(model_inputs)
    masks = np.ones(model_inputs.shape, dtype=np.float32)
    if len(model_inputs) == 0:
        return masks
    for k, probability in enumerate(segmenter.probabilities(model_inputs)):
        mask = allowed_region(probability, model_inputs.shape[1:], segmenter.threshold, margin)
        if mask is not None:
            masks[k] = mask
    return masks


def evidence_outside_share(features, kernel, lung_fraction):
    """Per-image share (B,) of absolute class-vs-others evidence outside the lungs.

    features: (B, h, w, F) final feature maps; kernel: (F, C) dense weights;
    lung_fraction: (B, h, w, 1) share of each feature cell covered by lung, 0..1.
    """
    from keras import ops

    evidence = ops.einsum("bhwf,fc->bhwc", features, kernel)  # (B, h, w, C)
    n_classes = evidence.shape[-1]
    mean = ops.mean(evidence, axis=-1, keepdims=True)
    # E_c - mean of the others = C / (C - 1) * (E_c - mean of all); the factor cancels in a share.
    against_others = ops.abs(evidence - mean) if n_classes > 1 else ops.abs(evidence)
    outside = ops.sum(against_others * (1.0 - lung_fraction), axis=(1, 2, 3))
    total = ops.sum(against_others, axis=(1, 2, 3))
    return outside / (total + 1e-6)
