"""Leave-one-source-out: how a training recipe does on a source it has never seen.

    python benchmarks/sources.py [--per-source 200] [--epochs 12] [recipe options] [--json out.json]

For each source of ../shared/data (covidgui.core.scoring.sources.SOURCE_FOLDERS) train on all the others
(at most --per-source images of each, from the train part of the locked split; calibration on
their calibration part) and test on every image of the left-out source outside the locked test
split. Prints a table (source, class, n, correct, %, with three classes the share called abnormal
and the confusion row, ECE) and the worst source. --classes Covid Normal keeps the two-class table. --two-stage normal-first
trains two models per fold (Normal vs COVID-19+Pneumonia, then COVID-19 vs Pneumonia on the abnormal
films; covid-first: COVID-19 vs the rest, then Normal vs Pneumonia) and scores their combined
probabilities (covidgui.core.scoring.two_stage). This is the figure
that predicts a hospital the model has never seen; compare recipes with the same schedule and seed.
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

from covidgui.core.scoring.sources import (BIMCV_POLICIES, CLASSES, DISPLAY_NAMES, choose_threshold, find_sources,  # noqa: E402
                                           format_table, leave_one_source_out, share_right_at, single_class_mean,
                                           with_threshold)
from covidgui.core.scoring.two_stage import PLANS, stage_one_files, stage_two_files, two_stage_rows  # noqa: E402
from covidgui.core.training.train import TrainConfig, add_recipe_arguments, recipe_from, train  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--per-source", type=int, default=200)
    parser.add_argument("--only", nargs="*", help="leave out only these sources (default: each in turn)")
    parser.add_argument("--classes", nargs="*", help="only the sources of these classes (default: all)")
    parser.add_argument("--json", type=Path, help="write the rows and the recipe here (after every fold)")
    parser.add_argument("--bimcv", choices=BIMCV_POLICIES, default="keep",
                        help="the bimcv-radiographydb films SIIM's radiologists read as Negative for Pneumonia: "
                             "keep (as Covid), drop them, relabel them Normal, or drop the whole source")
    parser.add_argument("--two-stage", choices=sorted(PLANS),
                        help="two models per fold, each of the recipe, their probabilities combined")
    add_recipe_arguments(parser, TrainConfig(epochs=12, patience=0))
    args = parser.parse_args(argv)
    config = recipe_from(args)

    cleaning = {}

    def train_fn(train_files, calibration_files):
        classifier = train(train_files, calibration_files, config, name="loso", version="0",
                           display_names=DISPLAY_NAMES, positive_class="Covid").classifier
        # --clean-noisy-sources: what the fold's first pass dropped goes into its row.
        cleaning["last"] = classifier.card.training.get("label_cleaning")
        return classifier

    score_fn = None
    if args.two_stage:
        plan = PLANS[args.two_stage]

        def train_pair(train_files, calibration_files):
            pair = []
            for stage, files_of, positive in ((1, stage_one_files, plan.stage1_positive),
                                              (2, stage_two_files, plan.stage2_positive)):
                pair.append(train(files_of(train_files, plan), files_of(calibration_files, plan), config,
                                  name=f"loso-stage{stage}", version="0", positive_class=positive).classifier)
            return tuple(pair)

        def score_fn(pair, files):
            return two_stage_rows(*pair, files, plan, CLASSES)

    sources = find_sources(args.data, classes=args.classes, bimcv=args.bimcv)
    held_out = [s for s in sources if not args.only or s.name in args.only]
    record = {"recipe": asdict(config), "two_stage": args.two_stage, "per_source": args.per_source, "bimcv": args.bimcv,
              "command": " ".join(sys.argv), "rows": []}
    started = time.perf_counter()

    def on_fold(row):
        row["seconds"] = round(time.perf_counter() - started, 1)
        if cleaning.get("last") is not None:
            row["label_cleaning"] = cleaning.pop("last")
        record["rows"].append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(record, indent=1))

    rows = leave_one_source_out(sources, train_pair if args.two_stage else train_fn, args.per_source, config.seed, on_fold,
                                held_out=[s.name for s in held_out], score_fn=score_fn)
    print(format_table(rows))
    if any("+" in r["class"] for r in rows) and any("+" not in r["class"] for r in rows):
        print(f"one-class sources' mean (as earlier tables): {single_class_mean(rows):.1%}")
    threshold, mean = choose_threshold(rows)
    at_half = share_right_at(rows, 0.5)
    print(f"decision threshold that serves these left-out sources best: {threshold:.2f} (mean share right "
          f"{mean:.1%}, against {at_half:.1%} at 0.50); chosen on the same rows, so optimistic:")
    print("with a threshold chosen on the other left-out sources (each source judged by a threshold it had no say in):")
    print(format_table(with_threshold(rows)))
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
