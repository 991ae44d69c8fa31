"""Start-up and latency figures, as medians of several runs.

    python benchmarks/startup.py [--runs 5]

Prints launch -> window shown and launch -> model ready (each a fresh `covidgui gui` process,
offscreen, timed from just before the process is started); where the model-ready time goes
(runtime import, classifier load, lung segmenter load, first pass; each phase timed in a fresh
process, medians; and whether TensorFlow was imported, which the app no longer needs to classify); and the warm single-image classification latency of a 1024-px JPEG, decode
included (in this process, after a warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "covid-xray" / "Val" / "Covid"


def launch_once(command: list[str] | None = None) -> tuple[float, float]:
    """Seconds from starting ``command`` (default: this venv's ``python -m covidgui``) to its
    window being shown and to its model being ready, read from ``--report-startup`` lines."""
    command = command or [sys.executable, "-m", "covidgui"]
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    proc = subprocess.Popen([*command, "gui", "--report-startup", "--exit-when-ready"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    seen = {}
    for line in proc.stdout:  # the bundle may print other lines; keep only the two events
        if line.split() and line.split()[0] in ("window-shown", "model-ready"):
            seen[line.split()[0]] = time.perf_counter() - started
    proc.wait(timeout=180)
    if proc.returncode != 0 or set(seen) != {"window-shown", "model-ready"}:
        raise SystemExit(f"launch failed: exit {proc.returncode}, saw {seen}")
    return seen["window-shown"], seen["model-ready"]


# Runs in a fresh interpreter: the phases of getting the model ready, in the order the app's worker
# does them (gui/inference.py: Classifier.load, then one forward pass on the worker's thread).
PHASES_CODE = """
import sys, time, json
t0 = time.perf_counter()
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from covidgui.core.inference.classifier import Classifier
t1 = time.perf_counter()
classifier = Classifier.load(lungs=False)
t2 = time.perf_counter()
from covidgui.core.inference.lungs import load_bundled_segmenter
segmenter = load_bundled_segmenter()
t3 = time.perf_counter()
classifier.lungs = segmenter
classifier.probabilities(np.zeros((1, classifier.input_size, classifier.input_size), np.float32))
t4 = time.perf_counter()
print(json.dumps({"LiteRT + covidgui import": t1 - t0, "classifier load (graph, card, gate)": t2 - t1,
                  "lung segmenter load": t3 - t2, "first forward pass": t4 - t3,
                  "tensorflow imported (0/1)": float("tensorflow" in sys.modules)}))
"""


def phases_once() -> dict[str, float]:
    """Seconds per phase of getting the model ready, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", PHASES_CODE], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"phase timing failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def jpeg_1024(folder: Path) -> Path:
    """A real 1024-px Val X-ray when ../shared is present, else a generated one."""
    path = folder / "xray_1024.jpg"
    sources = sorted(SHARED.glob("*.jp*g")) if SHARED.is_dir() else []
    if sources:
        Image.open(sources[0]).convert("L").resize((1024, 1024)).save(path, quality=92)
    else:
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (1024, 1024), dtype=np.uint8)).save(path, quality=92)
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    launches = [launch_once() for _ in range(args.runs)]
    shown = statistics.median(t[0] for t in launches)
    ready = statistics.median(t[1] for t in launches)
    phases = [phases_once() for _ in range(args.runs)]

    from covidgui.core.inference.classifier import Classifier

    classifier = Classifier.load()
    with tempfile.TemporaryDirectory() as tmp:
        path = jpeg_1024(Path(tmp))
        for _ in range(5):
            classifier.predict_file(path)
        latencies = []
        for _ in range(30):
            t0 = time.perf_counter()
            classifier.predict_file(path)
            latencies.append(time.perf_counter() - t0)
        heatmap = []
        for _ in range(10):
            t0 = time.perf_counter()
            classifier.predict_file(path, heatmap=True)
            heatmap.append(time.perf_counter() - t0)
    print(f"launch -> window shown:  median {shown:.2f} s over {args.runs} runs (target < 1.5 s)")
    print(f"launch -> model ready:   median {ready:.2f} s over {args.runs} runs (target < 2.5 s)")
    for name in phases[0]:
        print(f"  {name + ':':40s} median {statistics.median(p[name] for p in phases):.2f} s")
    print(f"warm classify 1024-px JPEG (decode included): median {statistics.median(latencies) * 1000:.1f} ms "
          f"over {len(latencies)} runs (target < 150 ms)")
    print(f"warm classify + Grad-CAM heatmap:             median {statistics.median(heatmap) * 1000:.1f} ms "
          f"over {len(heatmap)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
