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

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name: str | None):
    """The strategy called ``name`` (None or "default" -> None, i.e. Keras' default device)."""
    if name in (None, "", "default"):
        return None
    from covidgui.core.model import _quiet_tensorflow

    _quiet_tensorflow()
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
