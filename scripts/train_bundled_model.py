"""Train the bundled classifier (models/covid_classifier.keras) from ../shared/data.

    python scripts/train_bundled_model.py [--data ../shared/data] [--loso LOSO.json] [--out DIR|FILE.keras]
                                          [recipe options]

Data: every source of covidgui.core.scoring.sources.SOURCE_FOLDERS (eight collections, one class each:
COVID-19, Normal, Pneumonia), split
by covidgui.core.scoring.sources.locked_split: the train part trains, the calibration part fits the
temperature, the input gate and the indeterminate band, and the locked test part is used for
nothing but the figures in the model card (per source). --loso names the leave-one-source-out
table of the same recipe (``python benchmarks/sources.py ... --json LOSO.json``), which the card
carries as the figure that predicts an unseen hospital. --out writes elsewhere than models/ (a
folder gets covid_classifier.keras and its card and gate), to compare a candidate before shipping it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidgui.core.scoring.metrics import classification_report, expected_calibration_error  # noqa: E402
from covidgui.core.data.dataset import image_files  # noqa: E402
from covidgui.core.scoring.evaluation import calls_on_unlabelled, predict_labelled  # noqa: E402
from covidgui.core.scoring.recalibrate import recalibrate  # noqa: E402
from covidgui.core.scoring.sources import (BIMCV_POLICIES, CLASSES, DISPLAY_NAMES, NORMAL_CLASS,  # noqa: E402
                                           find_sources, locked_split, rows_by_source)
from covidgui.core.training.train import (ProgressListener, TrainConfig, add_recipe_arguments,  # noqa: E402
                                    recipe_from, train)
from covidgui.core.models.model_files import save_model  # noqa: E402

VERSION = "3.0.0"
# The shipped recipe: what the leave-one-source-out tables rewarded (see the model card's notes).
RECIPE = TrainConfig(epochs=30, patience=0, source_balance=True, acquisition_augment=True, amplitude_mix=0.5,
                     lung_guidance=1.0)


class PrintProgress(ProgressListener):
    def on_epoch(self, epoch, epochs, logs):
        print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.3f}" for k, v in logs.items()), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "covid_classifier.keras",
                        help="the .keras file to write, or a folder to write covid_classifier.keras into")
    parser.add_argument("--loso", type=Path, help="benchmarks/sources.py --json output of this recipe")
    parser.add_argument("--classes", nargs="*", default=["Covid", "Normal"],
                        help="the model's classes (the sources of these classes train it)")
    parser.add_argument("--bimcv", choices=BIMCV_POLICIES, default="keep",
                        help="what to do with the bimcv-radiographydb films SIIM's radiologists read as negative")
    parser.add_argument("--calibrate-on", nargs="*", default=[],
                        help="refit temperature and logit offsets on these sources' calibration films "
                             "(a source holding both classes: siim-covid), the band on all")
    add_recipe_arguments(parser, RECIPE)
    args = parser.parse_args(argv)
    config = recipe_from(args)
    out = args.out if args.out.suffix == ".keras" else args.out / "covid_classifier.keras"
    out.parent.mkdir(parents=True, exist_ok=True)

    sources = find_sources(args.data, classes=args.classes, bimcv=args.bimcv)
    split = locked_split(sources, [c for c in CLASSES if c in args.classes])
    # Where the model is written does not change it, so --out is left out of the recorded command.
    given = list(argv or sys.argv[1:])
    recorded = [a for i, a in enumerate(given)
                if not a.startswith("--out") and (i == 0 or given[i - 1] != "--out")]
    info = {
        "command": ("python scripts/train_bundled_model.py " + " ".join(shlex.quote(a) for a in recorded)).strip(),
        "data": "; ".join(s.describe() for s in sources),
        "bimcv_read_negative": args.bimcv,
        "validation_data": "calibration part of the locked split (temperature, input gate, indeterminate band)",
        "split": split.manifest(),
        "locked_test_files": {s.name: sorted(p.name for p, g in zip(split.test.paths, split.test.groups)
                                             if g == s.name) for s in sources},
    }
    started = time.perf_counter()
    result = train(split.train, split.calibration, config, PrintProgress(), name="covid-cnn", version=VERSION,
                   display_names=DISPLAY_NAMES, positive_class="Covid",
                   training_info=info)
    seconds = time.perf_counter() - started
    classifier = result.classifier
    card = classifier.card
    card.training["seconds"] = round(seconds, 1)
    card.metrics["validation"]["dataset"] = "calibration split (used to fit temperature, gate and band)"
    if args.calibrate_on:
        card.metrics["recalibration"] = recalibrate(classifier, split.calibration, args.calibrate_on)

    # The locked test split, per source, through the same path as every user of the model.
    predicted = predict_labelled(classifier, split.test)
    rows = rows_by_source(predicted, card)
    overall = classification_report(predicted.labels, predicted.probabilities, card.classes, "Covid")
    card.test = {"per_source": rows, "n": overall["n"], "correct": overall["correct"],
                 "sensitivity": overall["sensitivity"], "specificity": overall["specificity"],
                 "auc": overall["auc"], "ece": expected_calibration_error(predicted.probabilities, predicted.labels),
                 "confusion_matrix": overall["confusion_matrix"], "classes": overall["classes"],
                 # Each class's own sensitivity and specificity (with two classes: the headline two).
                 "per_class": {c: {k: v[k] for k in ("sensitivity", "specificity", "support")}
                               for c, v in overall["per_class"].items()}}
    if NORMAL_CLASS in card.classes and len(card.classes) > 2:
        # Any class but Normal is a finding: how often a film of each abnormal class was called abnormal.
        top, normal = predicted.probabilities.argmax(axis=1), card.classes.index(NORMAL_CLASS)
        card.test["called_abnormal"] = {c: round(float((top[predicted.labels == i] != normal).mean()), 4)
                                        for i, c in enumerate(card.classes)
                                        if i != normal and (predicted.labels == i).any()}
    # Films the radiologists read as neither class: an honest model is unsure on most of them.
    for reading in ("Indeterminate", "Atypical"):
        folder = args.data / "siim-covid" / reading
        if folder.is_dir():
            card.test.setdefault("siim_readings", {})[reading] = calls_on_unlabelled(classifier, image_files(folder))
    if args.loso:
        loso = json.loads(args.loso.read_text())
        # Per-image probabilities stay in the benchmark's file; the card keeps the counts.
        card.leave_one_source_out = [{k: v for k, v in row.items()
                                      if k not in ("positive_probabilities", "probabilities", "classes")}
                                     for row in loso["rows"]]
        card.test["loso_schedule"] = (f"{loso['per_source']} training images per source, "
                                      f"{loso['recipe']['epochs']} epochs, seed {loso['recipe']['seed']}")
        card.test["loso_command"] = loso.get("command")
    card.notes = NOTES
    path = save_model(classifier, out)
    print(json.dumps({"test": {k: v for k, v in card.test.items() if k != "per_source"},
                      "per_source": rows}, indent=1))
    print(f"saved {path} after {seconds:.0f} s; unreadable: {result.unreadable or 'none'}")
    return 0


NOTES = ("Trained on eight sources, each holding one class only, so a model can learn where an image comes "
         "from instead of what it shows. The locked test figures come from images of the same sources "
         "and are optimistic for a new hospital; the leave-one-source-out figures (each source tested by "
         "a model that never saw it) predict an unseen hospital better. Research use only.")


if __name__ == "__main__":
    raise SystemExit(main())
