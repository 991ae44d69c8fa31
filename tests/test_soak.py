"""A bounded soak of the real window through app.exec (tests/soak_window.py, in its own process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from PIL import Image

from tests.conftest import REPO, chest_like
from tests.tiny_data import make_class_folders


def test_the_window_survives_a_busy_minute(tmp_path):
    """100 drops a few ms apart with tab switches (the newest wins), a batch cancelled, a 1-epoch
    training started and cancelled: no crash, no uncaught exception, the last image shown."""
    drops = tmp_path / "drops"
    drops.mkdir()
    for i in range(100):  # each one different, so a stale result would show a different name
        Image.fromarray(chest_like(160, seed=i)).save(drops / f"drop_{i:03d}.png")
    batch = tmp_path / "batch"
    batch.mkdir()
    for i in range(60):
        Image.fromarray(chest_like(256, seed=500 + i)).save(batch / f"b_{i:02d}.png")
    train = make_class_folders(tmp_path / "train", {"Covid": 30, "Normal": 30})
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "tests.soak_window", str(drops), str(batch),
                           str(train)], capture_output=True, text=True, timeout=170, cwd=REPO,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["drops"] == 100 and seen["tab_switches"] >= 10
    assert seen["last_shown"] == "drop_099.png" and "drop_099.png" in seen["shown_results"]
    assert seen["batch"]["cancelled"] and seen["batch"]["done"] < seen["batch"]["total"] == 60
    assert seen["training_started"] and "cancelled" in seen["training_end"]
    assert seen["uncaught_exceptions"] == 0
