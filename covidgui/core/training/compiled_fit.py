"""One compiled fit model for several trainings of one recipe (:class:`CompiledFit`).

Why: Keras traces a model's training step the first time it fits, and a new model is traced
again. For v4's network that trace cost about 10 s of each adaptation fold, a sixth of an
adaptation's time (benchmarks/results/adapt-siim-lite0.md). An adaptation's folds train the same
starting network by the same recipe on as many films, so they can share one traced step: between
trainings every variable of the model (weights, BatchNorm statistics, the random generators'
states) and of its optimizer (step count, Adam's moments, the weights' moving average) is put back
to what it was before the first, which is what a freshly built model starts from
(tests/test_adapt.py checks the weights are the same to the bit).
"""

from __future__ import annotations

import json
from dataclasses import asdict


class CompiledFit:
    """Keeps the classifier and fit model of the last training whose :func:`fit_key` it was
    given, with their starting state."""

    def __init__(self):
        self.key = None
        self._models = None
        self._start = None

    def keep(self, key, classifier_model, fit_model) -> None:
        """Remember a just-compiled, not yet trained pair and its starting state."""
        self.key, self._models = key, (classifier_model, fit_model)
        self._start = [[v.numpy() for v in variables] for variables in self._variables(fit_model)]

    def restart(self):
        """The kept (classifier, fit model), every variable back at its starting value."""
        for variables, values in zip(self._variables(self._models[1]), self._start):
            for variable, value in zip(variables, values):
                variable.assign(value)
        return self._models

    @staticmethod
    def _variables(fit_model):
        return fit_model.variables, fit_model.optimizer.variables


def fit_key(config, classes, *shape) -> str:
    """What a training's compiled step depends on: its recipe, classes and ``shape`` (the numbers
    of films, which with the recipe's batch size set the step count and the learning-rate
    schedule, and what else sets the model's inputs and the trace)."""
    return json.dumps([asdict(config), list(classes), list(shape)], sort_keys=True, default=str)


def seed_generators(seed: int, tensorflow: bool = True) -> None:
    """Python's and NumPy's global random generators from ``seed`` and, with ``tensorflow``,
    Keras' and TensorFlow's too (``keras.utils.set_random_seed``).

    Without ``tensorflow``: for a training on a kept compiled model, whose own generators
    :meth:`CompiledFit.restart` put back. ``tf.random.set_seed`` clears TensorFlow's kernel
    cache, and the kept step was then optimised again (Grappler) at its first call: 3.5 s of each
    later adaptation fold's first epoch, which took 5 s against 1.5 s for the others.
    """
    import random

    import numpy as np

    if tensorflow:
        import keras

        keras.utils.set_random_seed(seed)
    else:
        random.seed(seed)
        np.random.seed(seed)
