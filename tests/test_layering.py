"""The core never imports Qt: a prediction from a plain Python process leaves PySide6 unloaded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import covidgui.core


def test_core_sources_do_not_import_qt():
    core = Path(covidgui.core.__file__).parent
    for source in core.glob("*.py"):
        text = source.read_text()
        assert "PySide6" not in text and "PyQt" not in text, source


def test_predicting_through_core_never_imports_pyside(chest_png):
    code = textwrap.dedent(f"""
        import sys
        import covidgui.core
        from covidgui.core.model import Classifier
        result = Classifier.load().predict_file({str(chest_png)!r}, heatmap=True)
        print(result.label, any(m.startswith("PySide6") for m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"
