"""``covidgui train DIR --start-from active|bundled|PATH``: adapt a model to a site's films in a terminal.

Progress goes to stderr; stdout holds the result only: with ``--json`` exactly one JSON object
(``{"starting": {...}, "adapted": {...}, "model": path, ...}``), else a small side-by-side table
and, when the adapted model is not clearly better, a sentence that says so.
"""

from __future__ import annotations

import json
import sys

from covidgui.core.training.adapt import CALIBRATION_SHARE

HEADLINE = ("n", "auc", "sensitivity", "specificity")


def adapt_command(args, lung_guidance: float) -> int:
    """Run ``covidgui train --start-from``; ``lung_guidance`` is the weight the CLI resolved."""
    from dataclasses import replace

    import time

    from covidgui.core.data.dataset import scan_class_folders
    from covidgui.core.data.datasummary import summarize_training_data
    from covidgui.core.errors import DatasetError
    from covidgui.core.models.modelcard import read_card
    from covidgui.core.models.registry import check_free_model_path
    from covidgui.core.training.adapt import adapt, adaptation_config, compare_on, match_model_classes, \
        patient_groups, resolve_start
    from covidgui.core.training.recipe import TrainConfig

    started = time.perf_counter()
    start = resolve_start(args.start_from)
    card = read_card(start)
    check_free_model_path(args.out)
    if args.input_size is not None and args.input_size != card.input_size:
        raise DatasetError(f"The model to start from ({start.name}) takes {card.input_size} px; "
                           f"--input-size {args.input_size} cannot change that.")
    match_model_classes(scan_class_folders(args.train_dir), card)  # the class check before any decoding
    # With a --val folder the summary checks it too; without, the split it makes is undone below.
    summary = summarize_training_data(args.train_dir, args.val, CALIBRATION_SHARE, args.seed)
    print(summary.text(), file=sys.stderr, flush=True)
    if not summary.ok:
        raise DatasetError(" ".join(summary.problems))
    files = summary.train if args.val else summary.train.extend(summary.val)
    folds = args.folds if args.folds is not None else (0 if args.val else 5)
    if folds == 1 or folds < 0:
        raise DatasetError("--folds must be 0 (no cross-validation) or at least 2.")
    # The gentle schedule, with the user's own epochs, learning rate and patience when given.
    config = adaptation_config(start, TrainConfig(batch_size=args.batch_size, augment=not args.no_augment,
                                                  seed=args.seed, lung_guidance=lung_guidance))
    config = replace(config, **{k: v for k, v in (("epochs", args.epochs), ("learning_rate", args.learning_rate),
                                                  ("patience", args.patience)) if v is not None})
    info = {"command": "covidgui " + " ".join(sys.argv[1:]) if sys.argv[1:] else "covidgui train",
            "data": str(args.train_dir), "left_out_unreadable": summary.unreadable}

    def progress(event):
        if event.kind in ("phase", "epoch"):
            print(event.describe(), file=sys.stderr, flush=True)

    outcome = adapt(files, start, config, folds=folds, seed=args.seed, groups=patient_groups(args.train_dir, files),
                    on_event=progress, save_to=args.out, name=args.name if args.name != "custom-model" else None,
                    training_info=info)
    if args.val:  # a folder neither model was fitted or calibrated on
        val = match_model_classes(summary.val, card)
        outcome.update(compare_on(val, start, outcome["classifier"]), evaluated_on=str(args.val))
    elif folds:
        outcome["evaluated_on"] = f"the {len(files)} films of {args.train_dir}, each judged by a model not trained on it " \
                                  f"({folds} folds)"
    result = {"starting": outcome.get("starting"), "adapted": outcome.get("adapted"), "model": outcome["model"],
              "started_from": {"name": card.name, "version": card.version, "path": str(start)},
              **{k: outcome[k] for k in ("folds", "seconds", "seen_by_starting_model", "evaluated_on", "operating_point")
                 if k in outcome},
              "unreadable": {**summary.unreadable, **outcome.get("unreadable", {})},
              "seconds_total": round(time.perf_counter() - started, 1)}  # "seconds": the cross-validation's
    print(json.dumps(result, indent=1) if args.json else format_comparison(result))
    return 0


def format_comparison(result: dict) -> str:
    """The starting and adapted figures side by side, and a plain sentence when the adapted
    model is not better beyond the intervals."""
    start, adapted = result["starting"], result["adapted"]
    lines = [f"adapted model written to {result['model']}"]
    if start is None or adapted is None:
        return "\n".join(lines + ["no estimate of the gain: no cross-validation (--folds 0) and no --val folder"])
    name = f"{result['started_from']['name']} {result['started_from']['version']}"
    lines += [f"measured on: {result.get('evaluated_on', 'the same films')}",
              f"{'':<13}{'starting (' + name + ')':<32}adapted"]
    for key in ("auc", "sensitivity", "specificity"):
        lines.append(f"{key:<13}{_figure(start, key):<32}{_figure(adapted, key)}")
    lines.append(f"{'films':<13}{start['n']:<32}{adapted['n']}")
    if result.get("seen_by_starting_model"):
        lines.append(f"note: the starting model was trained or calibrated on {result['seen_by_starting_model']} "
                     "of these films, which flatters its figures")
    verdict = verdict_sentence(start, adapted)
    return "\n".join(lines + ([verdict] if verdict else []))


def verdict_sentence(start: dict, adapted: dict) -> str:
    """"" when the adapted model's AUC is higher beyond both intervals, else a plain sentence
    (:func:`covidgui.core.training.adapt.adaptation_verdict`, which the Training tab shows too)."""
    from covidgui.core.training.adapt import adaptation_verdict

    better, sentence = adaptation_verdict({"starting": start, "adapted": adapted})
    return "" if better else sentence


def _figure(figures: dict, key: str) -> str:
    value, interval = figures.get(key), figures.get(f"{key}_ci95")
    if value is None:
        return "-"
    text = f"{value:.3f}" if key == "auc" else f"{value:.1%}"
    if interval:
        lo, hi = interval
        text += f" ({lo:.3f}-{hi:.3f})" if key == "auc" else f" ({lo:.0%}-{hi:.0%})"
    return text
