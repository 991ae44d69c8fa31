"""Train the bundled lung segmenter (models/lung_segmenter.keras + .json) from ../shared/data.

    python scripts/train_lung_model.py [--data ../shared/data] [--out models/lung_segmenter.keras]

Training data: the adult-normal images with their hand-drawn masks, minus the adult normals the
bundled classifier holds back for validation (read from its model card, so that no image the
classifier is validated on was seen by either model). The held-back masks give the Dice on the card.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from covidgui.core.training.lung_training import (LungTrainConfig, held_back_dice, load_pairs, save_segmenter,
                                         train_segmenter)

REPO = Path(__file__).resolve().parents[1]


def warm_median_ms(fn, runs: int = 30) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "lung_segmenter.keras")
    parser.add_argument("--hold-back-from", type=Path, default=REPO / "models" / "covid_classifier.json",
                        help="model card whose training.held_back_adult_normal list is held back here too")
    defaults = LungTrainConfig()
    parser.add_argument("--size", type=int, default=defaults.input_size)
    parser.add_argument("--base-filters", type=int, default=defaults.base_filters)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    folder = args.data / "adult-normal"
    held_names = json.loads(args.hold_back_from.read_text())["training"]["held_back_adult_normal"]
    all_images = sorted(folder.glob("*.jpg"))
    held = [p for p in all_images if p.name in set(held_names)]
    train_images = [p for p in all_images if p.name not in set(held_names)]
    if len(held) != len(held_names):
        raise SystemExit(f"held-back list names {len(held_names)} images, {len(held)} found in {folder}")
    config = LungTrainConfig(input_size=args.size, base_filters=args.base_filters, epochs=args.epochs,
                             seed=args.seed)
    started = time.perf_counter()
    inputs, targets = load_pairs(train_images, config.input_size)
    print(f"{len(train_images)} training pairs, {len(held)} held back; prepared in "
          f"{time.perf_counter() - started:.0f} s", flush=True)

    def report(epoch, logs):
        print(f"epoch {epoch + 1}/{config.epochs} loss {logs['loss']:.4f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)

    segmenter = train_segmenter(inputs, targets, config, report)
    seconds = time.perf_counter() - started

    scores = held_back_dice(segmenter, held)
    app_scores = held_back_dice(segmenter, held, max_side=224)  # decoded as the app decodes
    values = np.array(list(scores.values()))
    one = inputs[:1]
    from covidgui.core.io.images import load_xray

    pixels = load_xray(held[0], max_side=224).pixels
    command = "python scripts/train_lung_model.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    model = segmenter.keras_model
    segmenter.card = {
        "name": "lung-unet",
        "version": "1.0.0",
        "task": "lung-field segmentation of frontal chest radiographs",
        "input_size": config.input_size,
        "threshold": 0.5,
        "preprocessing": "covidgui.core.inference.preprocess.prepare (the classifier's: borders cropped, resized to "
                         "input_size square, histogram-equalised); in-model rescale 0..1 -> -1..1",
        "output": "lung probability per pixel of the prepared input; mask = probability > threshold, "
                  "mapped back to the source image through the crop box",
        "architecture": {"name": model.name, "parameters": int(model.count_params()),
                         "base_filters": config.base_filters, "depth": config.depth},
        "training": {
            "command": command.strip(),
            "data": f"adult-normal: {len(train_images)} images with hand-drawn masks",
            "held_back": sorted(p.name for p in held),
            "held_back_source": "the bundled classifier's training.held_back_adult_normal",
            "config": asdict(config),
            "augmentation": "rotation +-11 deg, zoom -15..+20 %, shift +-8 %, contrast, brightness, noise; no flips"
                            + ("; random soft opacities painted inside the lungs of half the images (mask kept)"
                               if config.opacities else ""),
            "seconds": round(seconds, 1),
            "tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version(),
        },
        "metrics": {
            "held_back_dice": {
                "n": len(values), "mean": float(values.mean()), "median": float(np.median(values)),
                "min": float(values.min()), "p10": float(np.quantile(values, 0.1)),
                "measured_at": "source resolution of the hand-drawn masks, full-resolution decode",
                "mean_as_app_decodes": float(np.mean(list(app_scores.values()))),
            },
            "speed_ms_warm_median": {
                "forward_one_image": round(warm_median_ms(lambda: segmenter.probabilities(one)), 1),
                "segment_from_pixels_to_source_mask": round(warm_median_ms(lambda: segmenter.segment(pixels)), 1),
                "note": "2 shared CPU cores; benchmarks/lungs.py re-measures",
            },
        },
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = save_segmenter(segmenter, args.out)
    segmenter.card["file_bytes"] = path.stat().st_size
    save_segmenter(segmenter, args.out)
    print(json.dumps(segmenter.card["metrics"], indent=1))
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB) after {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
