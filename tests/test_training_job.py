"""The training child hands its outcome to the window as JSON + .npz: plain data, never pickle."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from covidgui.core.scoring.comparison import Scores, roc_curves
from covidgui.core.training.job import OUTCOME_ARRAYS, OUTCOME_FILE, read_outcome, write_outcome


def _scores(seed: int) -> Scores:
    from covidgui.core.scoring.metrics import classification_report

    rng = np.random.default_rng(seed)
    labels = np.array([0, 1] * 5)
    p = rng.random(10)
    probs = np.column_stack([p, 1 - p])
    return Scores(f"m{seed}", ["Covid", "Normal"], "Covid", labels, probs,
                  classification_report(labels, probs, ["Covid", "Normal"], "Covid"), {"bad.png": "empty"})


def _outcome(tmp_path, active: bool = True) -> dict:
    new, old = _scores(0), _scores(1)
    old.seen = {"train": 38, "calibration": 14}
    return {"model_path": str(tmp_path / "trained.keras"), "history": {"loss": [0.5, 0.4]}, "unreadable": {},
            "new_scores": new, "new_curves": roc_curves(new), "active_scores": old if active else None,
            "active_curves": roc_curves(old) if active else None, "active_note": "", "seconds": 12.5}


@pytest.mark.parametrize("active", [True, False])
def test_the_outcome_round_trips_through_json_and_npz(tmp_path, active):
    outcome = _outcome(tmp_path, active)
    write_outcome(tmp_path, outcome)
    again = read_outcome(tmp_path)
    assert json.loads((tmp_path / OUTCOME_FILE).read_text())  # plain JSON
    for key in ("model_path", "history", "unreadable", "active_note", "seconds"):
        assert again[key] == outcome[key]
    for which in ("new", "active") if active else ("new",):
        a, b = outcome[f"{which}_scores"], again[f"{which}_scores"]
        assert (b.model, b.classes, b.positive_class, b.unreadable, b.seen) == (a.model, a.classes, a.positive_class,
                                                                                 a.unreadable, a.seen)
        assert np.array_equal(a.labels, b.labels) and np.allclose(a.probs, b.probs)
        assert b.report["n"] == a.report["n"] and b.report["auc"] == pytest.approx(a.report["auc"])
        for name, (fpr, tpr, auc) in outcome[f"{which}_curves"].items():
            fpr2, tpr2, auc2 = again[f"{which}_curves"][name]
            assert np.allclose(fpr, fpr2) and np.allclose(tpr, tpr2) and auc2 == pytest.approx(auc)
    if not active:
        assert again["active_scores"] is None and again["active_curves"] is None


class _RunsCode:
    """Unpickling this creates a file: proof that code from the job folder ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_arrays_that_need_pickle_are_refused(tmp_path):
    write_outcome(tmp_path, _outcome(tmp_path))
    buffer = io.BytesIO()
    marker = tmp_path / "code-ran"
    np.savez(buffer, new_labels=np.array([_RunsCode(marker)], dtype=object))
    (tmp_path / OUTCOME_ARRAYS).write_bytes(buffer.getvalue())
    with pytest.raises(ValueError):
        read_outcome(tmp_path)
    assert not marker.exists()


def fake_child(job_dir: str, events, control, log_path: str) -> None:
    """Stands in for training_job.process_main (a spawned process imports it from here): leaves a
    pickle that runs code when loaded, a valid outcome, and names the pickle in its event."""
    from pathlib import Path

    job = Path(job_dir)
    (job / "outcome.pickle").write_bytes(pickle.dumps(_RunsCode(job.parent / f"{job.name}-code-ran")))
    write_outcome(job, _outcome(job))
    events.send_bytes(json.dumps({"event": "finished", "outcome": str(job / "outcome.pickle")}).encode())


def test_the_window_never_unpickles_what_the_child_left(qtbot, monkeypatch):
    """A child (or anything that can write the job folder) that leaves a pickle and names it in its
    'finished' event cannot run code in the window's process: the worker reads JSON + npz only."""
    from covidgui.core.training import job as training_job
    from covidgui.core.data.dataset import LabelledFiles
    from covidgui.core.training.train import TrainConfig
    from covidgui.gui.training_worker import TrainingWorker

    monkeypatch.setattr(training_job, "process_main", fake_child)
    worker = TrainingWorker()
    files = LabelledFiles(["Covid", "Normal"], [], [])
    summary = type("Summary", (), {"train": files, "val": files})()
    finished, failed = [], []
    worker.finished.connect(finished.append)
    worker.failed.connect(failed.append)
    worker.train(summary, TrainConfig(), {})
    job = worker._job_dir
    marker = job.parent / f"{job.name}-code-ran"
    worker.remove_job_folder()
    assert not marker.exists()
    assert not failed and len(finished) == 1
    assert finished[0].new_scores.model == "m0" and finished[0].seconds == 12.5


def test_a_windowed_windows_exe_trains_in_the_child_process_too():
    """The windowed .exe used to train on a QThread (the pattern that crashed with TensorFlow);
    the multiprocessing child needs no console streams, so every build uses it."""
    import subprocess
    import sys

    code = ("import sys\nimport PySide6.QtCore\nsys.frozen = True\nsys.platform = 'win32'\nsys.stdout = None\n"
            "from covidgui.gui.training_worker import TrainingWorker\n"
            "sys.stderr.write(str(TrainingWorker.use_process))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().endswith("True"), done.stderr


def test_the_entry_point_supports_frozen_multiprocessing_children():
    """A frozen app's spawned child is the app's own executable: freeze_support must run first."""
    from pathlib import Path

    import covidgui

    source = (Path(covidgui.__file__).parent / "__main__.py").read_text()
    assert source.index("multiprocessing.freeze_support()") < source.index("main()")


def test_the_runs_temporary_files_go_in_the_job_folder(tmp_path, monkeypatch):
    """A cancelled child is killed if it has not ended within a second and a half, and a killed
    process cleans nothing up: what it was exporting must be inside the job folder the window removes."""
    import tempfile

    from covidgui.core.training import job as training_job

    seen = []

    def run(job_dir, emit, stop):
        with tempfile.TemporaryDirectory(prefix="covidgui-export-") as folder:
            seen.append(Path(folder))

    monkeypatch.setattr(training_job, "run", run)
    before = tempfile.gettempdir()
    assert training_job._serve(tmp_path / "job", lambda event: None, lambda stop: None) == 0
    assert seen and seen[0].parent == tmp_path / "job" / "tmp"
    assert tempfile.gettempdir() == before  # the process's own setting is given back
