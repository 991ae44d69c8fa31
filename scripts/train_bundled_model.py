"""Train the bundled classifier (models/covid_classifier.keras) from ../shared/data.

    python scripts/train_bundled_model.py [--data ../shared/data] [--loso LOSO.json] [--out DIR|FILE.keras]
                                          [recipe options]

Data: the sources of --classes in covidgui.core.scoring.sources.SOURCE_FOLDERS (one class each, but
siim-covid, which holds COVID-19 and Normal films of the same hospitals), split
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidgui.core.scoring.metrics import classification_report, expected_calibration_error  # noqa: E402
from covidgui.core.data.dataset import image_files, short_file_hashes  # noqa: E402
from covidgui.core.models.modelcard import FILE_HASHES_KEY, read_card  # noqa: E402
from covidgui.core.scoring.evaluation import calls_on_unlabelled, predict_labelled  # noqa: E402
from covidgui.core.scoring.recalibrate import recalibrate  # noqa: E402
from covidgui.core.scoring.sources import (BIMCV_POLICIES, CLASSES, DISPLAY_NAMES, NORMAL_CLASS,  # noqa: E402
                                           find_sources, locked_split, rows_by_source, share_of)
from covidgui.core.training.train import (ProgressListener, TrainConfig, add_recipe_arguments,  # noqa: E402
                                    recipe_from, source_factors, train)
from covidgui.core.models.model_files import file_digest, save_model  # noqa: E402

# The shipped recipe: what the leave-one-source-out tables rewarded (see the model card's notes).
RECIPE = TrainConfig(epochs=30, patience=0, source_balance=True, acquisition_augment=True, amplitude_mix=0.5,
                     lung_guidance=1.0)


class PrintProgress(ProgressListener):
    def on_epoch(self, epoch, epochs, logs):
        print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.3f}" for k, v in logs.items()), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--version", required=True,
                        help="the model's version in its card (the bundled v4.2.0 is this script's 4.0.1 with a "
                             "test-time view: see `make model`)")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "covid_classifier.keras",
                        help="the .keras file to write, or a folder to write covid_classifier.keras into")
    parser.add_argument("--loso", type=Path, nargs="*", default=[],
                        help="benchmarks/sources.py --json outputs of this recipe (a later file's rows replace "
                             "an earlier one's for the same source: a fold re-run with its hospital group)")
    parser.add_argument("--classes", nargs="*", default=["Covid", "Normal"],
                        help="the model's classes (the sources of these classes train it)")
    parser.add_argument("--sources", nargs="*", default=None,
                        help="train on these sources only (default: every source of the classes), e.g. "
                             "siim-covid alone to see what a recipe learns inside one hospital group")
    parser.add_argument("--bimcv", choices=BIMCV_POLICIES, default="keep",
                        help="what to do with the bimcv-radiographydb films SIIM's radiologists read as negative")
    parser.add_argument("--calibrate-on", nargs="*", default=[],
                        help="refit temperature and logit offsets on these sources' calibration films "
                             "(a source holding both classes: siim-covid), the band on all")
    parser.add_argument("--train-share", metavar="SOURCE=FRACTION",
                        help="train on a seeded share of one source's train films (each class's, e.g. "
                             "siim-covid=0.5): a learning curve of what more films of that source would give")
    add_recipe_arguments(parser, RECIPE)
    args = parser.parse_args(argv)
    config = recipe_from(args)
    out = args.out if args.out.suffix == ".keras" else args.out / "covid_classifier.keras"
    out.parent.mkdir(parents=True, exist_ok=True)

    sources = find_sources(args.data, names=args.sources, classes=args.classes, bimcv=args.bimcv)
    split = locked_split(sources, [c for c in CLASSES if c in args.classes])
    if args.train_share:
        source, _, fraction = args.train_share.partition("=")
        try:
            split.train = share_of(split.train, source, float(fraction), config.seed)
        except ValueError as exc:
            parser.error(f"--train-share {args.train_share}: {exc}")
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
        # Which files it was fitted on, by content: evaluate reports them apart from unseen files.
        FILE_HASHES_KEY: {"train": short_file_hashes(split.train), "calibration": short_file_hashes(split.calibration)},
        "locked_test_files": {s.name: sorted(p.name for p, g in zip(split.test.paths, split.test.groups)
                                             if g == s.name) for s in sources},
    }
    if config.start_from:  # the card names the model it was fine-tuned from (its path may be overwritten)
        start = read_card(config.start_from)
        info["started_from"] = f"{start.name} {start.version} ({Path(config.start_from).name})"
    elif config.pretrained_weights:  # the weights file by content: its path is the trainer's own
        info["started_from"] = (f"{config.architecture}'s ImageNet weights (sha256 "
                                f"{file_digest(config.pretrained_weights)[:16]}, scripts/convert_lite0_weights.py)")
    started = time.perf_counter()
    result = train(split.train, split.calibration, config, PrintProgress(), name="covid-cnn", version=args.version,
                   display_names=DISPLAY_NAMES, positive_class="Covid",
                   training_info=info)
    seconds = time.perf_counter() - started
    classifier = result.classifier
    card = classifier.card
    card.training["seconds"] = round(seconds, 1)
    card.metrics["validation"]["dataset"] = "calibration split (used to fit temperature, gate and band)"
    if args.calibrate_on:
        card.metrics["recalibration"] = recalibrate(classifier, split.calibration, args.calibrate_on)

    score_locked_test(classifier, split, args.data)
    rows = card.test["per_source"]
    if args.loso:
        loso_into_card(card, args.loso)
    card.notes = notes_for(config, args.calibrate_on, info.get("started_from"))
    path = save_model(classifier, out)
    print(json.dumps({"test": {k: v for k, v in card.test.items() if k not in ("per_source", "calls")},
                      "per_source": rows}, indent=1))
    print(f"saved {path} after {seconds:.0f} s; unreadable: {result.unreadable or 'none'}")
    return 0


def score_locked_test(classifier, split, data: Path) -> None:
    """The card's test figures: the locked test split, per source, through the same path as every
    user of the model (its gate included), and how it calls SIIM's films of neither class."""
    card = classifier.card
    predicted = predict_labelled(classifier, split.test)
    rows = rows_by_source(predicted, card)
    overall = classification_report(predicted.labels, predicted.probabilities, card.classes, "Covid")
    card.test = {"per_source": rows, "n": overall["n"], "correct": overall["correct"],
                 "sensitivity": overall["sensitivity"], "specificity": overall["specificity"],
                 "auc": overall["auc"], "ece": expected_calibration_error(predicted.probabilities, predicted.labels),
                 "confusion_matrix": overall["confusion_matrix"], "classes": overall["classes"],
                 # Each class's own sensitivity and specificity (with two classes: the headline two).
                 "per_class": {c: {k: v[k] for k in ("sensitivity", "specificity", "support")}
                               for c, v in overall["per_class"].items()},
                 # Each film's call (top class), by source and file name: the per-source figures
                 # are these counted, and tests/test_model_card_figures.py checks a sample of them
                 # against the model instead of classifying the whole test split again.
                 "calls": film_calls(predicted, split.test, card.classes)}
    if NORMAL_CLASS in card.classes and len(card.classes) > 2:
        # Any class but Normal is a finding: how often a film of each abnormal class was called abnormal.
        top, normal = predicted.probabilities.argmax(axis=1), card.classes.index(NORMAL_CLASS)
        card.test["called_abnormal"] = {c: round(float((top[predicted.labels == i] != normal).mean()), 4)
                                        for i, c in enumerate(card.classes)
                                        if i != normal and (predicted.labels == i).any()}
    # Films the radiologists read as neither class: an honest model is unsure on most of them.
    for reading in ("Indeterminate", "Atypical"):
        folder = data / "siim-covid" / reading
        if folder.is_dir():
            card.test.setdefault("siim_readings", {})[reading] = calls_on_unlabelled(classifier, image_files(folder))


