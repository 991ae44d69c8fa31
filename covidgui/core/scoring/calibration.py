"""Temperature scaling (Guo et al., 2017): one scalar T fitted on validation logits.

Dividing logits by T > 1 softens over-confident probabilities without changing any argmax, so
accuracy is untouched and the stated confidence matches how often the model is right.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar


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


def fit_indeterminate_band(probs: np.ndarray, labels: np.ndarray, target_accuracy: float = 0.95,
                           minimum: float = 0.65) -> tuple[float, float]:
    """The indeterminate band (low, high) from calibrated probabilities (N, C) and labels (N,).

    ``high`` is the smallest confidence (at least ``minimum``, at most 0.95, in steps of 0.05) above
    which the results of the calibration split are right at least ``target_accuracy`` of the time;
    results below it are shown as "Indeterminate". ``low`` mirrors it (1 - high), as the two-class
    band always has, but is never above 1/C (rounded down): with C classes the top probability can
    be as low as 1/C, and every top probability below ``high`` must fall inside the band.
    """
    probs = np.asarray(probs, dtype=np.float64)
    right = probs.argmax(axis=1) == np.asarray(labels)
    confidence = probs.max(axis=1)
    lowest_top = np.floor(100.0 / probs.shape[1]) / 100.0
    for high in np.arange(minimum, 0.951, 0.05):
        above = confidence >= high
        if not above.any() or right[above].mean() >= target_accuracy:
            return round(min(1.0 - float(high), lowest_top), 2), round(float(high), 2)
    return 0.05, 0.95


def fit_temperature_and_bias(logits: np.ndarray, labels: np.ndarray) -> tuple[float, list[float]]:
    """(T, bias (C,)) minimising the NLL of labels (N,) under softmax(logits (N, C) / T + bias),
    the first class's bias fixed at 0 ("vector scaling" with one shared scale: Guo et al., 2017).

    Fitted on calibration films where every class comes from the same hospitals, the bias moves
    the decision threshold to where those films put it, which temperature alone cannot (it keeps
    every argmax). T is kept in [0.05, 20], each bias in [-10, 10].
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    n_classes = logits.shape[1]

    def loss(params):
        temperature = float(np.exp(params[0]))
        bias = np.concatenate([[0.0], params[1:]])
        return nll(logits + bias * temperature, labels, temperature)

    start = np.concatenate([[np.log(fit_temperature(logits, labels))], np.zeros(n_classes - 1)])
    bounds = [(np.log(0.05), np.log(20.0))] + [(-10.0, 10.0)] * (n_classes - 1)
    result = minimize(loss, start, method="L-BFGS-B", bounds=bounds)
    return float(np.exp(result.x[0])), [0.0] + [float(b) for b in result.x[1:]]
