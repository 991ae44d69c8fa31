"""``tf.distribute`` strategies for users who outgrow one machine (``covidgui train --strategy``).

- ``mirrored``: every local device (GPUs, or logical CPU devices) holds a copy of the model and
  the gradients are summed each step.
- ``multi-worker``: the same across machines; each worker runs the same command with its own
  ``TF_CONFIG`` (the cluster's addresses and this worker's index), as TensorFlow documents.
"""

from __future__ import annotations

import json
import os

from covidgui.core.errors import CovidGUIError
from covidgui.core.inference.keras_env import quiet_tensorflow

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name: str | None):
    """The strategy called ``name`` (None or "default" -> None, i.e. Keras' default device)."""
    if name in (None, "", "default"):
        return None
    quiet_tensorflow()
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        raw = os.environ.get("TF_CONFIG", "")
        if raw:
            try:
                json.loads(raw)
            except ValueError as exc:
                raise CovidGUIError(f"TF_CONFIG is not valid JSON ({exc}); see the TensorFlow "
                                    "multi-worker training guide for its format.") from exc
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise CovidGUIError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


def describe(strategy) -> dict:
    """What the model card records about how training was distributed."""
    if strategy is None:
        return {"strategy": "default", "replicas": 1}
    return {"strategy": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync)}


def is_multi_worker(strategy) -> bool:
    """Whether ``strategy`` spans several processes (a MultiWorkerMirroredStrategy with a cluster)."""
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.num_replicas_in_sync > 1 \
        and strategy.cluster_resolver is not None and bool(strategy.cluster_resolver.cluster_spec().as_dict())


def is_chief(strategy) -> bool:
    """Whether this process writes the results: always outside multi-worker training, else the
    worker TensorFlow names chief (task "chief", or worker 0 when the cluster has no chief)."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def make_fit_work(model, strategy) -> None:
    """Let ``model.fit`` run under a multi-worker strategy (Keras 3.15 / TensorFlow 2.21).

    Why: before the first step Keras builds the model symbolically from the first batch, which it
    first reduces across replicas with ``strategy.reduce("MEAN", (x, y, w), axis=None)``. A
    MultiWorkerMirroredStrategy hands that tuple to its collective all-reduce, which cannot take a
    structure and fails with "Attempt to convert a value (PerReplica:{...}) ... to a Tensor"
    (keras-team/keras#20585, tensorflow/tensorflow#72388; MirroredStrategy reduces locally, so it
    works). Only the batch's shapes matter there, so this process's own replica's batch is used
    instead: no cross-worker step, the same shapes on every worker. Everything else (distributing
    the data, the training step, reducing the metrics) is Keras' own.
    """
    if not is_multi_worker(strategy):
        return
    import types

    from keras import tree

    import tensorflow as tf

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tree.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v, batch)
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(_maybe_symbolic_build, model)
    _reduce_scalars_across_workers()


def _reduce_scalars_across_workers() -> None:
    """The second Keras 3 defect under a multi-worker strategy: after each step Keras averages the
    per-replica results (loss, accuracy: scalars) with ``strategy.reduce("MEAN", v, axis=0)``,
    and a scalar has no axis 0 ("Invalid reduction dimension 0 for input with 0 dimensions").
    The mean across replicas is ``axis=None``; this wraps Keras' reducer to ask for that, for
    multi-worker strategies only (every other strategy takes Keras' own path unchanged)."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer.reduce_per_replica, "covidgui_multi_worker", False):
        return
    import tensorflow as tf
    from keras import tree

    keras_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None) if isinstance(v, tf.distribute.DistributedValues)
                else v, values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica.covidgui_multi_worker = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def build_before_fit(model, sequence, strategy) -> None:
    """Create the optimizer's and the metrics' variables before ``model.fit`` traces its step.

    Why: with no distribution strategy Keras creates them inside the first trace of the training
    step, and a ``tf.function`` that created variables is traced a second time; that second trace
    was about a quarter of a small training's time (seconds per run, six runs per adaptation).
    Under a strategy Keras builds them first itself, from the first batch's shapes, with this same
    call (``Trainer._symbolic_build``, no public form in Keras 3.15); it runs symbolically and
    changes no weight.
    """
    if strategy is not None or len(sequence) == 0:
        return
    model._symbolic_build(data_batch=sequence[0])