def film_calls(predicted, files, classes: list[str]) -> dict[str, dict[str, str]]:
    """Source -> file name -> the class a model called (its top class, gate and band ignored), for
    the readable ``files`` ``predicted`` holds in order."""
    readable = [p for p in files.paths if str(p) not in predicted.unreadable]
    calls: dict[str, dict[str, str]] = {}
    for path, group, row in zip(readable, predicted.groups, predicted.probabilities):
        calls.setdefault(group, {})[Path(path).name] = classes[int(np.argmax(row))]
    return calls


def loso_into_card(card, paths: list[Path]) -> None:
    """The card's leave-one-source-out rows from benchmarks/sources.py --json files, a later file's
    row replacing an earlier one's for the same source; per-image probabilities stay in the files."""
    rows, schedules, commands = {}, [], []
    for path in paths:
        loso = json.loads(Path(path).read_text())
        for row in loso["rows"]:
            rows[row["source"]] = {k: v for k, v in row.items()
                                   if k not in ("positive_probabilities", "probabilities", "classes", "labels")}
        schedules.append(f"{loso['per_source']} training images per source, {loso['recipe']['epochs']} epochs, "
                         f"seed {loso['recipe']['seed']}")
        commands.append(loso.get("command"))
    card.leave_one_source_out = list(rows.values())
    card.test["loso_schedule"] = "; ".join(dict.fromkeys(schedules))
    card.test["loso_command"] = commands if len(commands) > 1 else commands[0]


def notes_for(config: TrainConfig, calibrate_on: list[str], started_from: str | None) -> str:
    """The card's notes, worded from what this run did (its recipe, not a fixed text)."""
    weights = source_factors(config)
    lines = [f"Fine-tuned from {started_from}." if started_from else "Trained from a new network.",
             *([f"Network: {config.architecture}."] if config.architecture != "compact" else []),
             "Most sources hold one class only, so a model can learn where an image comes from instead of what "
             "it shows; siim-covid holds both classes from the same hospitals, read by radiologists "
             "(COVID-19 = 'Typical Appearance' of COVID-19 pneumonia, Normal = 'Negative for Pneumonia')."]
    if weights:
        lines.append("Inside each class, " + ", ".join(f"{name} weighs {factor:g} times" for name, factor in weights.items())
                     + " what another source does.")
    if calibrate_on:
        lines.append(f"The temperature and the decision threshold (logit offsets) were fitted on the calibration "
                     f"films of {', '.join(calibrate_on)} alone.")
    lines.append("COVID-19 here means a pattern typical of COVID-19 pneumonia on the film: an infected patient with "
                 "clear lungs is called Normal. The locked test figures come from images of the sources it was "
                 "trained on and are optimistic for a new hospital; the leave-one-source-out rows (each source "
                 "tested by a model of the recipe that never saw it, siim-covid and bimcv-radiographydb left out "
                 "together) predict an unseen hospital better. Research use only.")
    return " ".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
