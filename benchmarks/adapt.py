"""Adapting to a new hospital with its own films (issue 25): siim-covid plays the new hospital.

    python benchmarks/adapt.py starting --out START.keras [--per-source 120] [--epochs 10] [--seed 0] [recipe options]
    python benchmarks/adapt.py run --start START.keras [--n 0 10 25 50 100 200] [--seeds 0 1]
                                   [--json out.json] [--plot out.png]
    python benchmarks/adapt.py time --start START.keras [--n 50] [--folds 5] [--repeats 3]

starting: the model a hospital would install: trained without siim-covid and without
bimcv-radiographydb (one hospital group), on the other sources' train parts (at most
--per-source films of each source and class) with the shipped recipe's options, calibrated on
their calibration parts: the valencia fold of ``benchmarks/sources.py``, saved.

run: for each N (labelled films per class drawn from SIIM's train part, seeded) and seed, on
SIIM's locked test (881 films, by study id):
- (a) ``adapted``: the starting model adapted on the 2N films as the app does
  (covidgui.core.training.adapt: gentle schedule, --folds cross-validation folds whose out-of-fold
  logits set the final model's temperature, threshold and band; with --folds 0, as before issue
  25's second round, all three refitted on a held-out fifth; the gate always is);
- (b) ``scratch``: a new network trained on the same films and split, the reduced schedule of the
  leave-one-source-out tables (the shipped recipe, 10 epochs);
- (c) ``batchnorm``: the starting model with its BatchNorm statistics re-estimated on the same
  films, labels unused (AdaBN, covidgui.core.training.adabn);
with AUC, sensitivity and specificity (as each model calls), and the wall time of each adaptation.
N = 0 is the starting model itself. Writes the rows to --json after each one (a long run keeps
what it did) and draws AUC against N to --plot.

time: the wall time of what the app does when a hospital adapts on --n films per class: --folds
cross-validation folds plus the final model (covidgui.core.training.adapt.adapt), --repeats times
on different draws; prints each and the median. Run it on a quiet machine for the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidgui.core.data.dataset import LabelledFiles  # noqa: E402
from covidgui.core.scoring.sources import find_sources, hospital_group, locked_split, select  # noqa: E402
from covidgui.core.training.precision import PRECISIONS  # noqa: E402
from covidgui.core.training.recipe import TrainConfig, add_recipe_arguments, recipe_from  # noqa: E402

SIIM = "siim-covid"
CLASSES = ["Covid", "Normal"]
DISPLAY_NAMES = {"Covid": "COVID-19", "Normal": "Normal"}
# The shipped recipe of the leave-one-source-out tables (benchmarks/results/siim-summary.md), in
# float32 as the tables in benchmarks/results were made (the app's "auto" trains the compact network
# in bfloat16 on a processor that has it; --scratch-precision chooses).
SHIPPED = TrainConfig(epochs=10, patience=0, source_balance=True, acquisition_augment=True, lung_guidance=1.0,
                      amplitude_mix=0.5, precision="float32")


def make_starting_model(args) -> None:
    from covidgui.core.models.model_files import save_model
    from covidgui.core.training.train import train

    config = recipe_from(args)
    sources = find_sources(args.data, classes=CLASSES)
    split = locked_split(sources, CLASSES)
    away = hospital_group(SIIM)

    def others(name):
        return hospital_group(name) != away

    train_files = select(split.train, others, args.per_source, config.seed)
    calibration = select(split.calibration, others, max(args.per_source // 3, 1), config.seed)
    started = time.perf_counter()
    classifier = train(train_files, calibration, config, name="start-without-valencia", version="0",
                       display_names=DISPLAY_NAMES, positive_class="Covid",
                       training_info={"command": " ".join(sys.argv), "left_out": sorted(
                           s.name for s in sources if hospital_group(s.name) == away)}).classifier
    out = save_model(classifier, args.out)
    print(f"saved {out} after {time.perf_counter() - started:.0f} s; trained on {train_files.counts()} "
          f"from {sorted(set(train_files.group_names()))}")


def judge(classifier, test: LabelledFiles) -> dict:
    """The SIIM locked-test figures of a model as it calls (its temperature, band and gate), and
    the best specificity its ROC curve reaches at sensitivity 0.85 (issue 25's target)."""
    from covidgui.core.scoring.evaluation import predict_labelled
    from covidgui.core.scoring.metrics import specificity_at_sensitivity
    from covidgui.core.scoring.sources import rows_by_source

    card = classifier.card
    predicted = predict_labelled(classifier, test)
    row = rows_by_source(predicted, card)[0]
    positive = card.classes.index(card.positive_class)
    on_curve = specificity_at_sensitivity(predicted.labels == positive, predicted.probabilities[:, positive], 0.85)
    return {**{k: row.get(k) for k in ("n", "auc", "sensitivity", "specificity", "ece", "indeterminate", "rejected")},
            "specificity_at_sensitivity_0.85": None if on_curve is None else round(on_curve, 4)}


def adapt_config(args, seed: int) -> TrainConfig:
    """The app's adaptation recipe, with this run's --adapt-* changes (a variant to compare)."""
    from covidgui.core.training.adapt import adaptation_config

    config = replace(adaptation_config(args.start), seed=seed)
    changes = {k: v for k, v in (("epochs", args.adapt_epochs), ("learning_rate", args.adapt_learning_rate),
                                 ("freeze_before", args.adapt_freeze_before),
                                 ("reestimate_batch_norm", args.adapt_reestimate_batch_norm),
                                 ("head_first", args.adapt_head_first)) if v is not None}
    return replace(config, **changes)


def run_benchmark(args) -> None:
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.training.adabn import adapt_batch_norm
    from covidgui.core.training.adapt import adapt, split_for_calibration
    from covidgui.core.training.train import train

    split = locked_split(find_sources(args.data, names=[SIIM], classes=CLASSES), CLASSES)
    test, pool = split.test, split.train
    scratch = replace(SHIPPED, precision=args.scratch_precision)
    record = {"start": str(args.start), "command": " ".join(sys.argv), "test": test.counts(),
              "scratch_recipe": asdict(scratch), "rows": [row for path in args.merge
                                                          for row in json.loads(path.read_text())["rows"]]}

    def keep(row):
        record["rows"].append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(record, indent=1))

    if 0 in args.n:
        keep({"method": "starting", "n_per_class": 0, "seed": None, "seconds": 0.0,
              **judge(Classifier.load(args.start), test)})
    for seed in args.seeds:
        for n in [n for n in args.n if n > 0]:
            files = select(pool, lambda name: True, n, seed)  # n of each class, seeded
            for method in args.methods:
                started = time.perf_counter()
                if method == "adapted":
                    classifier = adapt(files, args.start, adapt_config(args, seed), folds=args.folds,
                                       seed=seed)["classifier"]
                elif method == "scratch":
                    fit, calibration = split_for_calibration(files, seed)
                    classifier = train(fit, calibration, replace(scratch, seed=seed), name="scratch", version="0",
                                       display_names=DISPLAY_NAMES, positive_class="Covid").classifier
                else:
                    classifier = adapt_batch_norm(args.start, files.paths)
                seconds = round(time.perf_counter() - started, 1)
                name = f"adapted ({args.variant})" if method == "adapted" and args.variant else method
                keep({"method": name, "n_per_class": n, "seed": seed, "seconds": seconds,
                      **({"folds": args.folds} if method == "adapted" else {}), **judge(classifier, test)})
    if args.plot:
        plot(record["rows"], args.plot)
    print(table(record["rows"]))


