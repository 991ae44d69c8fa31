"""The command line: ``covidgui [gui] | classify | train | evaluate`` over the same core as the GUI.

Heavy modules (Qt, TensorFlow) are imported inside each command, so ``covidgui --help`` is fast
and ``classify`` never loads Qt.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from covidgui import DISCLAIMER, __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="covidgui",
        description=f"Chest X-ray second opinion: COVID-19 or normal. {DISCLAIMER}",
    )
    parser.add_argument("--version", action="version", version=f"covidgui {__version__}")
    sub = parser.add_subparsers(dest="command")

    gui = sub.add_parser("gui", help="start the desktop application (the default)")
    gui.add_argument("--model", help="a .keras model file to use instead of the bundled one")
    gui.add_argument("--report-startup", action="store_true", help=argparse.SUPPRESS)
    gui.add_argument("--exit-when-ready", action="store_true", help=argparse.SUPPRESS)

    classify = sub.add_parser("classify", help="classify image files and folders")
    classify.add_argument("files", nargs="+", type=Path,
                          help="X-ray image files, or folders (searched recursively; non-image files are skipped)")
    classify.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines)")
    classify.add_argument("--csv", type=Path, metavar="OUT.csv",
                          help="write one row per file to this CSV (then nothing is printed per file unless --json)")
    classify.add_argument("--model", type=Path, help="a .keras model file (default: the bundled model)")

    train = sub.add_parser("train", help="train a model on folders laid out one subfolder per class")
    train.add_argument("train_dir", type=Path)
    val = train.add_mutually_exclusive_group()
    val.add_argument("--val", type=Path, help="validation folder with the same class subfolders")
    val.add_argument("--val-split", type=float, default=0.2,
                     help="share of each class held back for validation when --val is not given (default 0.2)")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--no-augment", action="store_true", help="train without augmentation")
    train.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (0 = off)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--input-size", type=int, default=224)
    train.add_argument("--name", default="custom-model")
    train.add_argument("--out", type=Path, required=True, help="where to write the .keras model (and its .json card)")

    evaluate = sub.add_parser("evaluate", help="measure a model on a folder with one subfolder per class")
    evaluate.add_argument("data_dir", type=Path)
    evaluate.add_argument("--model", type=Path, help="a .keras model file (default: the bundled model)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "gui"
    if command == "gui":
        from covidgui.gui.app import main as gui_main

        return gui_main(getattr(args, "model", None), getattr(args, "report_startup", False),
                        getattr(args, "exit_when_ready", False))
    from covidgui.core.errors import CovidGUIError

    try:
        return {"classify": cmd_classify, "train": cmd_train, "evaluate": cmd_evaluate}[command](args)
    except CovidGUIError as exc:
        print(f"covidgui {command}: {exc}", file=sys.stderr)
        return 2


def cmd_classify(args) -> int:
    """Exit 0 when every file was classified, 1 when any failed (the others are still printed)."""
    from covidgui.cli_batch import classify_command

    return classify_command(args.files, args.model, json_lines=args.json, csv_path=args.csv)


def cmd_train(args) -> int:
    from covidgui.core.dataset import scan_class_folders, split_off
    from covidgui.core.training import ProgressListener, TrainConfig, save_model, train

    class PrintEpochs(ProgressListener):
        def on_epoch(self, epoch, epochs, logs):
            print(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()),
                  file=sys.stderr, flush=True)

    train_files = scan_class_folders(args.train_dir)
    if args.val:
        val_files = scan_class_folders(args.val)
    else:
        train_files, val_files = split_off(train_files, args.val_split, args.seed)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                         augment=not args.no_augment, patience=args.patience, seed=args.seed,
                         input_size=args.input_size)
    info = {"command": "covidgui " + " ".join(sys.argv[1:]) if sys.argv[1:] else "covidgui train",
            "data": str(args.train_dir), "validation_data": str(args.val or f"{args.val_split:.0%} split")}
    result = train(train_files, val_files, config, PrintEpochs(), name=args.name, training_info=info)
    out = save_model(result.classifier, args.out)
    report = result.report
    print(json.dumps({"model": str(out), "accuracy": report.get("accuracy"), "n": report.get("n"),
                      "classes": report.get("classes"), "confusion_matrix": report.get("confusion_matrix"),
                      "auc": report.get("auc"), "unreadable": result.unreadable}, indent=1))
    return 0


def cmd_evaluate(args) -> int:
    from covidgui.core.evaluation import evaluate_folder, format_report

    report = evaluate_folder(args.data_dir, args.model)
    print(json.dumps(report) if args.json else format_report(report))
    return 0
