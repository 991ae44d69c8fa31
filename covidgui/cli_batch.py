"""``covidgui classify FILES/FOLDERS [--json] [--csv OUT]``: the batch pipeline in a terminal.

Results stream: each file's line (or JSON object) is printed as soon as its batch is done, and the
CSV is written row by row to a temporary file that replaces ``OUT`` only when the run completes.
A progress bar goes to stderr, and only when stderr is a terminal (never into a log or a pipe).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from covidgui.core.output.presentation import present


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def format_line(path, prediction) -> str:
    """One result as a terminal line, in the words of every other view
    (covidgui.core.output.presentation): label, confidence (none when indeterminate), each class's
    probability, then the notes (classified anyway, indeterminate), attention on lungs and the
    lungs-only check when measured, and every caution (the result's, then the file's).

    An image the input gate rejected gets no confidence or probabilities unless it was classified
    anyway."""
    shown = present(prediction)
    if shown.withheld:
        line = f"{path}: {shown.label}. {' '.join(shown.notes)} (--classify-anyway shows the model's answer)"
    else:
        confidence = "" if shown.confidence is None else f"confidence {shown.confidence}; "  # none when indeterminate
        line = (f"{path}: {shown.label} ({confidence}" + ", ".join(shown.probability_lines) + ")"
                + "".join(f"; {_clause(note)}" for note in shown.notes))
    line += "".join(f"; {_clause(part)}" for part in (shown.attention_line, shown.lungs_only_line) if part)
    return line + "".join(f"; caution: {w}" for w in shown.cautions + shown.file_warnings)


def _clause(sentence: str) -> str:
    """A sentence as a clause inside the line ("Attention on lungs: 49 %" -> "attention on lungs: 49 %")."""
    return sentence[:1].lower() + sentence[1:].rstrip(".")


def _line(item) -> str:
    return format_line(item.path, item.prediction) if item.ok else f"{item.path}: ERROR: {item.error}"


def _record(item) -> dict:
    return item.prediction.to_dict() if item.ok else {"path": str(item.path), "error": item.error}


def classify_command(inputs: list[Path], model: Path | None, json_lines: bool = False,
                     csv_path: Path | None = None, classify_anyway: bool = False) -> int:
    """Classify files and folders; returns 0 when all were classified, 1 when any file or folder failed.

    Raises CovidGUIError (exit 2 in the CLI) when the model cannot be loaded or nothing was found.
    """
    from tqdm import tqdm

    # Here, not at the top: like every command's, this one's modules load only when it runs (cli.py).
    from covidgui.core.analysis.batch import CsvResults, classify_stream, find_images
    from covidgui.core.errors import CovidGUIError
    from covidgui.core.inference.classifier import Classifier

    scan = find_images(inputs)
    for folder, reason in scan.unreadable:
        print(f"covidgui classify: cannot read the folder {folder}: {reason}", file=sys.stderr)
    if not scan.files:
        raise CovidGUIError("no image files found in " + ", ".join(map(str, inputs))
                            + (f" ({_count(len(scan.skipped), 'other file')} skipped)" if scan.skipped else ""))
    classifier = Classifier.load(model)
    if classifier.input_check_warning:
        print(f"caution: {classifier.input_check_warning}", file=sys.stderr)
    print_rows = json_lines or csv_path is None
    out = CsvResults(csv_path, classifier.card) if csv_path else None
    failures = 0
    bar = tqdm(total=len(scan.files), unit="img", file=sys.stderr, disable=not sys.stderr.isatty(),
               dynamic_ncols=True)
    try:
        for chunk in classify_stream(classifier, scan.files):
            if classify_anyway:  # the user overrides the input gate: show the classifier's label
                for item in chunk:
                    if item.ok:
                        item.prediction = item.prediction.classify_anyway()
            failures += sum(not item.ok for item in chunk)
            if out:
                out.write(chunk)
            if print_rows:
                bar.clear()
                for item in chunk:
                    print(json.dumps(_record(item)) if json_lines else _line(item), flush=True)
            bar.update(len(chunk))
    except BaseException as exc:  # Ctrl+C included: never leave a half-written CSV under the user's name
        bar.close()
        if out:
            out.discard()
        if isinstance(exc, KeyboardInterrupt):
            print("covidgui classify: cancelled" + (f"; {out.path} was not written" if out else ""), file=sys.stderr)
            return 130
        raise
    bar.close()
    if out:
        out.commit()
    summary = f"{len(scan.files) - failures} classified, {failures} failed"
    if scan.skipped:
        summary += f", {_count(len(scan.skipped), 'non-image file')} skipped"
    if scan.unreadable:
        summary += f", {_count(len(scan.unreadable), 'folder')} unreadable"
    if out:
        summary += f"; results in {out.path}"
    if out or any(p.is_dir() for p in inputs):  # a single named file needs no summary
        print(summary, file=sys.stderr)
    return 1 if failures or scan.unreadable else 0