def table(rows: list[dict]) -> str:
    """Markdown: one row per method and N, the seeds' figures side by side."""
    lines = ["| method | N per class | AUC (per seed) | sensitivity | specificity | specificity at sensitivity 0.85 "
             "(ROC) | seconds |", "|---|---:|---|---|---|---|---|"]
    keys = sorted({(r["method"], r["n_per_class"]) for r in rows}, key=lambda k: (k[1], k[0]))
    for method, n in keys:
        got = [r for r in rows if (r["method"], r["n_per_class"]) == (method, n)]

        def col(key, digits=3):
            return " / ".join("n/a" if r.get(key) is None else f"{r[key]:.{digits}f}" for r in got)

        lines.append(f"| {method} | {n} | {col('auc')} | {col('sensitivity')} | {col('specificity')} | "
                     f"{col('specificity_at_sensitivity_0.85')} | {col('seconds', 0)} |")
    return "\n".join(lines)


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    start = [r["auc"] for r in rows if r["method"] == "starting"]
    if start:
        ax.axhline(start[0], color="#777", ls=":", lw=1, label=f"starting model {start[0]:.3f}")
    colours = {"adapted": "#1565c0", "scratch": "#c62828", "batchnorm": "#2e7d32"}
    others = iter(("#6a1b9a", "#ef6c00", "#00838f", "#5d4037"))
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "starting"))
    for method in methods:
        colour = colours.get(method) or next(others)
        got = [r for r in rows if r["method"] == method and r["auc"] is not None]
        if not got:
            continue
        ns = sorted({r["n_per_class"] for r in got})
        ax.scatter([r["n_per_class"] for r in got], [r["auc"] for r in got], color=colour, s=14, alpha=0.6)
        ax.plot(ns, [np.mean([r["auc"] for r in got if r["n_per_class"] == n]) for n in ns], color=colour,
                label=f"{method} (mean of seeds)")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("labelled SIIM films per class")
    ax.set_ylabel("AUC on SIIM's locked test (881 films)")
    ax.set_title("Adapting to a new hospital (siim-covid)")
    ax.legend(fontsize=8)
    fig.savefig(out, dpi=120)


