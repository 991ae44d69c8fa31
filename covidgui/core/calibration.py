"""Temperature scaling (Guo et al., 2017): one scalar T fitted on validation logits.

Dividing logits by T > 1 softens over-confident probabilities without changing any argmax, so
accuracy is untouched and the stated confidence matches how often the model is right.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of labels (N,) under softmax(logits (N, C) / T)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), np.asarray(labels, dtype=int)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] minimising validation NLL (searched on log T)."""
    result = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))
