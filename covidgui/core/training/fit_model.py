"""The model ``fit`` trains: the classifier behind augmentation, plus the training-only losses.

Two optional losses shape *what* the classifier learns without being part of the saved model:
- lung guidance (:mod:`covidgui.core.training.lung_guidance`): a penalty on class evidence outside the lungs;
- a within-class source adversary (Ganin & Lempitsky 2015, "Unsupervised domain adaptation by
  backpropagation"): a small head tries to tell, from the pooled features, which source of its
  class an image comes from, and the gradient reaching the features is reversed, so the classifier
  is pushed towards features that do *not* tell one COVID-19 collection (or one normal collection)
  from another: the look of a hospital's machine rather than the disease.
The classifier's layers are shared, so training this trains the classifier; only the classifier
is saved. Imports Keras and TensorFlow: import it where training starts, not at start-up.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from covidgui.core.training.lung_guidance import evidence_outside_share


def build_fit_model(classifier_model, augmentation, channels: int, guidance: float = 0.0,
                    source_classes: list[int] | None = None, adversary_weight: float = 0.3,
                    features_layer: str = "embedding"):
    """The training model.

    Inputs: x (B, S, S, channels): the image, and with 2 channels its lung mask (moved with it by
    the geometric augmentation); with ``source_classes`` also the source index (B,) int32.
    Output: the classifier's logits. Losses added: ``guidance`` x share of evidence outside the
    lungs (needs the mask channel), ``adversary_weight`` x the source head's cross-entropy.
    source_classes: the class of each source index; the head only chooses among the sources of the
        image's own class (an image's class is no secret, its source within the class should be).
    """
    size = classifier_model.input_shape[1]
    pooled = classifier_model.get_layer(features_layer)
    parts = keras.Model(classifier_model.inputs, [pooled.input, pooled.output, classifier_model.output])
    x_in = keras.Input((size, size, channels), name="xray_and_lungs" if channels > 1 else "xray")
    moved = augmentation(x_in) if augmentation is not None else x_in
    maps, embedding, logits = parts(moved[..., :1])
    if guidance > 0:
        logits = LungEvidencePenalty(classifier_model.get_layer("logits"), guidance,
                                     name="lung_evidence_penalty")(maps, moved[..., 1:], logits)
    if source_classes is None:
        return keras.Model(x_in, logits)
    source_in = keras.Input((), dtype="int32", name="source")
    logits = SourceAdversary(source_classes, adversary_weight, name="source_adversary")(embedding, source_in, logits)
    return keras.Model([x_in, source_in], logits)


class LungEvidencePenalty(layers.Layer):
    """Adds ``weight`` x the mean share of evidence outside the lungs to the losses; passes the
    logits through. Called with (feature maps (B, h, w, F), lung mask (B, S, S, 1), logits)."""

    def __init__(self, dense, weight: float, **kwargs):
        super().__init__(**kwargs)
        self.dense, self.penalty_weight = dense, weight

    def call(self, features, lungs, logits):  # not "mask": Keras reserves that argument name
        cell = lungs.shape[1] // features.shape[1]
        fraction = keras.ops.average_pool(lungs, pool_size=cell, strides=cell, padding="valid")
        share = evidence_outside_share(features, self.dense.kernel, fraction)
        self.add_loss(self.penalty_weight * keras.ops.mean(share))
        return logits


@tf.custom_gradient
def _reverse_gradient(x):
    return tf.identity(x), lambda dy: -dy


class SourceAdversary(layers.Layer):
    """A source head behind gradient reversal; adds ``weight`` x its cross-entropy to the losses and
    passes the logits through. Called with (pooled features (B, F), source index (B,), logits)."""

    def __init__(self, source_classes: list[int], weight: float, **kwargs):
        super().__init__(**kwargs)
        classes = np.asarray(source_classes)
        self.same_class = tf.constant(classes[:, None] == classes[None, :])
        self.adversary_weight = weight
        self.hidden = layers.Dense(64, activation="relu")
        self.head = layers.Dense(len(classes))

    def call(self, embedding, source, logits):
        scores = self.head(self.hidden(_reverse_gradient(embedding)))
        allowed = tf.gather(self.same_class, tf.cast(source, tf.int32))
        scores = tf.where(allowed, scores, tf.fill(tf.shape(scores), -1e9))
        loss = keras.losses.sparse_categorical_crossentropy(source, scores, from_logits=True)
        self.add_loss(self.adversary_weight * tf.reduce_mean(loss))
        return logits
