"""A guard against PySide6 6.12.0's reference leak on ``None``, the cause of the "native crash".

What was found (issue 14; reproduction: ``python scripts/repro_qt_none_leak.py``): in PySide6 6.12.0,
``QCoreApplication.processEvents()`` and ``QCoreApplication.sendPostedEvents()`` return ``None``
without taking the reference they hand back, so each call takes one reference to ``None`` from
everybody else. On Python 3.11 ``None`` is an ordinary object (immortal only from Python 3.12,
PEP 683): after a few thousand calls in a bare process, or a couple of hundred thousand with
TensorFlow loaded, its count reaches zero and the interpreter aborts with "Fatal Python error:
none_dealloc", or dies in whatever code (often TensorFlow's tracing, which churns ``None``) drops
the last reference. No TensorFlow, thread or QThread is needed: a loop of ``processEvents()`` on
the main thread crashes within seconds. PySide6 6.11.3 does not leak (same test, 8.7 million calls).

pyproject.toml excludes 6.12.0. Because a venv may still hold it (or a later release may bring
the leak back), :func:`guard_none_refcount` measures the leak at start-up and, only when there is
one, wraps the two methods so that each call gives back the reference it took. Where there is no
leak (another PySide6 version, Python 3.12+), it changes nothing.
"""

from __future__ import annotations

import ctypes
import gc
import sys

_PROBE_CALLS = 64
_PROBE_ROUNDS = 3
_LEAKING = ("processEvents", "sendPostedEvents")


def none_refcount_drift(call, calls: int = _PROBE_CALLS) -> float:
    """How much ``call()`` changes the reference count of None, per call (0 when it is correct)."""
    before = sys.getrefcount(None)
    for _ in range(calls):
        call()
    return (sys.getrefcount(None) - before) / calls


def leaks_none(method) -> bool:
    """Whether each call of ``method`` takes exactly one reference to None, in every one of a few
    probe rounds. One round is not enough: a garbage collection or another thread freeing objects
    that held None during the round looks like a leak (CI once wrapped 6.11.3's correct
    processEvents that way, and the guard then added a reference per call)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return all(none_refcount_drift(method) == -1 for _ in range(_PROBE_ROUNDS))
    finally:
        if collecting:
            gc.enable()


def guard_none_refcount() -> list[str]:
    """Give back, after each call, the reference to None that the leaking methods take; returns the
    names of the methods it wrapped (empty when nothing leaks or it was already done)."""
    from PySide6.QtCore import QCoreApplication

    wrapped = []
    for name in _LEAKING:
        method = getattr(QCoreApplication, name)
        if getattr(method, "covidgui_none_guard", False):
            continue
        if not leaks_none(method):
            continue  # this PySide6 keeps its references right (or leaks differently: leave it alone)
        for _ in range(_PROBE_CALLS * _PROBE_ROUNDS):  # what the probes themselves took
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))

        def guarded(*args, _method=method, **kwargs):
            result = _method(*args, **kwargs)
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))  # the reference the call took
            return result

        guarded.covidgui_none_guard = True
        guarded.__doc__ = method.__doc__
        setattr(QCoreApplication, name, staticmethod(guarded))
        wrapped.append(name)
    return wrapped
