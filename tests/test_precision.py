"""What a training computes in: bfloat16 where the processor has it, and a kept model in float32."""

from __future__ import annotations

import numpy as np
import pytest

from covidgui.core.errors import DatasetError
from covidgui.core.training import precision
from covidgui.core.training.precision import MIXED, compute_policy, float32_copy, native_bfloat16

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
OLDER = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: fpu avx512f amx_bf16 amx_tile\n"


def test_the_processor_flags_say_whether_bfloat16_is_native():
    assert native_bfloat16(ZEN4) and native_bfloat16(SAPPHIRE_RAPIDS)
    assert not native_bfloat16(OLDER)
    assert not native_bfloat16("processor\t: 0\n")  # no flags line: not known, so not assumed


def test_auto_trains_the_compact_network_in_bfloat16_only_on_such_a_processor(monkeypatch):
    monkeypatch.setattr(precision, "native_bfloat16", lambda: True)
    assert compute_policy("auto", "compact") == MIXED
    # Measured slower in bfloat16 (depthwise convolutions), and a started model keeps its file's float32.
    assert compute_policy("auto", "efficientnet-lite0") == "float32"
    assert compute_policy("auto", "compact", start_from="model.keras") == "float32"
    assert compute_policy("float32", "compact") == "float32"
    monkeypatch.setattr(precision, "native_bfloat16", lambda: False)
    assert compute_policy("auto", "compact") == "float32"
    assert compute_policy("bfloat16", "compact") == MIXED  # asked for: emulated, but honoured
    with pytest.raises(DatasetError, match="Unknown precision 'half'"):
        compute_policy("half", "compact")


def test_the_float32_copy_is_the_float32_network_with_the_same_weights():
    from covidgui.core.training.network import build_classifier

    with precision.building_in(MIXED):
        mixed = build_classifier(32, 2, seed=3)
    assert {layer.dtype_policy.name for layer in mixed.layers} == {MIXED, "float32"}  # the head stays float32
    plain = build_classifier(32, 2, seed=3)
    copy = float32_copy(mixed)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    assert float32_copy(plain) is plain
    x = np.random.default_rng(0).random((2, 32, 32, 1), np.float32)
    assert np.array_equal(np.asarray(copy(x)), np.asarray(plain(x)))  # same seeded weights, same arithmetic
    assert not np.array_equal(np.asarray(mixed(x)), np.asarray(plain(x)))  # bfloat16 does round
