"""Keep the memory a training step frees for the next step (Linux with glibc; elsewhere nothing).

Every training step allocates and frees the same large activation and gradient buffers. Under
glibc's defaults the freed top of the heap can be handed back to the system and taken again at
the next step, each page faulted in afresh (system time was 160 of an adaptation's 500 CPU
seconds). A high trim threshold and top pad, and the mmap threshold fixed at glibc's largest,
keep those buffers in the process. Measured on ``benchmarks/training.py profile --films 160
--epochs 3`` in pairs on this 2-core machine, results identical to the last digit: as environment
variables (MALLOC_TRIM_THRESHOLD_ and MALLOC_TOP_PAD_), wall-time ratio 0.85 (2 pairs); as set
here, 0.90 (3 pairs, 0.89-0.94), peak memory about the same (benchmarks/results/training-profile.md).
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters (glibc's malloc.h) and the values set.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20),  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
            (M_TRIM_THRESHOLD, 1 << 30),
            (M_TOP_PAD, 256 << 20))

_kept = False


def keep_freed_memory() -> bool:
    """Set the allocator as above, once per process; True when it was set (Linux with glibc)."""
    global _kept
    if _kept or not sys.platform.startswith("linux"):
        return _kept
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _kept = all(mallopt(parameter, value) == 1 for parameter, value in SETTINGS)
    return _kept
