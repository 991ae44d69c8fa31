"""A model on the one source whose classes share the hospitals: siim-covid (issue "Read the film").

    python benchmarks/siim.py [--model models/covid_classifier.keras] [--data ../shared/data] [--json out.json]

Prints, for the model as it calls (its own temperature, logit offsets and threshold):
- the SIIM locked test (Covid = Typical Appearance, Normal = Negative for Pneumonia): AUC,
  sensitivity and specificity with 95 % Wilson intervals, ECE, indeterminate and rejected counts;
- every SIIM Covid/Normal film outside the locked test (for a model that never saw SIIM; for one
  that trained on it these are its own training and calibration films: ignore them);
- how it calls SIIM's Indeterminate and Atypical films (no two-class model trains on them): the
  share in the indeterminate band and the share called COVID-19. For a three-class model (one with
  a Pneumonia class, issue 27) the Atypical films are that class: the locked test then holds all
  three, with each class's one-vs-rest AUC, Covid-vs-Normal on those films alone and the confusion.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidgui.core.data.dataset import LabelledFiles, image_files  # noqa: E402
from covidgui.core.inference.classifier import Classifier  # noqa: E402
from covidgui.core.scoring.evaluation import calls_on_unlabelled, predict_labelled  # noqa: E402
from covidgui.core.scoring.sources import find_sources, locked_split, rows_by_source  # noqa: E402

SIIM = "siim-covid"


def part_figures(classifier, files: LabelledFiles) -> dict:
    """The siim-covid row of rows_by_source (AUC, sensitivity and specificity with Wilson intervals)."""
    return rows_by_source(predict_labelled(classifier, files), classifier.card)[0]


def measure(classifier, data: Path) -> dict:
    """Everything the module docstring lists, as one JSON-ready dict."""
    card = classifier.card
    # A three-class model (issue 27) has SIIM's Atypical films as its Pneumonia class.
    classes = ["Covid", "Normal"] + (["Pneumonia"] if "Pneumonia" in card.classes else [])
    split = locked_split(find_sources(data, names=[SIIM], classes=classes), classes)
    development = split.train.extend(split.calibration)
    out = {"model": f"{card.name} {card.version}", "path": str(classifier.path),
           "locked_test": part_figures(classifier, split.test),
           "outside_locked_test": part_figures(classifier, development),
           "indeterminate_films": calls_on_unlabelled(classifier, image_files(data / "siim-covid" / "Indeterminate"))}
    if "Pneumonia" not in classes:
        out["atypical_films"] = calls_on_unlabelled(classifier, image_files(data / "siim-covid" / "Atypical"))
    return out


def describe(name: str, row: dict) -> str:
    text = (f"{name}: n {row['n']} {row['counts']}, AUC {row['auc']:.3f}, sensitivity {row['sensitivity']:.3f} "
            f"{row['sensitivity_ci95']}, specificity {row['specificity']:.3f} {row['specificity_ci95']}, "
            f"ECE {row['ece']:.3f}, indeterminate {row['indeterminate']}, rejected {row['rejected']}")
    if "auc_one_vs_rest" in row:
        versus = row["covid_vs_normal"]
        text += (f"\n  each class against the rest: AUC {row['auc_one_vs_rest']}; Covid vs Normal alone: AUC "
                 f"{versus['auc']:.3f}, sensitivity {versus['sensitivity']:.3f}, specificity {versus['specificity']:.3f}"
                 f"\n  confusion (true -> called): {row['confusion']}")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a .keras model (default: the bundled one)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    classifier = Classifier.load(args.model)
    figures = measure(classifier, args.data)
    print(figures["model"])
    print(describe("SIIM locked test", figures["locked_test"]))
    print(describe("SIIM outside the locked test", figures["outside_locked_test"]))
    for key in ("indeterminate_films", "atypical_films"):
        print(f"{key}: {figures[key]}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
