"""``covidgui classify DIR [FILES…] --csv`` run as a user runs it."""

from __future__ import annotations

import csv

from PIL import Image

from tests.conftest import chest_like
from tests.test_batch import make_mixed_folder
from tests.test_cli import run_cli


def test_classify_a_folder_and_a_file_to_csv_exits_1_when_a_file_is_broken(tmp_path):
    files = make_mixed_folder(tmp_path / "day")
    extra = tmp_path / "extra.png"
    Image.fromarray(chest_like(200, seed=5)).save(extra)
    out_csv = tmp_path / "out" / "results.csv"
    out_csv.parent.mkdir()
    result = run_cli("classify", tmp_path / "day", extra, "--csv", out_csv)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""  # with --csv the rows go to the file
    assert "5 classified, 2 failed, 3 non-image files skipped" in result.stderr
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal
    with open(out_csv, newline="", encoding="utf-8-sig") as f:
        rows = {row["path"]: row for row in csv.DictReader(f)}
    assert set(rows) == {str(p) for p in files.values()} | {str(extra)}
    for name in ("corrupt.jpg", "empty.png"):
        assert rows[str(files[name])]["error"] and rows[str(files[name])]["label"] == ""
    for path in [files["a.png"], files["b.jpg"], files["c.JPEG"], files["nested.png"], extra]:
        row = rows[str(path)]
        assert row["error"] == "" and row["label"] in ("COVID-19", "Normal", "Indeterminate", "Not a chest X-ray")
    assert list(out_csv.parent.iterdir()) == [out_csv]  # the temporary file was moved into place


def test_a_folder_without_images_is_an_error_not_an_empty_csv(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    result = run_cli("classify", tmp_path, "--csv", tmp_path / "out.csv")
    assert result.returncode == 2
    assert "no image files found" in result.stderr and "1 other file skipped" in result.stderr
    assert not (tmp_path / "out.csv").exists()
