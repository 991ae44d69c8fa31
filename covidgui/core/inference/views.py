"""Test-time views: a model's logits averaged over the film and a few altered copies of it.

A network's call on one film moves with small things that say nothing about the lungs (where the
film's edge falls, a few pixels of framing). Averaging its logits over the film, its mirror image
and two slightly zoomed copies ranked SIIM's films better for both seeds of v4.0's recipe, on
SIIM's calibration films (where the views were chosen) and on its locked test (AUC +0.005 to
+0.009; ``benchmarks/results/siim-summary.md``), at four passes' cost.

A model's card lists its views (``preprocessing["test_time_views"]``, none: the film alone); its
inference graph averages them (covidgui.core.inference.classifier.classifier_graph) and training
scores a network the same way (covidgui.core.training.fit_loop.network_logits), so the
temperature and threshold are fitted on the logits the app shows. The pooled features (the input
gate's), the feature maps and Grad-CAM come from the film itself.
"""

from __future__ import annotations

from covidgui.core.errors import DatasetError, ModelError

# Each view's name -> what it does to a film (S, S): "zoomNN" keeps the central NN % of each side,
# resized back to S (bilinear).
VIEWS = {"mirrored": "left and right swapped", "zoom90": "central 90 %, resized back",
         "zoom95": "central 95 %, resized back"}
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


def stack_views(x, views: tuple[str, ...]):
    """A batch x (N, S, S, C) -> (N * (1 + len(views)), S, S, C): the films, then each view of them
    in order (TensorFlow ops, so the inference graph carries them); x itself without views."""
    if not views:
        return x
    import tensorflow as tf

    size = x.shape[1]
    out = [x]
    for name in views:
        if name == "mirrored":
            out.append(tf.reverse(x, axis=[2]))
        else:
            margin = int(round(size * (1 - int(name[len("zoom"):]) / 100) / 2))
            out.append(tf.image.resize(x[:, margin:size - margin, margin:size - margin, :], (size, size),
                                       method="bilinear"))
    return tf.concat(out, axis=0)


def mean_over_views(y, n_films, views: tuple[str, ...]):
    """Outputs (N * (1 + len(views)), C) of :func:`stack_views`'s batch -> their mean per film (N, C)
    (y itself without views)."""
    if not views:
        return y
    import tensorflow as tf

    # The class count stays static: LiteRT's kernels need the rank and last size known.
    return tf.reduce_mean(tf.reshape(y, (1 + len(views), n_films, y.shape[-1])), axis=0)
