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
    probability = segmenter.probabilities(model_input[np.newaxis])[0]
    mask = allowed_region(probability, model_input.shape, segmenter.threshold, margin)
    return np.ones_like(model_input, dtype=np.float32) if mask is None else mask.astype(np.float32)


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
