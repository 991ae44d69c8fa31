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
from covidgui.core.training.precision import PRECISIONS

# The networks `covidgui train` builds (TrainConfig.architecture; covidgui.core.training.network),
# named here so that --help needs no TensorFlow.
NETWORKS = ("compact", "efficientnet-lite0")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="covidgui",
        description=f"Chest X-ray second opinion: COVID-19 or normal. {DISCLAIMER}",
    )
    parser.add_argument("--version", action="version", version=f"covidgui {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's own log lines (hidden by default)")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation: load the model, classify a generated image, "
                             "open and close the window; exit 0 when all work")
    # The Training tab's child process in a frozen app, which has no "python -m" (covidgui.core.training.job).
    parser.add_argument("--training-job", metavar="JOB_DIR", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")
    verbose = argparse.ArgumentParser(add_help=False)  # "covidgui classify --verbose …" works too
    verbose.add_argument("--verbose", dest="sub_verbose", action="store_true",
                         help="also show TensorFlow's own log lines (hidden by default)")

    gui = sub.add_parser("gui", help="start the desktop application (the default)")
    gui.add_argument("files", nargs="*", help="open these: one file in the Image tab, several files or a folder "
                                              "in the Batch tab (also `covidgui FILE…`, as file managers call it)")
    gui.add_argument("--model", help="a .keras model file to use instead of the bundled one")
    gui.add_argument("--report-startup", action="store_true", help=argparse.SUPPRESS)
    gui.add_argument("--exit-when-ready", action="store_true", help=argparse.SUPPRESS)

    classify = sub.add_parser("classify", parents=[verbose], help="classify image files and folders")
    classify.add_argument("files", nargs="+", type=Path,
                          help="X-ray image files, or folders (searched recursively; non-image files are skipped)")
    classify.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines)")
    classify.add_argument("--csv", type=Path, metavar="OUT.csv",
                          help="write one row per file to this CSV (then nothing is printed per file unless --json)")
    classify.add_argument("--model", type=Path,
                          help="a .keras model file (default: the active model chosen in the app, else the bundled one)")
    classify.add_argument("--classify-anyway", action="store_true",
                          help="show the label even for images the gate says are not chest X-rays")
    classify.add_argument("--heatmap", type=Path, metavar="OUT.png",
                          help="save the Grad-CAM heatmap over the image (one file: OUT.png; several: OUT-1.png, ...)")

    train = sub.add_parser("train", parents=[verbose], help="train a model on folders laid out one subfolder per class")
    train.add_argument("train_dir", type=Path)
    val = train.add_mutually_exclusive_group()
    val.add_argument("--val", type=Path, help="validation folder with the same class subfolders")
    val.add_argument("--val-split", type=float, default=0.2,
                     help="share of each class held back for validation when --val is not given (default 0.2)")
    # None: the default of a new model (30, 1e-3, 10) or, with --start-from, the gentle one.
    train.add_argument("--epochs", type=int, default=None, help="default 30; with --start-from 10")
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--learning-rate", type=float, default=None, help="default 0.001; with --start-from 0.0005")
    train.add_argument("--no-augment", action="store_true", help="train without augmentation")
    train.add_argument("--patience", type=int, default=None,
                       help="early-stopping patience in epochs (0 = off; default 10, with --start-from 0)")
    train.add_argument("--lung-guidance", type=float, default=None, metavar="WEIGHT",
                       help="weight of the penalty on evidence outside the lung fields (0 = off; default: "
                            "the app's, when the lung model is installed)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--input-size", type=int, default=None, help="default 224; with --start-from the model's")
    train.add_argument("--architecture", choices=NETWORKS,
                       help="the network of a new model: compact (the default) or efficientnet-lite0 (the "
                            "bundled model's network; start it from ImageNet weights with --pretrained-weights)")
    train.add_argument("--pretrained-weights", type=Path, metavar="NPZ",
                       help="with --architecture efficientnet-lite0: its ImageNet weights, a .npz written by "
                            "scripts/convert_lite0_weights.py")
    train.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="what a new network computes in while training: auto (bfloat16 for "
                            "the compact network on a processor with bfloat16 instructions, else float32); the "
                            "saved model computes in float32 either way")
    train.add_argument("--name", default="custom-model")
    train.add_argument("--out", type=Path, required=True, help="where to write the .keras model (and its .json card)")
    train.add_argument("--start-from", metavar="active|bundled|PATH",
                       help="adapt a model to these films instead of training a new one: its architecture, "
                            "preprocessing and classes kept, trained gently")
    train.add_argument("--folds", type=int, default=None,
                       help="with --start-from: cross-validation folds for an honest estimate of the gain "
                            "(default 5 without --val, 0 with it; 0 = none)")
    train.add_argument("--json", action="store_true",
                       help="with --start-from: print one JSON object (starting and adapted figures, model path)")
    train.add_argument("--strategy", choices=["default", "mirrored", "multi-worker"], default="default",
                       help="tf.distribute strategy: mirrored = all local devices; multi-worker = several "
                            "machines, each configured by its TF_CONFIG environment variable")

    report = sub.add_parser("report", parents=[verbose], help="write a PDF report of one image's result")
    report.add_argument("image", type=Path, help="an X-ray image file (PNG, JPEG, TIFF, BMP or DICOM)")
    report.add_argument("-o", "--output", type=Path, required=True, help="the PDF file to write")
    report.add_argument("--include-patient-info", action="store_true",
                        help="print the DICOM patient name, ID and birth date in the report (off by default)")
    report.add_argument("--no-heatmap", action="store_true", help="the image without the heatmap overlay")
    report.add_argument("--classify-anyway", action="store_true",
                        help="report the model's answer even when the gate says this is not a chest X-ray (the report says so)")
    report.add_argument("--model", type=Path,
                        help="a .keras model file (default: the active model chosen in the app, else the bundled one)")

    evaluate = sub.add_parser("evaluate", parents=[verbose], help="measure a model on a folder with one subfolder per class")
    evaluate.add_argument("data_dir", type=Path)
    evaluate.add_argument("--model", type=Path,
                          help="a .keras model file (default: the active model chosen in the app, else the bundled one)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


COMMANDS = ("gui", "classify", "train", "evaluate", "report")


def _files_mean_gui(argv: list[str]) -> list[str]:
    """``covidgui FILE…`` (how "Open with" and a double-click in a file manager start the app)
    means ``covidgui gui FILE…``: a first argument that is neither an option nor a command but an
    existing path opens the window on it."""
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS and Path(argv[0]).exists():
        return ["gui", *argv]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = _files_mean_gui(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if args.self_test:
        from covidgui.selftest import run

        return run()
    if args.training_job:
        from covidgui.core.training.job import main as training_job_main

        return training_job_main([args.training_job])
    command = args.command or "gui"
    if command == "gui":
        from covidgui.gui.xcb_check import check_xcb_libraries, xcb_will_be_used

        missing = check_xcb_libraries() if xcb_will_be_used() else None
        if missing:  # before Qt aborts with a message that names no package
            print(missing, file=sys.stderr)
            return 1
        from covidgui.gui.app import main as gui_main

        return gui_main(getattr(args, "model", None), getattr(args, "report_startup", False),
                        getattr(args, "exit_when_ready", False), files=getattr(args, "files", None) or [])
    if not (args.verbose or getattr(args, "sub_verbose", False)):
        from covidgui.core.io.logs import quiet_native_stderr

        quiet_native_stderr()  # before TensorFlow loads: only CovidGUI's own lines on the terminal
    from covidgui.core.errors import CovidGUIError

    try:
        return {"classify": cmd_classify, "train": cmd_train, "evaluate": cmd_evaluate,
                "report": cmd_report}[command](args)
    except CovidGUIError as exc:
        print(f"covidgui {command}: {exc}", file=sys.stderr)
        return 2


def cmd_classify(args) -> int:
    """Exit 0 when every file was classified, 1 when any failed (the others are still printed)."""
    from covidgui.cli_batch import classify_command

    # Files one by one when a heatmap is to be saved; otherwise the batch pipeline, which also
    # measures attention on lungs.
    if args.heatmap:
        return _classify_one_by_one(args)
    return classify_command(args.files, args.model or _active_model(), json_lines=args.json, csv_path=args.csv,
                            classify_anyway=args.classify_anyway)


def _classify_one_by_one(args) -> int:
    """Classify each file and save its heatmap (with the lung outline) as a PNG."""
    from covidgui.cli_batch import format_line
    from covidgui.core.errors import ImageLoadError
    from covidgui.core.inference.classifier import Classifier

    classifier = Classifier.load(args.model or _active_model())
    if classifier.input_check_warning:
        print(f"caution: {classifier.input_check_warning}", file=sys.stderr)
    failures = 0
    for i, path in enumerate(args.files, 1):
        result = _predict_with_heatmap(classifier, path, _numbered(args.heatmap, i, len(args.files)))
        if isinstance(result, ImageLoadError):
            failures += 1
            record, line = {"path": str(path), "error": result.reason}, f"{path}: ERROR: {result.reason}"
        else:
            result = result.classify_anyway() if args.classify_anyway else result
            record, line = result.to_dict(), format_line(path, result)
        print(json.dumps(record) if args.json else line, flush=True)
    return 1 if failures else 0


def _numbered(path: Path, index: int, count: int) -> Path:
    return path if count == 1 else path.with_name(f"{path.stem}-{index}{path.suffix}")


def _predict_with_heatmap(classifier, path: Path, out: Path):
    """Classify one file and save its heatmap overlay; returns the Prediction or the ImageLoadError."""
    from covidgui.core.analysis.analyse import analyse
    from covidgui.core.errors import ImageLoadError
    from covidgui.core.output.overlay import compose_overlay
    from covidgui.core.output.report import save_png

    try:
        # One decode; the picture is drawn on the model's own (reduced-size) pixels.
        result = analyse(classifier, path, display=False)
    except ImageLoadError as exc:
        return exc
    prediction = result.prediction
    if prediction.lung_mask is not None:  # the lung outline on top of the heatmap
        from PIL import Image

        from covidgui.core.output.overlay import overlay_with_outline

        Image.fromarray(overlay_with_outline(result.pixels, prediction.heatmap, prediction.lung_mask)).save(out)
    else:
        save_png(out, compose_overlay(result.pixels, prediction.heatmap))
    return prediction


def cmd_train(args) -> int:
    from covidgui.core.data.datasummary import summarize_training_data
    from covidgui.core.errors import DatasetError
    from covidgui.core.models.registry import check_free_model_path
    from covidgui.core.training.distribute import describe, is_chief, make_strategy
    from covidgui.core.training.run import run_training
    from covidgui.core.training.train import TrainConfig

    def print_epochs(event):  # the run's progress on the terminal: one line per epoch
        if event.kind == "epoch":
            print(event.describe(), file=sys.stderr, flush=True)

    if args.start_from:
        from covidgui.cli_adapt import adapt_command

        if args.architecture or args.pretrained_weights:
            raise DatasetError("--architecture and --pretrained-weights are for a new model: --start-from keeps "
                               "the network of the model it starts from.")
        if args.precision != "auto":
            raise DatasetError("--precision is for a new network: a model started from trains in float32, as its "
                               "file says.")
        return adapt_command(args, _lung_guidance(args.lung_guidance))
    architecture = args.architecture or "compact"
    if args.pretrained_weights and architecture == "compact":
        raise DatasetError("--pretrained-weights needs --architecture efficientnet-lite0: the compact network "
                           "has no pretrained weights.")
    if args.pretrained_weights and not args.pretrained_weights.is_file():
        raise DatasetError(f"The pretrained weights file {args.pretrained_weights} does not exist.")
    check_free_model_path(args.out)  # before an hour of training, not after
    summary = summarize_training_data(args.train_dir, args.val, args.val_split, args.seed)
    print(summary.text(), file=sys.stderr, flush=True)
    if not summary.ok:
        raise DatasetError(" ".join(summary.problems))
    strategy = make_strategy(args.strategy)
    given = {k: v for k, v in (("epochs", args.epochs), ("learning_rate", args.learning_rate),
                               ("patience", args.patience), ("input_size", args.input_size)) if v is not None}
    config = TrainConfig(batch_size=args.batch_size, augment=not args.no_augment, seed=args.seed,
                         lung_guidance=_lung_guidance(args.lung_guidance), architecture=architecture,
                         pretrained_weights=str(args.pretrained_weights or ""), precision=args.precision, **given)
    info = {"command": "covidgui " + " ".join(sys.argv[1:]) if sys.argv[1:] else "covidgui train",
            "data": str(args.train_dir), "validation_data": str(args.val or f"{args.val_split:.0%} split"),
            "distribution": describe(strategy), "left_out_unreadable": summary.unreadable}
    # The other workers of a multi-worker run trained the same weights: only the chief writes them.
    chief = is_chief(strategy)
    outcome = run_training(summary.train, summary.val, config, print_epochs, save_to=args.out if chief else None,
                           score=False, name=args.name, version="1", training_info=info, strategy=strategy)
    if not chief:
        print("note: this is not the chief worker; the chief writes the model", file=sys.stderr)
    report = outcome.report
    print(json.dumps({"model": outcome.model_path, "accuracy": report.get("accuracy"), "n": report.get("n"),
                      "classes": report.get("classes"), "confusion_matrix": report.get("confusion_matrix"),
                      "auc": report.get("auc"), "unreadable": outcome.unreadable}, indent=1))
    return 0


def _lung_guidance(asked: float | None) -> float:
    """The lung-guidance weight: as asked, or by default on when the lung model is installed."""
    if asked is not None:
        return asked
    from covidgui.core.training.lung_guidance import LUNG_GUIDANCE_WEIGHT
    from covidgui.core.inference.lungs import bundled_segmenter_path

    if bundled_segmenter_path().is_file():
        return LUNG_GUIDANCE_WEIGHT
    print("note: no lung model installed; training without lung guidance", file=sys.stderr)
    return 0.0


def _active_model():
    """The model chosen with "Use this model" in the app (the bundled one when none is)."""
    from covidgui.core.models.registry import active_model_path

    return active_model_path()


def cmd_evaluate(args) -> int:
    from covidgui.core.scoring.evaluation import evaluate_folder, format_report

    report = evaluate_folder(args.data_dir, args.model or _active_model())
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def cmd_report(args) -> int:
    from covidgui.core.analysis.analyse import analyse, decode
    from covidgui.core.errors import CovidGUIError
    from covidgui.core.models.modelcard import read_card

    folder = args.output.parent
    if not folder.is_dir():  # a typo in the folder must not create folders nobody asked for
        raise CovidGUIError(f"The folder {folder} does not exist; the report was not written. "
                            "Create it first, or choose an existing folder.")
    model_path = args.model or _active_model()
    try:
        card = read_card(model_path)
    except CovidGUIError:
        card = None  # Classifier.load below says what is wrong with the model
    # Decoded before the model is loaded (its card gives the input size and preprocessing): a bad
    # file fails in a second, not ten. The same decode then serves the model and the report's image.
    decoded = (decode(args.image, card.input_size, harmonise=card.harmonises_storage)
               if card is not None else None)
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.output.report import write_report

    classifier = Classifier.load(model_path)
    # The model's own path (reduced-size decode), so the report agrees with classify and the GUI;
    # the report's image at the stored size, as decoded.
    result = analyse(classifier, args.image, display_side=None, heatmap=not args.no_heatmap, pictures=False,
                     decoded=decoded)
    prediction = result.prediction
    if args.classify_anyway:
        prediction = prediction.classify_anyway()
    metadata = result.metadata
    if classifier.input_check_warning:  # among the report's cautions too
        metadata = {**metadata, "warnings": [*metadata.get("warnings", []), classifier.input_check_warning]}
    out = write_report(args.output, result.display, prediction, classifier.card, args.image.name, metadata,
                       heatmap=prediction.heatmap, include_patient=args.include_patient_info)
    if classifier.input_check_warning:
        print(f"caution: {classifier.input_check_warning}", file=sys.stderr)
    for warning in result.metadata.get("warnings", []):
        print(f"caution: {warning}", file=sys.stderr)
    from covidgui.core.output.presentation import present

    print(f"{args.image}: {present(prediction).headline}; report written to {out}")
    return 0