def time_adaptation(args) -> None:
    from covidgui.core.training.adapt import adapt, adaptation_config

    pool = locked_split(find_sources(args.data, names=[SIIM], classes=CLASSES), CLASSES).train
    seconds = []
    for repeat in range(args.repeats):
        files = select(pool, lambda name: True, args.n, repeat)
        started = time.perf_counter()
        summary = adapt(files, args.start, replace(adaptation_config(args.start), seed=repeat), folds=args.folds,
                        seed=repeat)
        seconds.append(time.perf_counter() - started)
        print(f"run {repeat + 1}: {seconds[-1]:.0f} s; out of fold AUC starting {summary['starting']['auc']:.3f}, "
              f"adapted {summary['adapted']['auc']:.3f}", flush=True)
    print(f"median {np.median(seconds):.0f} s over {len(seconds)} runs ({args.n} films per class, {args.folds} folds "
          f"+ the final model); load average {os.getloadavg()[0]:.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("starting")
    start.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    start.add_argument("--out", type=Path, required=True)
    start.add_argument("--per-source", type=int, default=120)
    add_recipe_arguments(start, SHIPPED)
    run = sub.add_parser("run")
    run.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    run.add_argument("--start", type=Path, required=True)
    run.add_argument("--n", type=int, nargs="+", default=[0, 10, 25, 50, 100, 200])
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    run.add_argument("--methods", nargs="+", default=["adapted", "scratch", "batchnorm"])
    run.add_argument("--adapt-epochs", type=int, help="a variant of the app's adaptation recipe: its epochs")
    run.add_argument("--adapt-learning-rate", type=float)
    run.add_argument("--adapt-freeze-before", help='the layer the freeze stops at ("" = train every layer)')
    run.add_argument("--adapt-reestimate-batch-norm", type=lambda s: s.lower() in ("1", "true", "yes", "on"),
                     metavar="0|1", help="re-estimate BatchNorm statistics on the clean films after fit")
    run.add_argument("--adapt-head-first", type=lambda s: s.lower() in ("1", "true", "yes", "on"), metavar="0|1",
                     help="fit the logits layer to the films' embeddings before fine-tuning (LP-FT)")
    run.add_argument("--folds", type=int, default=5,
                     help="adapted: cross-validation folds before the final model, as the app (its operating "
                          "point is fitted on their out-of-fold logits); 0: none, calibrated on a held-out fifth")
    run.add_argument("--variant", default="", help="the variant's name in the rows (with --adapt-*)")
    run.add_argument("--scratch-precision", choices=PRECISIONS, default=SHIPPED.precision,
                     help="what the scratch rows train in (default float32, as the stored tables were)")
    run.add_argument("--json", type=Path)
    run.add_argument("--merge", type=Path, nargs="*", default=[],
                     help="earlier --json files whose rows go into this run's table and plot")
    run.add_argument("--plot", type=Path)
    timing = sub.add_parser("time")
    timing.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    timing.add_argument("--start", type=Path, required=True)
    timing.add_argument("--n", type=int, default=50)
    timing.add_argument("--folds", type=int, default=5)
    timing.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "starting":
        make_starting_model(args)
    elif args.command == "time":
        time_adaptation(args)
    else:
        run_benchmark(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
