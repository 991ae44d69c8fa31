"""One training run, one progress protocol: the Training tab's child process, its thread fallback
and `covidgui train` report the same events for the same tiny run."""

from __future__ import annotations

import re

import pytest

from covidgui.core.training.progress import READING_TEXT, SCORING_TEXT, RunEvent
from tests.test_cli import run_cli
from tests.tiny_data import make_class_folders

EPOCHS, BATCH, SIZE = 2, 8, 48


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-run")
    return (make_class_folders(root / "train", {"Covid": 16, "Normal": 16}),
            make_class_folders(root / "val", {"Covid": 4, "Normal": 4}))


def _shape(event: RunEvent) -> tuple:
    """What must agree between two runs of the same settings (not the loss values)."""
    return event.kind, event.text, event.epoch, event.epochs, event.batch, event.batches, sorted(event.logs)


def _train_with_the_worker(tiny, use_process: bool):
    from covidgui.core.data.datasummary import summarize_training_data
    from covidgui.core.training.train import TrainConfig
    from covidgui.gui.training_worker import TrainingWorker

    summary = summarize_training_data(tiny[0], tiny[1], 0.2, 0)
    worker = TrainingWorker()
    worker.use_process = use_process
    events, finished, failed = [], [], []
    worker.progress.connect(events.append)
    worker.finished.connect(finished.append)
    worker.failed.connect(failed.append)
    worker.train(summary, TrainConfig(epochs=EPOCHS, batch_size=BATCH, input_size=SIZE, patience=0), {})
    worker.remove_job_folder()
    assert not failed and len(finished) == 1
    return events, finished[0]


def test_the_child_process_the_thread_and_the_cli_report_the_same_events(qtbot, tiny):
    child, child_outcome = _train_with_the_worker(tiny, use_process=True)
    thread, thread_outcome = _train_with_the_worker(tiny, use_process=False)

    batches = 32 // BATCH
    expected = ([("phase", READING_TEXT, 0, 0, 0, 0, [])]
                + [kind for e in range(EPOCHS) for kind in
                   [("batch", "", e, EPOCHS, b, batches, []) for b in range(1, batches + 1)]
                   + [("epoch", "", e, EPOCHS, 0, 0, ["accuracy", "loss", "val_accuracy", "val_loss"])]]
                + [("phase", SCORING_TEXT, 0, 0, 0, 0, [])])
    assert [_shape(e) for e in child] == [_shape(e) for e in thread] == expected
    for outcome in (child_outcome, thread_outcome):
        assert outcome.new_scores.report["n"] == 8 and outcome.active_scores.report["n"] == 8
        assert len(outcome.history["loss"]) == EPOCHS and outcome.seconds > 0
    assert child_outcome.model_path and child_outcome.classifier is None  # the child's model waits on disk
    assert thread_outcome.model_path is None and thread_outcome.classifier is not None

    # The terminal prints each epoch event as RunEvent.describe() words it.
    done = run_cli("train", tiny[0], "--val", tiny[1], "--epochs", EPOCHS, "--batch-size", BATCH,
                   "--input-size", SIZE, "--patience", "0", "--out", tiny[0].parent / "cli.keras")
    assert done.returncode == 0, done.stderr
    printed = [m.groups() for m in re.finditer(r"^epoch (\d+)/(\d+): (.*)$", done.stderr, re.MULTILINE)]
    from_events = [re.match(r"^epoch (\d+)/(\d+): (.*)$", e.describe()).groups() for e in child if e.kind == "epoch"]
    assert [(a, b, re.findall(r"(\w+) -?\d", c)) for a, b, c in printed] == \
        [(a, b, re.findall(r"(\w+) -?\d", c)) for a, b, c in from_events]


def test_events_cross_the_process_boundary_as_plain_json():
    import json

    for event in (RunEvent.phase("Reading images…"), RunEvent("batch", epoch=1, epochs=3, batch=2, batches=9),
                  RunEvent("epoch", epoch=2, epochs=3, logs={"loss": 0.25, "val_accuracy": 0.875})):
        assert RunEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event
    assert RunEvent("epoch", epoch=0, epochs=2, logs={"loss": 0.5}).describe() == "epoch 1/2: loss 0.5000"
    with pytest.raises(KeyError):
        RunEvent.from_dict({"event": "finished", "outcome": "x"})


def test_a_cancelled_run_returns_nothing_and_writes_nothing(tmp_path, tiny):
    import threading

    from covidgui.core.data.datasummary import summarize_training_data
    from covidgui.core.training.run import run_training
    from covidgui.core.training.train import TrainConfig

    summary = summarize_training_data(tiny[0], tiny[1], 0.2, 0)
    stop = threading.Event()
    events = []

    def on_event(event):
        events.append(event)
        if event.kind == "batch":
            stop.set()

    out = tmp_path / "m.keras"
    assert run_training(summary.train, summary.val, TrainConfig(epochs=50, batch_size=BATCH, input_size=SIZE),
                        on_event, stop, save_to=out) is None
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert SCORING_TEXT not in [e.text for e in events] and sum(e.kind == "epoch" for e in events) == 1
