"""Fitting a started network's logits layer to the site's films before fine-tuning ("LP-FT").

Fine-tuning a trained network whose head does not yet fit the new films sends large gradients
from that head through the features, and "can distort pretrained features" (Kumar et al. 2022,
"Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution"): fitting the
head first, on the frozen features, and fine-tuning from there did better both on and off the
training distribution. The head is an L2-regularised logistic regression (scikit-learn) on the
standardised embeddings of the clean training films, written back into the Dense layer.
"""

from __future__ import annotations

import numpy as np

# Inverse L2 strength on standardised embeddings (scikit-learn's C). A probe of the SIIM-naive
# start's embeddings on SIIM's train films, tested on its locked test, was flat from 0.003 to 0.03
# at 25 and 50 films per class (four draws each; 0.001 and 0.1 lower): benchmarks/results/adapt-siim-lite0.md.
HEAD_C = 0.003


def fit_head(network, batches, embedding_layer: str, logits_layer: str = "logits", c: float = HEAD_C) -> None:
    """Set ``network``'s ``logits_layer`` (a Dense of C outputs on ``embedding_layer``) to a
    logistic regression fitted on ``batches`` of (x (B, S, S, K), y (B,)) clean training films,
    classes balanced. Leaves the head as it was when the films hold fewer than two classes."""
    import keras
    from sklearn.linear_model import LogisticRegression

    embed = keras.Model(network.input, network.get_layer(embedding_layer).output)
    features, labels = [], []
    for x, y in batches:
        features.append(np.asarray(embed(x[..., :1], training=False), dtype=np.float64))
        labels.append(np.asarray(y, dtype=int))
    if not features:
        return
    features, labels = np.concatenate(features), np.concatenate(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        return
    head = network.get_layer(logits_layer)
    kernel, bias = (np.asarray(w) for w in head.get_weights())
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    model.fit((features - mean) / scale, labels)
    # Per-class linear scores on the standardised features; a two-class fit gives one row (class
    # 1 against 0), split evenly between the two logits so their difference is the fitted one.
    coef, intercept = model.coef_, model.intercept_
    if len(classes) == 2:
        coef, intercept = np.stack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    new_kernel, new_bias = kernel.copy(), bias.copy()
    for row, cls in enumerate(classes):
        new_kernel[:, cls] = coef[row] / scale
        new_bias[cls] = intercept[row] - np.dot(coef[row], mean / scale)
    head.set_weights([new_kernel.astype(kernel.dtype), new_bias.astype(bias.dtype)])
