"""Launch figures of the PyInstaller bundle, as medians of several cold-ish runs.

    python benchmarks/bundle_startup.py [--exe dist/CovidGUI/CovidGUI] [--runs 5]

Each run starts a fresh bundle process (`CovidGUI gui --report-startup --exit-when-ready`,
offscreen) and times, from just before the process is started, the moments it prints
"window-shown" (first turn of the event loop after show()) and "model-ready". So the bootloader,
the unpacking-free one-folder start and every import are included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def launch_once(exe: Path) -> tuple[float, float]:
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    proc = subprocess.Popen([str(exe), "gui", "--report-startup", "--exit-when-ready"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    seen = {}
    for line in proc.stdout:
        if line.split() and line.split()[0] in ("window-shown", "model-ready"):
            seen[line.split()[0]] = time.perf_counter() - started
    proc.wait(timeout=180)
    if proc.returncode != 0 or set(seen) != {"window-shown", "model-ready"}:
        raise SystemExit(f"launch failed: exit {proc.returncode}, saw {seen}")
    return seen["window-shown"], seen["model-ready"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exe", type=Path, default=REPO / "dist" / "CovidGUI" / "CovidGUI")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [launch_once(args.exe) for _ in range(args.runs)]
    print(f"bundle launch -> window shown: median {statistics.median(r[0] for r in runs):.2f} s "
          f"(runs: {', '.join(f'{r[0]:.2f}' for r in runs)}; target < 3 s)")
    print(f"bundle launch -> model ready:  median {statistics.median(r[1] for r in runs):.2f} s "
          f"(runs: {', '.join(f'{r[1]:.2f}' for r in runs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
