"""A recipe with siim-covid in its training data, judged on SIIM's locked test (reduced schedule).

    python benchmarks/siim_recipe.py [--per-source 120] [--epochs 10] [--bimcv keep|drop-read-negative|
        relabel-read-negative|drop-source] [--calibrate-on siim-covid] [recipe options] [--json out.json]

Trains on the train part of the locked split of every Covid/Normal source (siim-covid included; at
most --per-source films of each source's class, the same seeded sample as leave-one-source-out),
calibrates on their calibration part (--calibrate-on: temperature and logit offsets on that source's
calibration films only), and scores the locked test part per source: siim-covid's row carries AUC,
sensitivity and specificity. This compares choices that only matter when SIIM trains (how much it
weighs, what the PCR-labelled BIMCV films teach, where the threshold sits); what predicts a new
hospital is leave-one-source-out (benchmarks/sources.py), where SIIM and BIMCV are left out together.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidgui.core.scoring.recalibrate import recalibrate  # noqa: E402
from covidgui.core.scoring.sources import (BIMCV_POLICIES, DISPLAY_NAMES, find_sources, format_table,  # noqa: E402
                                           locked_split, score_by_source, select)
from covidgui.core.training.train import TrainConfig, add_recipe_arguments, recipe_from, train  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--per-source", type=int, default=120)
    parser.add_argument("--bimcv", choices=BIMCV_POLICIES, default="keep")
    parser.add_argument("--calibrate-on", nargs="*", default=[])
    parser.add_argument("--json", type=Path)
    add_recipe_arguments(parser, TrainConfig(epochs=10, patience=0, source_balance=True, acquisition_augment=True,
                                             amplitude_mix=0.5, lung_guidance=1.0))
    args = parser.parse_args(argv)
    config = recipe_from(args)
    started = time.perf_counter()
    split = locked_split(find_sources(args.data, classes=["Covid", "Normal"], bimcv=args.bimcv), ["Covid", "Normal"])
    train_files = select(split.train, lambda name: True, args.per_source, config.seed)
    calibration = select(split.calibration, lambda name: True, max(args.per_source // 3, 1), config.seed)
    classifier = train(train_files, calibration, config, name="siim-recipe", version="0",
                       display_names=DISPLAY_NAMES, positive_class="Covid").classifier
    # All of the chosen source's calibration films (not the capped sample): the offsets need them.
    recalibration = recalibrate(classifier, split.calibration, args.calibrate_on) if args.calibrate_on else None
    rows = score_by_source(classifier, split.test)
    print(format_table(rows))
    record = {"recipe": asdict(config), "per_source": args.per_source, "bimcv": args.bimcv,
              "calibrate_on": args.calibrate_on, "recalibration": recalibration, "command": " ".join(sys.argv),
              "seconds": round(time.perf_counter() - started, 1), "locked_test": rows}
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
