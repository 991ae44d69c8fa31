"""The training child hands its outcome to the window as JSON + .npz: plain data, never pickle."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest

from covidgui.core.comparison import Scores, roc_curves
from covidgui.core.training_job import OUTCOME_ARRAYS, OUTCOME_FILE, read_outcome, write_outcome


def _scores(seed: int) -> Scores:
    from covidgui.core.metrics import classification_report

    rng = np.random.default_rng(seed)
    labels = np.array([0, 1] * 5)
    p = rng.random(10)
    probs = np.column_stack([p, 1 - p])
    return Scores(f"m{seed}", ["Covid", "Normal"], "Covid", labels, probs,
                  classification_report(labels, probs, ["Covid", "Normal"], "Covid"), {"bad.png": "empty"})


def _outcome(tmp_path, active: bool = True) -> dict:
    new, old = _scores(0), _scores(1)
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
        assert (b.model, b.classes, b.positive_class, b.unreadable) == (a.model, a.classes, a.positive_class,
                                                                         a.unreadable)
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


def test_the_window_never_unpickles_what_the_child_left(qtbot, tmp_path, monkeypatch):
    """A child (or anything that can write the job folder) that leaves a pickle and names it in its
    'finished' event cannot run code in the window's process: the worker reads JSON + npz only."""
    import subprocess

    from covidgui.core.dataset import LabelledFiles
    from covidgui.core.training import TrainConfig
    from covidgui.gui.training_worker import TrainingWorker

    marker = tmp_path / "code-ran"

    class FakeChild:
        def __init__(self, command, **_kwargs):
            from pathlib import Path

            job_dir = Path(command[-1])
            (job_dir / "outcome.pickle").write_bytes(pickle.dumps(_RunsCode(marker)))
            write_outcome(job_dir, _outcome(job_dir))
            self.stdout = iter([json.dumps({"event": "finished", "outcome": str(job_dir / "outcome.pickle")}) + "\n"])
            self.stdin, self.returncode = io.StringIO(), 0

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeChild)
    worker = TrainingWorker()
    worker.use_process = True
    files = LabelledFiles(["Covid", "Normal"], [], [])
    summary = type("Summary", (), {"train": files, "val": files})()
    finished = []
    worker.finished.connect(finished.append)
    worker.train(summary, TrainConfig(), {})
    worker.remove_job_folder()
    assert not marker.exists()
    assert len(finished) == 1 and finished[0].new_scores.model == "m0" and finished[0].seconds == 12.5
