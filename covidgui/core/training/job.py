"""One training run in a child process, for the GUI.

Why a process and not a thread: Keras' graph tracing, image decoding and the fit loop hold
Python's global interpreter lock for tens to hundreds of milliseconds at a time, which froze the
GUI thread for up to 340 ms (benchmarks/training.py gui); a child process has its own lock. It
also lets a cancel end the run for certain within 2 s.

The window starts it with ``multiprocessing`` (spawn: :func:`process_main`), which needs no
console streams, so the windowed Windows .exe trains in a child too; a terminal can run the same
job with ``python -m covidgui.core.training.job JOB_DIR`` (:func:`main`, stdin/stdout).

JOB_DIR/job.json (written by :func:`write_job`) names the files, labels, settings and the active
model. The child reports JSON events: the run's progress (``phase``, ``batch``, ``epoch``: a
:class:`~covidgui.core.training.progress.RunEvent` as :meth:`~covidgui.core.training.progress.RunEvent.to_dict`
writes it), then how it ended (``cancelled``, ``failed``, ``finished``); ``stop`` asks it to stop
after the current batch.
When it finishes it leaves JOB_DIR/trained.keras (+ gate and card, written as one unit) and
JOB_DIR/outcome.json + outcome.npz (the scores of the new and the active model on the validation
files). The outcome is plain data, JSON and arrays read with ``allow_pickle=False``: nothing that
crosses the process boundary through the job folder can run code in the window's process.
Nothing is written to the user's models: keeping the model is a separate, explicit step.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import threading
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np

from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.errors import CovidGUIError
from covidgui.core.io.atomic import write_atomic
from covidgui.core.io.logs import redact_output

JOB_FILE = "job.json"
MODEL_FILE = "trained.keras"
OUTCOME_FILE = "outcome.json"  # plain fields; the arrays are in OUTCOME_ARRAYS
OUTCOME_ARRAYS = "outcome.npz"
_fault_file = None  # stderr.log for faulthandler, kept open


def write_job(job_dir: Path, train: LabelledFiles, val: LabelledFiles, config, training_info: dict,
              active_model: str | Path, adaptation: dict | None = None) -> Path:
    """Describe a run in ``job_dir/job.json``; returns that path. ``adaptation`` ({"folds": K}):
    adapt the active model instead of training a new network (see :func:`run`)."""

    def files(f: LabelledFiles) -> dict:
        return {"classes": f.classes, "paths": [str(p) for p in f.paths], "labels": list(f.labels)}

    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / JOB_FILE
    path.write_text(json.dumps({"train": files(train), "val": files(val), "config": asdict(config),
                                "training_info": training_info, "active_model": str(active_model),
                                "adaptation": adaptation}),
                    encoding="utf-8")
    return path


def _files(data: dict) -> LabelledFiles:
    return LabelledFiles(list(data["classes"]), [Path(p) for p in data["paths"]], list(data["labels"]))


def run(job_dir: Path, emit, stop: threading.Event) -> None:
    """The run ``job_dir/job.json`` describes (:func:`covidgui.core.training.run.run_training`, or
    with "adaptation" :func:`covidgui.core.training.adapt.run_adaptation` of the active model), its
    model saved to ``job_dir``; ``emit(dict)`` gets each RunEvent as JSON data, then ``cancelled``
    or ``finished``."""
    # Here, not at the top: the child lowers its priority and redirects its output
    # (_prepare_child_output) before it loads scikit-learn and the training code.
    from covidgui.core.training.train import TrainConfig

    job = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    config = TrainConfig(**job["config"])
    if job.get("adaptation"):
        from covidgui.core.training.adapt import run_adaptation

        val = _files(job["val"])
        outcome = run_adaptation(_files(job["train"]), val if val.paths else None, config, job["active_model"],
                                 lambda event: emit(event.to_dict()), stop, folds=int(job["adaptation"]["folds"]),
                                 seed=config.seed, save_to=job_dir / MODEL_FILE, training_info=job["training_info"],
                                 starting_called="the active model", data_root=job["training_info"].get("data"))
    else:
        from covidgui.core.training.run import run_training

        outcome = run_training(_files(job["train"]), _files(job["val"]), config,
                               lambda event: emit(event.to_dict()), stop, save_to=job_dir / MODEL_FILE,
                               compare_with=job["active_model"], training_info=job["training_info"])
    if outcome is None:
        emit({"event": "cancelled"})
        return
    write_outcome(job_dir, outcome.plain_fields())
    emit({"event": "finished", "outcome": str(job_dir / OUTCOME_FILE)})


def _plain(value):
    """JSON's stand-in for numpy scalars and tuples (a classification report holds both)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} cannot be written to the outcome")


def write_outcome(job_dir: Path, outcome: dict) -> None:
    """Write a run's outcome as OUTCOME_FILE (JSON) + OUTCOME_ARRAYS (.npz), the JSON last (it is
    what the parent reads first): Scores become their fields, each ROC curve its arrays."""
    arrays: dict[str, np.ndarray] = {}
    plain = {k: v for k, v in outcome.items() if not k.endswith(("_scores", "_curves"))}
    for which in ("new", "active"):
        scores = outcome.get(f"{which}_scores")
        if scores is not None:
            arrays[f"{which}_labels"], arrays[f"{which}_probs"] = scores.labels, scores.probs
            scores = {"model": scores.model, "classes": scores.classes, "positive_class": scores.positive_class,
                      "report": scores.report, "unreadable": scores.unreadable, "seen": scores.seen}
        plain[f"{which}_scores"] = scores
        curves = outcome.get(f"{which}_curves")
        if curves is not None:
            for i, (fpr, tpr, _auc) in enumerate(curves.values()):
                arrays[f"{which}_curve{i}_fpr"], arrays[f"{which}_curve{i}_tpr"] = fpr, tpr
            curves = [[name, auc] for name, (_fpr, _tpr, auc) in curves.items()]
        plain[f"{which}_curves"] = curves
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v, dtype=float) for k, v in arrays.items()})
    write_atomic(job_dir / OUTCOME_ARRAYS, buffer.getvalue())
    write_atomic(job_dir / OUTCOME_FILE, json.dumps(plain, default=_plain))


