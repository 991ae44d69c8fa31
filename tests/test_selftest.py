"""``covidgui --self-test``: exit 0 when the installation works, non-zero with the failing step."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from covidgui import selftest
from covidgui.core.errors import ModelError


@pytest.mark.slow
def test_self_test_passes_in_this_installation(user_data_dir):
    proc = subprocess.run([sys.executable, "-m", "covidgui", "--self-test"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "ok   classify a generated image" in proc.stdout
    assert "ok   open and close the main window" in proc.stdout
    assert proc.stdout.rstrip().endswith("self-test passed")
    # It ran in a temporary user folder: nothing was written to the user's own.
    assert not any(user_data_dir.iterdir())


def test_self_test_fails_with_the_reason(monkeypatch, capsys):
    from covidgui.core.inference import classifier as model

    def broken(*args, **kwargs):
        raise ModelError("the bundled model file is missing")

    monkeypatch.setattr(model.Classifier, "load", classmethod(lambda cls, *a, **k: broken()))
    assert selftest.run() == 1
    out = capsys.readouterr().out
    assert "FAIL classify a generated image: the bundled model file is missing" in out
    assert "self-test passed" not in out
