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

    classify = sub.add_parser("classify", help="classify image files")
    classify.add_argument("files", nargs="+", type=Path, help="X-ray image files")
    classify.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines)")
    classify.add_argument("--model", type=Path, help="a .keras model file (default: the bundled model)")
    classify.add_argument("--classify-anyway", action="store_true",
                          help="show the label even for images the gate says are not chest X-rays")
    classify.add_argument("--heatmap", type=Path, metavar="OUT.png",
                          help="save the Grad-CAM heatmap over the image (one file: OUT.png; several: OUT-1.png, ...)")

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
    from covidgui.core.errors import ImageLoadError
    from covidgui.core.model import Classifier

    classifier = Classifier.load(args.model)
    failures = 0
    results = classifier.predict_files(args.files) if not args.heatmap else (
        _predict_with_heatmap(classifier, path, _numbered(args.heatmap, i, len(args.files)))
        for i, path in enumerate(args.files, 1))
    if classifier.lungs is not None and not args.heatmap:
        # Attention on lungs needs each image's heatmap, so files go one by one.
        results = (_predict_with_lungs(classifier, path) for path in args.files)
    for path, result in zip(args.files, results):
        if isinstance(result, ImageLoadError):
            failures += 1
            record = {"path": str(path), "error": result.reason}
            line = f"{path}: ERROR: {result.reason}"
        else:
            if args.classify_anyway:
                result = result.classify_anyway()
            record = result.to_dict()
            line = (f"{path}: {result.label} (confidence {result.confidence:.1%}; "
                    + ", ".join(f"{k} {v:.1%}" for k, v in result.probabilities.items()) + ")"
                    + _lung_text(result))
        print(json.dumps(record) if args.json else line, flush=True)
    return 1 if failures else 0


def _predict_with_lungs(classifier, path: Path):
    """Classify one file with its heatmap, so the Prediction carries attention on lungs."""
    from covidgui.core.errors import ImageLoadError

    try:
        return classifier.predict_file(path, heatmap=True)
    except ImageLoadError as exc:
        return exc


def _lung_text(result) -> str:
    from covidgui.core.lungs import LOW_ATTENTION_WARNING, low_attention

    if result.lung_attention is None:
        return ""
    return f"; attention on lungs {result.lung_attention:.0%}" + (
        f". {LOW_ATTENTION_WARNING}" if low_attention(result.lung_attention) else "")


def _numbered(path: Path, index: int, count: int) -> Path:
    return path if count == 1 else path.with_name(f"{path.stem}-{index}{path.suffix}")


def _predict_with_heatmap(classifier, path: Path, out: Path):
    """Classify one file and save its heatmap overlay; returns the Prediction or the ImageLoadError."""
    from covidgui.core.errors import ImageLoadError
    from covidgui.core.heatmap import save_overlay
    from covidgui.core.images import load_xray

    try:
        result = classifier.predict_file(path, heatmap=True)
        pixels = load_xray(path, max_side=classifier.input_size).pixels
        if result.lung_mask is not None:  # the lung outline on top of the heatmap
            from PIL import Image

            from covidgui.core.lungs import overlay_with_outline

            Image.fromarray(overlay_with_outline(pixels, result.heatmap, result.lung_mask)).save(out)
        else:
            save_overlay(pixels, result.heatmap, out)
        return result
    except ImageLoadError as exc:
        return exc


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