def read_outcome(job_dir: Path) -> dict:
    """The outcome :func:`write_outcome` wrote, with Scores and ROC curves rebuilt. Reads only
    JSON and plain arrays (``allow_pickle=False``); raises ValueError for anything else."""
    # Here, not at the top: scoring imports scikit-learn (about a second), which the window, reading
    # an outcome through this module, should not pay while it starts.
    from covidgui.core.scoring.comparison import Scores

    plain = json.loads((job_dir / OUTCOME_FILE).read_text(encoding="utf-8"))
    with np.load(job_dir / OUTCOME_ARRAYS, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    for which in ("new", "active"):
        scores = plain.get(f"{which}_scores")
        if scores is not None:
            plain[f"{which}_scores"] = Scores(scores["model"], list(scores["classes"]), scores["positive_class"],
                                              arrays[f"{which}_labels"].astype(int), arrays[f"{which}_probs"],
                                              scores["report"], dict(scores["unreadable"]),
                                              dict(scores.get("seen") or {}))
        curves = plain.get(f"{which}_curves")
        if curves is not None:
            plain[f"{which}_curves"] = {name: (arrays[f"{which}_curve{i}_fpr"], arrays[f"{which}_curve{i}_tpr"], auc)
                                        for i, (name, auc) in enumerate(curves)}
    return plain


def _prepare_child_output() -> None:
    """Lower priority, native-crash stacks and redaction for the child's fds 1 and 2 (stderr.log)."""
    import faulthandler

    if hasattr(os, "nice"):
        # Below the GUI's priority: on a 2-core machine TensorFlow's threads would otherwise take
        # the CPU time the window needs to redraw (training still gets every idle cycle).
        os.nice(10)
    # A native crash's stacks go straight to stderr.log (the redacting thread dies with the process).
    global _fault_file
    _fault_file = os.fdopen(os.dup(2), "w")
    faulthandler.enable(file=_fault_file, all_threads=True)
    # stderr.log is a log the app writes: patient identifiers the loader sees are removed from it.
    redact_output((1, 2))


def _serve(job_dir: Path, emit, wait_for_stop) -> int:
    """Run the job; ``wait_for_stop(stop)`` (on its own thread) sets ``stop`` when asked to stop
    or when the parent goes away. Returns the exit code."""
    stop = threading.Event()
    threading.Thread(target=wait_for_stop, args=(stop,), daemon=True).start()
    # The run's temporary files (an inference graph's export, for one) go in the job folder: a
    # child killed after a cancel cannot clean up, and the window removes the job folder.
    scratch = job_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    before, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        run(job_dir, emit, stop)
    except CovidGUIError as exc:
        emit({"event": "failed", "message": str(exc)})
        return 2
    except Exception as exc:
        traceback.print_exc()
        emit({"event": "failed", "message": f"Training stopped with an unexpected error: {exc}"})
        return 1
    finally:
        tempfile.tempdir = before
    return 0


def process_main(job_dir: str, events, control, log_path: str) -> None:
    """The training child as the Training tab starts it: a ``multiprocessing`` process (spawn;
    in a frozen app ``multiprocessing.freeze_support`` in ``covidgui.__main__`` runs it), so it
    needs no console streams and works in a windowed Windows .exe too.

    events: a Connection to send the JSON events on (bytes, so the window unpickles nothing);
    control: a Connection that receives ``b"stop"`` (its end closing means the window went away);
    log_path: the job's stderr.log, which gets everything written to stdout and stderr.
    """
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # A windowed Windows .exe starts with sys.stdout and sys.stderr None: give Python streams.
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    _prepare_child_output()
    lock = threading.Lock()

    def emit(event: dict) -> None:
        with lock:
            events.send_bytes(json.dumps(event).encode("utf-8"))

    def wait_for_stop(stop: threading.Event) -> None:
        try:
            while control.recv_bytes() != b"stop":
                pass
        except (EOFError, OSError):
            pass  # the window went away
        stop.set()

    sys.exit(_serve(Path(job_dir), emit, wait_for_stop))


def main(argv: list[str] | None = None) -> int:
    """``python -m covidgui.core.training.job JOB_DIR`` (or ``CovidGUI --training-job JOB_DIR``):
    the same job over stdin/stdout, JSON lines, for a terminal or a script."""
    job_dir = Path((argv if argv is not None else sys.argv[1:])[0])
    # Events go to the real stdout; anything else a library prints there goes to stderr instead.
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    _prepare_child_output()
    lock = threading.Lock()

    def emit(event: dict) -> None:
        with lock:
            events.write(json.dumps(event) + "\n")
            events.flush()

    def wait_for_stop(stop: threading.Event) -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()  # "stop", or the parent went away (stdin closed)

    return _serve(job_dir, emit, wait_for_stop)


if __name__ == "__main__":
    raise SystemExit(main())
