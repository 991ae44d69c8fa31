"""The input gate: "does this look like a frontal chest radiograph at all?"

A classifier trained on two kinds of chest X-ray answers one of the two for *any* image, a cat
included. The gate is a novelty detector fitted on the training X-rays only, from three scores,
each expressed in robust z-units of the training distribution (median / MAD):

- ``shape``: how badly a 16-component PCA of 32 x 32 thumbnails of the prepared input (an
  "eigen-radiograph" model, i.e. a linear autoencoder) reconstructs the image: X-rays share a
  layout (dark lungs either side of a bright mediastinum) that text, photos and noise lack;
- ``features``: how far the direction of the classifier's own pooled features is from those of
  the nearest training X-rays (the mean distance to the 5 nearest of up to 2,000 of them, the
  features scaled to unit length and reduced to 64 principal directions): what the network sees
  must resemble what it saw in training. Gates fitted before 2026-12-04 measure the Mahalanobis
  distance from the training mean instead (Ledoit-Wolf covariance) and still load and work. The
  pretrained EfficientNet-Lite0 puts noise, gradients and textures *nearer* the training mean than
  most X-rays (they excite few features), so that distance let 13 of 49 non-X-rays through; the
  direction tells them apart (0 of 49, benchmarks/results/gate-v4.0.0.md);
- ``colour``: how colourful the source was: radiographs are grey, photographs and screenshots
  rarely are.

An image is rejected when any score exceeds the threshold fitted on the validation X-rays
(their 99.5th percentile, with a margin), so at most about 1 % of real X-rays are withheld.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidgui.core.inference.preprocess import resize
from covidgui.core.io.atomic import write_atomic

THUMB = 32
COMPONENTS = 16
GATE_SUFFIX = ".gate.npz"
# Rejection threshold = this margin x the validation X-rays' 99.5th percentile of the score.
# 1.19, not 1.25: with siim-covid's sick films among the X-rays the percentile grew, and at 1.25
# the v3.0.0 gate let an inverted chest film and an angiogram through (scores 0.99 and 0.97 of the
# line); at 1.19 both are rejected again and two more of the 1,372 locked-test X-rays are.
MARGIN = 1.19
VALIDATION_QUANTILE = 0.995
# Almost every radiograph has colourfulness 0, so a MAD would be 0: colour is measured against a
# fixed scale instead (0 = grey, one unit = 1 % mean chroma).
COLOUR_SCALE = (0.0, 0.01)
# The features score: the nearest training X-rays that count, how many are kept in the gate's file
# (a random draw), and the principal directions their unit-length features are reduced to.
NEIGHBOURS = 5
REFERENCES = 2000
FEATURE_DIRECTIONS = 64
QUERY_BLOCK = 4096  # queries measured at once against the references (bounds the memory)


def gate_path(model_path: str | Path) -> Path:
    """Where a model's gate lives: ``name.gate.npz`` beside ``name.keras``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + GATE_SUFFIX)


def thumbnails(inputs: np.ndarray) -> np.ndarray:
    """Prepared inputs (N, S, S) -> flattened (N, 32*32) block-mean thumbnails."""
    return np.stack([resize(x, (THUMB, THUMB)).ravel() for x in np.asarray(inputs, dtype=np.float32)])


