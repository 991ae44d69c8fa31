"""The numbers a training computes in: float32, or bfloat16 where the processor has it.

A training step of the compact CNN took 115-127 ms in float32 and 90-98 ms with Keras' mixed
bfloat16 policy (convolutions in bfloat16, weights and their updates kept in float32) on a 2-core
processor with AVX-512 BF16 instructions; the default training 152 s -> 124 s (two pairs), with
Val 58/59 either way and the leave-one-source-out table within a few films of float32 at two seeds
(benchmarks/results/training-profile.md). Without those instructions TensorFlow emulates
bfloat16 and a step is slower than in float32, and EfficientNet-Lite0's depthwise convolutions
were slower in bfloat16 even with them (1.14 s against 0.79 s a step), so "auto" uses bfloat16
for a new compact network on such a processor only.

Whatever a network trained in, the model that is kept computes in float32: :func:`float32_copy`
is the same network, with the same float32 weights, before its BatchNorm statistics are
re-estimated, calibrated and exported, so inference and the saved file are as before.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from covidgui.core.errors import DatasetError

PRECISIONS = ("auto", "float32", "bfloat16")
MIXED = "mixed_bfloat16"  # Keras' policy: compute in bfloat16, variables in float32
CPUINFO = Path("/proc/cpuinfo")


def native_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the processor computes bfloat16 in hardware (x86 AVX-512 BF16 or AMX), read from
    Linux's /proc/cpuinfo (``cpuinfo``: its text, for tests). False on other systems, where we
    have not measured it: float32 is then the safe choice."""
    if cpuinfo is None:
        if not sys.platform.startswith("linux"):
            return False
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def compute_policy(precision: str, architecture: str, start_from: str = "") -> str:
    """The Keras dtype policy a new network trains under: "mixed_bfloat16" or "float32".

    precision: TrainConfig.precision. A network started from a saved model (``start_from``)
    trains in float32, as its file says. Raises DatasetError for an unknown precision."""
    if precision not in PRECISIONS:
        raise DatasetError(f"Unknown precision {precision!r}: use {', '.join(PRECISIONS)}.")
    if start_from or precision == "float32":
        return "float32"
    if precision == "bfloat16" or (architecture == "compact" and native_bfloat16()):
        return MIXED
    return "float32"


@contextlib.contextmanager
def building_in(policy: str):
    """Layers created inside take ``policy`` (Keras' global policy, put back afterwards)."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def float32_copy(model):
    """``model`` computing in float32: the same layers and weights (the float32 variables
    themselves, copied); ``model`` when it already does."""
    import keras

    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model

    def in_float32(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=in_float32)
    copy.set_weights(model.get_weights())
    return copy
