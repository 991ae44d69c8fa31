"""Test-time views: a model's logits averaged over the film and a few altered copies of it.

A network's call on one film moves with small things that say nothing about the lungs (where the
film's edge falls, the scale of its details). Averaging its logits over the film and the film
shrunk to 80 % of its side ranked SIIM's films better for both seeds of v4.0's recipe, on SIIM's
calibration films (where the view was chosen) and on its locked test
(``benchmarks/results/siim-summary.md``).

A model's card lists its views (``preprocessing["test_time_views"]``, none: the film alone); its
inference graph averages them (covidgui.core.inference.classifier.classifier_graph) and training
scores a network the same way (covidgui.core.training.fit_loop.network_logits), so the
temperature and threshold are fitted on the logits the app shows. The pooled features (the input
gate's), the feature maps and Grad-CAM come from the film itself.

A view costs a pass of the network over its pixels, so a view smaller than the film costs less:
"scaled80" is 180 of 224 px, 0.64 of a pass. Issue 24, which allowed a bigger network, caps a
film at 1.5 GFLOP; :func:`flops_per_film` is what a card records.
"""

from __future__ import annotations

from covidgui.core.errors import DatasetError, ModelError

# Each view's name -> what it does to a film (S, S): "zoomNN" keeps the central NN % of each side,
# resized back to S (bilinear); "scaledNN" is the whole film resized to NN % of its side by the
# preprocessing's own resize (a smaller input, a cheaper pass).
VIEWS = {"mirrored": "left and right swapped", "zoom90": "central 90 %, resized back",
         "zoom95": "central 95 %, resized back", "scaled80": "the whole film at 80 % of its side"}
CARD_KEY = "test_time_views"


def parse_views(views, error=DatasetError, where: str = "The recipe") -> tuple[str, ...]:
    """Views from a card's list or a recipe's comma-separated text ("" or None: none); raises
    ``error`` naming an unknown view and ``where`` it was asked for."""
    names = [v.strip() for v in (views.split(",") if isinstance(views, str) else (views or [])) if v.strip()]
    unknown = [v for v in names if v not in VIEWS]
    if unknown:
        raise error(f"{where} asks for the test-time view {unknown[0]!r}, which this version of CovidGUI "
                    f"does not know (it knows {', '.join(VIEWS)}).")
    return tuple(names)


def card_views(card) -> tuple[str, ...]:
    """The views a model's card lists (none for a card written before views were); ModelError
    for a view this version of CovidGUI does not know."""
    return parse_views(card.preprocessing.get(CARD_KEY), ModelError, f"The model card of {card.name}")


def _margin(name: str, size: int) -> int:
    """Pixels a zoom view drops on each side of a film of ``size`` (a scaled view: its side is
    shorter by as much on each side)."""
    keep = int(name[-2:]) / 100
    return int(round(size * (1 - keep) / 2))


def view_size(name: str, size: int) -> int:
    """The side of a view of a film of side ``size``."""
    return size - 2 * _margin(name, size) if name.startswith("scaled") else size


def flops_per_film(flops_of_size, size: int, views: tuple[str, ...]) -> int:
    """What one film costs: the film's pass and each view's, ``flops_of_size(side)`` being the
    network's cost at an input of that side."""
    return int(flops_of_size(size) + sum(flops_of_size(view_size(v, size)) for v in views))


def _view(x, name: str):
    """One view of a batch x (N, S, S, C) (TensorFlow ops, so the inference graph carries them)."""
    import tensorflow as tf

    size = x.shape[1]
    if name == "mirrored":
        return tf.reverse(x, axis=[2])
    if name.startswith("scaled"):
        # The preprocessing's resize (antialiased bilinear) is linear and separable: its weights as
        # a matrix, applied to the rows and then the columns as plain 2-D products (TensorFlow's
        # antialiased resize is no LiteRT op).
        side = view_size(name, size)
        weights = tf.constant(_resize_weights(size, side).T)  # (S, side)
        channels = x.shape[3]
        rows = tf.reshape(tf.matmul(tf.reshape(tf.transpose(x, (0, 3, 1, 2)), (-1, size)), weights),
                          (-1, channels, size, side))  # each row resized: (N, C, S, side)
        both = tf.reshape(tf.matmul(tf.reshape(tf.transpose(rows, (0, 1, 3, 2)), (-1, size)), weights),
                          (-1, channels, side, side))  # then each column: (N, C, side (cols), side (rows))
        return tf.transpose(both, (0, 3, 2, 1))
    margin = _margin(name, size)
    return tf.image.resize(x[:, margin:size - margin, margin:size - margin, :], (size, size), method="bilinear")


def _resize_weights(size: int, side: int):
    """(side, size) float32: what covidgui.core.inference.preprocess.resize gives each pixel of a
    row of ``size`` in each of ``side`` (its rows resized one basis vector at a time)."""
    import numpy as np

    from covidgui.core.inference.preprocess import resize

    return np.ascontiguousarray(resize(np.eye(size, dtype=np.float32), (size, side)).T)


def averaged_logits(run, x, views: tuple[str, ...], any_size=None):
    """The mean of a network's logits over films x (N, S, S, C) and their views, and the films' own
    other outputs.

    run(batch) -> logits or (logits, *others) at the film's size: one pass over the films and
    their views of the same size stacked (the films' rows first); any_size: the network that reads
    the views of another size (:func:`smaller_view_reader`).
    Returns (logits (N, C), [each other output's film rows]); x's own outputs without views.
    """
    def logits_and_others(out):
        return (out[0], list(out[1:])) if isinstance(out, (tuple, list)) else (out, [])

    if not views:
        return logits_and_others(run(x))
    import tensorflow as tf

    same = tuple(v for v in views if view_size(v, x.shape[1]) == x.shape[1])
    other = tuple(v for v in views if v not in same)
    n_films = tf.shape(x)[0]
    logits, others = logits_and_others(run(tf.concat([x, *(_view(x, v) for v in same)], axis=0)))
    # The class count stays static: LiteRT's kernels need the rank and last size known.
    rows = tf.reshape(logits, (1 + len(same), n_films, logits.shape[-1]))
    rows = tf.concat([rows, *(any_size(_view(x, v), training=False)[tf.newaxis] for v in other)], axis=0)
    return tf.reduce_mean(rows, axis=0), [o[:n_films] for o in others]


def smaller_view_reader(keras_model, views: tuple[str, ...]):
    """:func:`any_size_copy` of the network when one of ``views`` has another size than its
    input, else None (views of the film's size go through the network itself)."""
    size = keras_model.input_shape[1]
    return any_size_copy(keras_model) if any(view_size(v, size) != size for v in views) else None


def any_size_copy(keras_model, size: int | None = None):
    """A copy of a Keras network (same weights) whose input takes films of side ``size`` (None:
    any), for the views smaller than the film: a convolutional network that ends in global pooling
    reads any size, but a Keras model checks the size it was built for."""
    import keras

    config = keras_model.get_config()
    inputs = [layer for layer in config["layers"] if layer["class_name"] == "InputLayer"]
    if len(inputs) != 1:
        raise ModelError(f"The model {keras_model.name} has {len(inputs)} inputs; CovidGUI's have one.")
    shape = inputs[0]["config"]["batch_shape"]
    inputs[0]["config"]["batch_shape"] = (shape[0], size, size, *shape[3:])
    copy = keras.Model.from_config(config)
    copy.set_weights(keras_model.get_weights())
    return copy
