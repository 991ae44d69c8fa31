"""The import rules: core never imports Qt (a prediction from a plain Python process leaves PySide6
unloaded), core's rooms are layers, and no modules import each other in a loop (the contracts in
pyproject.toml's [tool.importlinter], checked by import-linter)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import covidgui.core


ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    """Function-local imports count too: import-linter reads every import statement."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_every_core_module_says_its_job_in_one_line():
    """A newcomer finds where a behaviour lives from the folder names and these first lines."""
    import ast

    core = Path(covidgui.core.__file__).parent
    for source in core.rglob("*.py"):
        doc = ast.get_docstring(ast.parse(source.read_text()))
        assert doc, f"{source.relative_to(core)} has no docstring"
        first = doc.split("\n\n")[0]
        assert "\n" not in first and first.endswith((".", "?", '"')), (source.relative_to(core), first)


def test_core_sources_do_not_import_qt():
    core = Path(covidgui.core.__file__).parent
    for source in core.rglob("*.py"):
        text = source.read_text()
        assert "PySide6" not in text and "PyQt" not in text, source


def test_predicting_through_core_never_imports_pyside(chest_png):
    code = textwrap.dedent(f"""
        import sys
        import covidgui.core
        from covidgui.core.inference.classifier import Classifier
        result = Classifier.load().predict_file({str(chest_png)!r}, heatmap=True)
        print(result.label, any(m.startswith("PySide6") for m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"
