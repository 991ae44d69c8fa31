"""Issue 8's crop / mask / none comparison: train the bundled classifier's recipe with a lung-based
preprocessing variant, into a folder of your choosing (never models/).

    python scripts/compare_lung_preprocessing.py --variant crop --out /tmp/lungcmp/crop.keras

It runs scripts/train_bundled_model.py unchanged (same data, hold-out, seed and settings) with the
shared ``prepare`` swapped for :class:`lung_crop.LungPreprocessor` in training, in
the validation figures and in inference, so the card's figures are comparable across variants.
Prints the same per-subset figures as the training script, then attention on lungs over
covid-xray/Val and the held-back adult normals.

    python scripts/compare_lung_preprocessing.py --variant crop --lung-guidance 1 --out /tmp/lungcmp/crop-g.keras
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=("none", "crop", "mask"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--segmenter", type=Path, help="lung model (default: the bundled one)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lung-guidance", type=float, help="passed to train_bundled_model.py")
    args = parser.parse_args()
    if REPO / "models" in args.out.resolve().parents:
        raise SystemExit("write experiment models outside models/")

    import covidgui.core.training.train as training
    import train_bundled_model
    from lung_crop import LungPreprocessor
    from covidgui.core.inference.lungs import LungSegmenter
    from covidgui.core.inference.classifier import Classifier

    segmenter = LungSegmenter.load(args.segmenter)
    preprocess = LungPreprocessor(segmenter, args.variant)
    training.prepare = preprocess  # the training sequences' preprocessing
    Classifier.prepare = lambda self, pixels: preprocess(pixels, self.input_size)  # figures and inference

    argv = ["--out", str(args.out), "--data", str(args.data), "--version", f"lung-{args.variant}"]
    if args.epochs:
        argv += ["--epochs", str(args.epochs)]
    if args.lung_guidance is not None:
        argv += ["--lung-guidance", str(args.lung_guidance)]
    train_bundled_model.main(argv)
    card_file = args.out.with_suffix(".json")
    card = json.loads(card_file.read_text())
    card["preprocessing"]["lung_variant"] = args.variant
    card_file.write_text(json.dumps(card, indent=2) + "\n")

    classifier = Classifier.load(args.out, lungs=False)
    classifier.lungs = segmenter
    val = args.data / "covid-xray" / "Val"
    groups = {"Val Covid": sorted((val / "Covid").iterdir()), "Val Normal": sorted((val / "Normal").iterdir()),
              "held-back adults": [args.data / "adult-normal" / n for n in card["training"]["held_back_adult_normal"]]}
    for name, paths in groups.items():
        attention = [classifier.predict_file(p, heatmap=True).lung_attention for p in paths]
        attention = np.array([a for a in attention if a is not None])
        print(f"{args.variant}: attention on lungs, {name}: median {np.median(attention):.1%}, "
              f"below 50 %: {(attention < 0.5).sum()}/{len(attention)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
