"""Train the bundled classifier (models/covid_classifier.keras) from ../shared/data.

    python scripts/train_bundled_model.py [--data ../shared/data] [--out models/covid_classifier.keras]

Training data: covid-xray/Train (Covid, Normal) plus the adult-normal images as Normal, minus a
seeded hold-out of adult normals. Validation (temperature fit and reported figures):
covid-xray/Val plus those held-back adult normals. The adult normals are there to break the
"child vs adult" shortcut of covid-xray, whose Normal class is all children.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from covidgui.core.dataset import manifest_hash
from covidgui.core.metrics import classification_report
from covidgui.core.reference_data import bundled_model_split
from covidgui.core.training import ProgressListener, TrainConfig, save_model, train

REPO = Path(__file__).resolve().parents[1]


class PrintProgress(ProgressListener):
    def on_epoch(self, epoch, epochs, logs):
        print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.3f}" for k, v in logs.items()), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "covid_classifier.keras")
    parser.add_argument("--hold-out", type=int, default=75, help="adult normals held back for validation")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lung-guidance", type=float, default=TrainConfig.lung_guidance,
                        help="weight of the penalty on evidence outside the lung fields (0: off)")
    args = parser.parse_args(argv)

    split = bundled_model_split(args.data, args.hold_out, args.seed)
    train_files, val_files = split.train, split.val
    covid_val, adult_val = split.covid_val, split.adult_val

    config = TrainConfig(epochs=args.epochs, seed=args.seed, patience=0, lung_guidance=args.lung_guidance)
    # Where the model is written does not change it, so --out is left out of the recorded command.
    given = list(argv or sys.argv[1:])
    recorded = [a for i, a in enumerate(given)
                if not a.startswith("--out") and (i == 0 or given[i - 1] != "--out")]
    command = "python scripts/train_bundled_model.py " + " ".join(shlex.quote(a) for a in recorded)
    info = {
        "command": command.strip(),
        "data": "covid-xray/Train + adult-normal (minus hold-out) as Normal",
        "validation_data": f"covid-xray/Val + {len(adult_val)} held-back adult-normal",
        "manifest_sha256": {"train": manifest_hash(train_files), "validation": manifest_hash(val_files)},
        "held_back_adult_normal": [p.name for p in adult_val.paths],
        "split_seed": args.seed,
    }
    started = time.perf_counter()
    result = train(train_files, val_files, config, PrintProgress(), name="covid-cnn", version="1.1.0",
                   display_names={"Covid": "COVID-19", "Normal": "Normal"}, positive_class="Covid",
                   training_info=info)
    seconds = time.perf_counter() - started
    card = result.classifier.card
    card.training["seconds"] = round(seconds, 1)
    if config.lung_guidance > 0:
        card.notes = ("Trained with lung guidance (covidgui.core.lung_guidance): its evidence is kept on the "
                      "segmented lung fields. Version 1.0.0, trained without it, scored higher on these "
                      "validation images but decided largely from outside the lungs.")

    # The headline figures, per validation subset, with the calibrated model.
    subsets = {"covid-xray/Val": covid_val, "adult-normal held-back": adult_val}
    for name, files in subsets.items():
        labels = [card.classes.index(files.classes[lab]) for lab in files.labels]
        # The same path as every user of the model (reduced-size decode, batched).
        probs = np.stack([[r.probabilities[card.display_name(c)] for c in card.classes]
                          for r in result.classifier.predict_files(files.paths)])
        report = classification_report(labels, probs, card.classes, "Covid")
        report["dataset"] = name
        card.metrics[name] = report
    card.metrics["validation"]["dataset"] = info["validation_data"]
    path = save_model(result.classifier, args.out)
    print(json.dumps({name: {k: card.metrics[name][k] for k in ("n", "correct", "confusion_matrix", "auc")}
                      for name in ("validation", *subsets)}))
    print(f"saved {path} after {seconds:.0f} s; unreadable: {result.unreadable or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
