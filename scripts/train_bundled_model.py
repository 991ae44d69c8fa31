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

from covidgui.core.dataset import LabelledFiles, manifest_hash, scan_class_folders, split_off
from covidgui.core.images import load_xray
from covidgui.core.metrics import classification_report
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
    args = parser.parse_args(argv)

    classes = ["Covid", "Normal"]
    covid_train = scan_class_folders(args.data / "covid-xray" / "Train", classes)
    covid_val = scan_class_folders(args.data / "covid-xray" / "Val", classes)
    adults = LabelledFiles(["Normal"], sorted((args.data / "adult-normal").glob("*.jpg")))
    adults.labels = [0] * len(adults.paths)
    adult_train, adult_val = split_off(adults, args.hold_out, args.seed)
    train_files = covid_train.extend(adult_train)
    val_files = covid_val.extend(adult_val)

    config = TrainConfig(epochs=args.epochs, seed=args.seed, patience=0)
    command = "python scripts/train_bundled_model.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    info = {
        "command": command.strip(),
        "data": "covid-xray/Train + adult-normal (minus hold-out) as Normal",
        "validation_data": f"covid-xray/Val + {len(adult_val)} held-back adult-normal",
        "manifest_sha256": {"train": manifest_hash(train_files), "validation": manifest_hash(val_files)},
        "held_back_adult_normal": [p.name for p in adult_val.paths],
        "split_seed": args.seed,
    }
    started = time.perf_counter()
    result = train(train_files, val_files, config, PrintProgress(), name="covid-cnn", version="1.0.0",
                   display_names={"Covid": "COVID-19", "Normal": "Normal"}, positive_class="Covid",
                   training_info=info)
    seconds = time.perf_counter() - started
    card = result.classifier.card
    card.training["seconds"] = round(seconds, 1)

    # The headline figures, per validation subset, with the calibrated model.
    subsets = {"covid-xray/Val": covid_val, "adult-normal held-back": adult_val}
    for name, files in subsets.items():
        labels = [card.classes.index(files.classes[lab]) for lab in files.labels]
        probs = np.stack([result.classifier.probabilities(
            result.classifier.prepare(load_xray(p).pixels).input[None])[0] for p in files.paths])
        report = classification_report(labels, probs, card.classes, "Covid")
        report["dataset"] = name
        card.metrics[name] = report
    card.metrics["validation"]["dataset"] = info["validation_data"]
    path = save_model(result.classifier, args.out)
    print(json.dumps({k: {kk: v[kk] for kk in ("n", "correct", "confusion_matrix", "sensitivity", "specificity", "auc")}
                      for k, v in card.metrics.items()}, indent=1))
    print(f"saved {path} after {seconds:.0f} s; unreadable: {result.unreadable or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
