"""Launch figures of the PyInstaller bundle, as medians of several cold-ish runs.

    python benchmarks/bundle_startup.py [--exe dist/CovidGUI/CovidGUI] [--runs 5]

Each run starts a fresh bundle process (`CovidGUI gui --report-startup --exit-when-ready`,
offscreen) and times, from just before the process is started, the moments it prints
"window-shown" (first turn of the event loop after show()) and "model-ready". So the bootloader,
the unpacking-free one-folder start and every import are included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.startup import launch_once  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exe", type=Path, default=REPO / "dist" / "CovidGUI" / "CovidGUI")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [launch_once([str(args.exe)]) for _ in range(args.runs)]
    print(f"bundle launch -> window shown: median {statistics.median(r[0] for r in runs):.2f} s "
          f"(runs: {', '.join(f'{r[0]:.2f}' for r in runs)}; target < 3 s)")
    print(f"bundle launch -> model ready:  median {statistics.median(r[1] for r in runs):.2f} s "
          f"(runs: {', '.join(f'{r[1]:.2f}' for r in runs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