@dataclass
class InputGate:
    """Fitted parameters; every array is plain numbers (saved with ``allow_pickle=False``)."""

    pca_mean: np.ndarray  # (1024,)
    pca_components: np.ndarray  # (k, 1024)
    feature_mean: np.ndarray  # (F,) the training X-rays' mean features
    centres: np.ndarray  # (3,) medians of the raw scores on training X-rays
    scales: np.ndarray  # (3,) MADs
    thresholds: np.ndarray  # (3,) in z-units
    # The features score of gates fitted since 2026-12-04 (see the module's docstring):
    feature_directions: np.ndarray | None = None  # (F, D) principal directions of unit-length features
    feature_references: np.ndarray | None = None  # (R, D) float16: training X-rays, unit length in them
    # ... and of gates fitted before: the Mahalanobis distance from feature_mean.
    feature_precision: np.ndarray | None = None  # (F, F)

    NAMES = ("shape", "features", "colour")

    def raw_scores(self, thumbs: np.ndarray, features: np.ndarray, colourfulness: np.ndarray) -> np.ndarray:
        """(N, 3) raw scores from thumbnails (N, 1024), pooled features (N, F) and colourfulness
        (N,): PCA residual RMS, distance to the nearest training X-rays' features (or, for an
        older gate, the Mahalanobis distance), colourfulness."""
        thumbs = np.asarray(thumbs, dtype=np.float32) - self.pca_mean
        residual = thumbs - (thumbs @ self.pca_components.T) @ self.pca_components
        shape = np.sqrt((residual ** 2).mean(axis=1))
        features = np.asarray(features, dtype=np.float64)
        if self.feature_references is not None:
            distance = _nearest_distance(self.directions_of(features), self.feature_references)
        else:
            centred = features - self.feature_mean
            distance = np.sqrt(np.maximum(((centred @ self.feature_precision) * centred).sum(axis=1), 0))
        return np.column_stack([shape, distance, np.asarray(colourfulness, dtype=np.float64)])

    def directions_of(self, features: np.ndarray) -> np.ndarray:
        """Pooled features (N, F) -> their unit-length directions in the gate's principal
        directions, unit length again (N, D)."""
        return _unit(_unit(np.asarray(features, dtype=np.float64)) @ self.feature_directions)

    def scores(self, inputs, features, colourfulness) -> np.ndarray:
        """(N, 3) robust z-scores; larger = less like the training X-rays."""
        return (self.raw_scores(thumbnails(inputs), features, colourfulness) - self.centres) / self.scales

    def accepts(self, inputs, features, colourfulness) -> tuple[np.ndarray, np.ndarray]:
        """(accepted (N,) bool, worst score relative to its threshold (N,): > 1 means rejected)."""
        ratio = (self.scores(inputs, features, colourfulness) / self.thresholds).max(axis=1)
        return ratio <= 1.0, ratio

    def to_bytes(self) -> bytes:
        """The gate as an ``.npz`` file's bytes (plain arrays, readable with allow_pickle=False)."""
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **{k: getattr(self, k) for k in self.__dataclass_fields__ if getattr(self, k) is not None})
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        """Write the gate alone (atomically). A model's gate is saved with the model instead
        (covidgui.core.models.model_files.save_model), so the two are written and checked as one unit."""
        write_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> "InputGate":
        with np.load(path, allow_pickle=False) as data:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data.files})


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _nearest_distance(queries: np.ndarray, references: np.ndarray, skip_self: bool = False) -> np.ndarray:
    """Mean Euclidean distance (N,) from each query (N, D) to its NEIGHBOURS nearest references
    (R, D); ``skip_self``: the queries are the references, each one's own match left out."""
    references = np.asarray(references, dtype=np.float64)
    reference_norms = (references ** 2).sum(axis=1)[None]
    k = max(1, min(NEIGHBOURS, references.shape[0] - (1 if skip_self else 0)))
    out = np.empty(len(queries))
    # In blocks of queries: a training set of 50,000 films against 2,000 references would otherwise
    # hold an 800 MB distance matrix at once.
    for start in range(0, len(queries), QUERY_BLOCK):
        block = queries[start:start + QUERY_BLOCK]
        squared = np.maximum((block ** 2).sum(axis=1)[:, None] - 2 * block @ references.T + reference_norms, 0.0)
        if skip_self:
            rows = np.arange(len(block))
            squared[rows, start + rows] = np.inf
        nearest = np.partition(squared, k - 1, axis=1)[:, :k] if k < squared.shape[1] else squared
        out[start:start + len(block)] = np.sqrt(nearest).mean(axis=1)
    return out


def _robust_scale(values: np.ndarray) -> tuple[float, float]:
    centre = float(np.median(values))
    mad = float(np.median(np.abs(values - centre))) * 1.4826
    return centre, max(mad, 1e-3)


def fit_gate(train: tuple, val: tuple) -> InputGate:
    """Fit on training X-rays, set thresholds on validation X-rays (no non-X-ray is ever used).

    train, val: (thumbnails (N, 1024), pooled features (N, F), colourfulness (N,)).
    """
    from sklearn.decomposition import PCA

    train_thumbs, train_features, train_colour = train
    train_features = np.asarray(train_features, dtype=np.float64)
    # A tiny training set (a user's first try) has fewer images than components.
    pca = PCA(n_components=min(COMPONENTS, len(train_thumbs) - 1), random_state=0).fit(train_thumbs)
    unit = _unit(train_features)
    directions = PCA(n_components=min(FEATURE_DIRECTIONS, *unit.shape), random_state=0).fit(unit).components_.T
    gate = InputGate(pca.mean_.astype(np.float32), pca.components_.astype(np.float32), train_features.mean(axis=0),
                     np.zeros(3), np.ones(3), np.ones(3), feature_directions=directions.astype(np.float32))
    # The references: a seeded draw of the training X-rays (all of them when there are fewer).
    drawn = np.sort(np.random.default_rng(0).permutation(len(unit))[:REFERENCES])
    references = gate.directions_of(train_features[drawn])
    gate.feature_references = references.astype(np.float16)
    raw = gate.raw_scores(train_thumbs, train_features, train_colour)
    # A reference's nearest film is itself: its own distance is measured without it.
    raw[drawn, 1] = _nearest_distance(references, gate.feature_references, skip_self=True)
    fitted = [_robust_scale(raw[:, i]) for i in range(2)] + [COLOUR_SCALE]
    gate.centres = np.array([c for c, _ in fitted])
    gate.scales = np.array([s for _, s in fitted])
    val_z = (gate.raw_scores(*val) - gate.centres) / gate.scales
    gate.thresholds = np.maximum(MARGIN * np.quantile(val_z, VALIDATION_QUANTILE, axis=0), 3.0)
    return gate
