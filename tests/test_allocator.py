"""The allocator setting for training (covidgui/core/training/allocator.py): memory a step frees
stays in the process instead of going back to the system and being faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocates, touches and frees 160 MB in 8-MB blocks; prints the resident MB the free gave back.
PROBE = """
import ctypes, os, sys
sys.path.insert(0, {repo!r})
if {keep}:
    from covidgui.core.training.allocator import keep_freed_memory
    assert keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
page = os.sysconf("SC_PAGE_SIZE")
resident = lambda: int(open("/proc/self/statm").read().split()[1]) * page / 2**20
blocks = [libc.malloc(8 << 20) for _ in range(20)]
for b in blocks:
    ctypes.memset(b, 1, 8 << 20)
held = resident()
for b in reversed(blocks):
    libc.free(b)
print(round(held - resident()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is glibc's (Linux); elsewhere it does nothing")
def test_freed_buffers_stay_in_the_process_once_set():
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])

    def given_back(keep: bool) -> int:
        done = subprocess.run([sys.executable, "-c", PROBE.format(repo=repo, keep=keep)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert given_back(False) > 100  # glibc's defaults: the freed blocks go back to the system
    assert given_back(True) < 20  # kept for the next step
