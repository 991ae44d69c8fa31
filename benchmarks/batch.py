"""Batch classification throughput and memory.

    python benchmarks/batch.py [--images 1000] [--large 10000] [--folder DIR]

Builds a folder of ``--images`` X-rays, 1024-2000 px on the long side, about two thirds JPEG and
one third PNG, greyscale and RGB: the shared covid-xray Train/Val images cropped, flipped and
resized at random, plus one in five generated. Then prints, in one run:

1. images/s of the full batch classification (decode, preprocess, inference, lung segmentation and
   attention on lungs; model load and the first traced call excluded), through
   ``core.batch.classify_stream`` as the GUI and CLI use it, and the same without attention on lungs;
2. the ratio of that time to a plain single-threaded Pillow loop over the same files
   (open, greyscale, resize to the model input) - and, for reference, to the same loop using
   Pillow's JPEG draft mode;
3. peak resident memory (ru_maxrss) of a fresh process that classifies a ``--large``-file folder
   (hard links to the built files, 10 names per file), keeping every row and thumbnail as the
   GUI's table does.

Files are read from the page cache in every measurement (each is read once before timing).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "covid-xray"


def generated_xray(rng: np.random.Generator, side: int) -> Image.Image:
    """A radiograph-like image: bright body, two dark lung fields, ribs-like stripes, noise."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    body = 0.75 - 0.3 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    cx = rng.uniform(0.25, 0.35)
    lungs = np.exp(-(((x - cx) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2)) + \
        np.exp(-(((x - 1 + cx) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2))
    ribs = 0.05 * np.sin(y * rng.uniform(40, 70))
    img = body - 0.45 * lungs + ribs + rng.normal(0, 0.03, (side, side)).astype(np.float32)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def build_folder(folder: Path, count: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    sources = sorted(p for p in SHARED.glob("*/*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        side = int(rng.integers(1024, 2001))
        if sources and i % 5 != 4:
            im = Image.open(sources[i % len(sources)])
            im = im.convert("RGB" if rng.random() < 0.3 else "L")
            w, h = im.size
            keep = rng.uniform(0.8, 1.0)
            left, top = int(rng.uniform(0, 1 - keep) * w), int(rng.uniform(0, 1 - keep) * h)
            im = im.crop((left, top, left + int(w * keep), top + int(h * keep)))
            if rng.random() < 0.5:
                im = ImageOps.mirror(im)
            scale = side / max(im.size)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC)
        else:
            im = generated_xray(rng, side)
        path = folder / (f"{i:05d}.png" if i % 3 == 2 else f"{i:05d}.jpg")
        if path.suffix == ".png":
            im.save(path, compress_level=6)
        else:
            im.save(path, quality=int(rng.integers(85, 96)))
        paths.append(path)
    return paths


def plain_pillow_loop(paths: list[Path], size: int, draft: bool = False) -> float:
    """Seconds for open -> greyscale -> resize to the model input, one file after another."""
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as im:
            if draft and im.format == "JPEG":
                im.draft("L", (size, size))
            im.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    return time.perf_counter() - started


def pipeline_seconds(classifier, paths: list[Path], thumbnails: bool = False,
                     lung_attention: bool = True) -> tuple[float, list]:
    from covidgui.core.analysis.batch import classify_stream

    started = time.perf_counter()
    items = [item for chunk in classify_stream(classifier, paths, thumbnails=thumbnails, lung_attention=lung_attention)
             for item in chunk]
    return time.perf_counter() - started, items


def cpu_seconds(fn, *args):
    """(wall seconds, CPU seconds of this whole process - every thread -, result) of fn(*args)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def warm_page_cache(paths: list[Path]) -> None:
    for path in paths:
        path.read_bytes()


def large_folder_child(folder: Path) -> int:
    """Runs in a fresh process: classify every file in ``folder`` as the GUI does, print peak RSS."""
    from covidgui.core.analysis.batch import find_images
    from covidgui.core.inference.classifier import Classifier

    classifier = Classifier.load()
    files = find_images([folder]).files
    seconds, items = pipeline_seconds(classifier, files, thumbnails=True)
    failed = sum(not i.ok for i in items)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{len(items)} {failed} {seconds:.1f} {peak_mb:.0f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10_000, help="files in the memory test (0 = skip)")
    parser.add_argument("--folder", type=Path, help="build (or reuse) the images here instead of a temp folder")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child:
        return large_folder_child(args.child)

    with tempfile.TemporaryDirectory(prefix="covidgui-batch-") as tmp:
        folder = args.folder or Path(tmp) / "images"
        existing = sorted(folder.glob("*.*")) if folder.is_dir() else []
        if len(existing) >= args.images:
            paths = existing[: args.images]
        else:
            started = time.perf_counter()
            paths = build_folder(folder, args.images)
            print(f"built {len(paths)} images in {time.perf_counter() - started:.0f} s", flush=True)
        jpegs = sum(p.suffix == ".jpg" for p in paths)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"folder: {len(paths)} files ({jpegs} JPEG, {len(paths) - jpegs} PNG), {mb:.0f} MB, "
              f"CPUs: {os.cpu_count()}")

        from covidgui.core.inference.classifier import Classifier

        classifier = Classifier.load()
        size = classifier.input_size
        warm_page_cache(paths)
        pipeline_seconds(classifier, paths[:64])  # traces the model for the batch shape
        load_before = os.getloadavg()[0]
        _, pipe_cpu, (pipe_s, items) = cpu_seconds(pipeline_seconds, classifier, paths)
        failed = sum(not i.ok for i in items)
        _, plain_cpu, plain_s = cpu_seconds(plain_pillow_loop, paths, size)
        draft_s = plain_pillow_loop(paths, size, draft=True)
        print(f"1. batch classification: {len(paths) / pipe_s:.1f} images/s "
              f"({pipe_s:.1f} s for {len(paths)} files, {failed} failed)")
        if classifier.lungs is not None:
            bare_s, _ = pipeline_seconds(classifier, paths, lung_attention=False)
            print(f"   of which attention on lungs (batched Grad-CAM): without it {len(paths) / bare_s:.1f} images/s "
                  f"({bare_s:.1f} s); with it {pipe_s / bare_s:.2f} x the time")
        print(f"2. ratio to a plain single-threaded Pillow decode-and-resize loop: {pipe_s / plain_s:.2f} "
              f"(loop {plain_s:.1f} s = {len(paths) / plain_s:.1f} images/s); "
              f"to the same loop with JPEG draft mode: {pipe_s / draft_s:.2f} (loop {draft_s:.1f} s)")
        print(f"   CPU time (all threads): pipeline {pipe_cpu:.1f} s, plain loop {plain_cpu:.1f} s; "
              f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs "
              f"(other processes take cores from the pipeline's threads, not from a one-thread loop)")

        if args.large:
            large = Path(tmp) / "large"
            large.mkdir()
            for i in range(args.large):
                os.link(paths[i % len(paths)], large / f"{i:05d}{paths[i % len(paths)].suffix}")
            # Two more realistic neighbours: a non-image file and a corrupt image.
            (large / "notes.txt").write_text("skipped")
            (large / "broken.jpg").write_bytes(paths[0].read_bytes()[:5000])
            out = subprocess.run([sys.executable, __file__, "--child", str(large)], capture_output=True,
                                 text=True, check=False)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            rows, failed, seconds, peak_mb = out.stdout.split()[-4:]
            print(f"3. peak resident memory classifying a {args.large}-file folder: {peak_mb} MB "
                  f"({rows} rows kept with thumbnails, {failed} failed, {seconds} s, "
                  f"{int(rows) / float(seconds):.1f} images/s; model and TensorFlow included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
