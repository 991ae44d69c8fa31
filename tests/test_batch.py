"""Batch classification in core: finding files, the streaming pipeline, cancel, memory bound, CSV."""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidgui.core.analysis import batch
from covidgui.core.analysis.batch import classify_stream, find_images, write_csv
from covidgui.core.inference.preprocess import prepare
from tests.conftest import chest_like

LABELS = ("COVID-19", "Normal", "Indeterminate", "Not a chest X-ray")


def make_mixed_folder(root: Path) -> dict[str, Path]:
    """Good PNG/JPEG images, a corrupt JPEG, a zero-byte file, non-image files and a nested folder."""
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, name in enumerate(["a.png", "b.jpg", "c.JPEG"]):
        files[name] = root / name
        Image.fromarray(chest_like(300, seed=i)).save(files[name])
    nested = root / "day2" / "ward"
    nested.mkdir(parents=True)
    files["nested.png"] = nested / "nested.png"
    Image.fromarray(chest_like(280, seed=9)).convert("RGB").save(files["nested.png"])
    good_jpeg = (root / "b.jpg").read_bytes()
    files["corrupt.jpg"] = root / "corrupt.jpg"
    files["corrupt.jpg"].write_bytes(good_jpeg[: len(good_jpeg) // 3])  # truncated mid-scan
    files["empty.png"] = root / "empty.png"
    files["empty.png"].touch()
    (root / "notes.txt").write_text("patient list")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (nested / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    return files


def test_find_images_recurses_skips_non_images_and_survives_a_symlink_loop(tmp_path):
    files = make_mixed_folder(tmp_path / "day")
    (tmp_path / "day" / "day2" / "loop").symlink_to(tmp_path / "day", target_is_directory=True)
    (tmp_path / "day" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    scan = find_images([tmp_path / "day"])
    assert sorted(scan.files) == sorted(files.values())
    assert sorted(p.name for p in scan.skipped) == [".DS_Store", "Thumbs.db", "dangling.png", "notes.txt"]
    assert scan.unreadable == []


def test_find_images_reports_an_unreadable_folder_and_goes_on(tmp_path, monkeypatch):
    files = make_mixed_folder(tmp_path / "day")
    locked = tmp_path / "day" / "day2"
    real_scandir = os.scandir

    def scandir(path):  # chmod cannot lock out root, who runs CI; refuse the folder instead
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(batch.os, "scandir", scandir)
    scan = find_images([tmp_path / "day"])
    assert scan.unreadable == [(locked, "Permission denied")]
    assert files["a.png"] in scan.files and files["nested.png"] not in scan.files


def test_named_files_are_kept_even_when_they_are_not_images(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("x")
    assert find_images([text]).files == [text]


def test_every_image_gets_a_row_and_the_broken_ones_an_error(tmp_path, bundled_classifier):
    files = make_mixed_folder(tmp_path / "day")
    scan = find_images([tmp_path / "day"])
    chunks = list(classify_stream(bundled_classifier, scan.files, batch_size=2, workers=2))
    items = [item for chunk in chunks for item in chunk]
    assert len(chunks) == 3  # rows arrive in chunks, not one by one
    assert [i.path for i in items] == scan.files and [i.index for i in items] == list(range(len(items)))
    by_name = {i.path.name: i for i in items}
    assert "truncated or corrupt" in by_name["corrupt.jpg"].error
    assert "empty" in by_name["empty.png"].error
    for name in ("a.png", "b.jpg", "c.JPEG", "nested.png"):
        item = by_name[name]
        assert item.ok and item.prediction.label in LABELS
        # The pipeline gives the same answer as classifying the file on its own.
        single = bundled_classifier.predict_file(files[name])
        assert item.prediction.probabilities == pytest.approx(single.probabilities, abs=1e-5)


def test_thumbnails_keep_the_aspect_and_are_small(tmp_path, bundled_classifier):
    wide = tmp_path / "wide.png"
    Image.fromarray(np.tile(chest_like(200), (1, 2))).save(wide)
    [[item]] = list(classify_stream(bundled_classifier, [wide], thumbnails=True))
    assert item.thumbnail.dtype == np.uint8 and item.thumbnail.shape == (32, 64)


class CountingClassifier:
    """A stand-in model (what the batch engine needs of one)."""

    input_size = 32
    harmonises = False

    def predict_inputs(self, inputs, colourfulness, paths, lung_attention=False):
        return [("Normal", 0.75, path) for path in paths]


def test_decoding_never_runs_more_than_max_in_flight_ahead(tmp_path, monkeypatch):
    for i in range(40):
        Image.fromarray(chest_like(64, seed=i)).save(tmp_path / f"{i:02d}.png")
    paths = sorted(tmp_path.iterdir())
    decoded = []  # list.append is atomic: the pool's threads count without a lock
    real_load = batch.load_prepared
    monkeypatch.setattr(batch, "load_prepared", lambda *a, **k: decoded.append(1) or real_load(*a, **k))
    seen = 0
    for chunk in classify_stream(CountingClassifier(), paths, batch_size=4, workers=2, max_in_flight=6):
        assert all(item.ok for item in chunk), [item.error for item in chunk]
        seen += len(chunk)
        threading.Event().wait(0.02)  # a slow consumer, so the decoders could race ahead
        assert len(decoded) <= seen + 6
    assert seen == 40 and len(decoded) == 40


def test_cancel_stops_the_stream_and_keeps_what_was_yielded(tmp_path):
    for i in range(30):
        Image.fromarray(chest_like(64, seed=i)).save(tmp_path / f"{i:02d}.png")
    paths = sorted(tmp_path.iterdir())
    cancel = threading.Event()
    got = []
    for chunk in classify_stream(CountingClassifier(), paths, batch_size=5, cancel=cancel):
        got.extend(chunk)
        cancel.set()
    assert [i.path for i in got] == paths[:5]


def test_csv_has_one_row_per_file_with_probabilities_error_and_model(tmp_path, bundled_classifier):
    make_mixed_folder(tmp_path / "day")
    files = find_images([tmp_path / "day"]).files
    items = [i for chunk in classify_stream(bundled_classifier, files) for i in chunk]
    out = write_csv(tmp_path / "results.csv", items, bundled_classifier.card)
    with open(out, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    card = bundled_classifier.card
    assert list(rows[0]) == ["path", "label", "confidence", "probability COVID-19", "probability Normal",
                             "lung attention", "lung-only label", "lung-only confidence", "depends on outside lungs",
                             "flags", "warnings", "error", "model"]
    assert [r["path"] for r in rows] == [str(p) for p in files]
    for row, item in zip(rows, items):
        assert row["model"] == f"{card.name} {card.version}"
        if item.ok:
            assert row["label"] == item.prediction.label and row["error"] == ""
            if item.prediction.not_xray:  # withheld by the gate: no confidence, no probabilities
                assert row["confidence"] == "" and "not a chest X-ray" in row["flags"]
                assert row["probability COVID-19"] == row["probability Normal"] == ""
            elif item.prediction.indeterminate:  # no label, so no confidence in one (the probabilities say it)
                assert row["confidence"] == "" and "indeterminate" in row["flags"]
                assert float(row["probability COVID-19"]) + float(row["probability Normal"]) == pytest.approx(1, abs=2e-4)
            else:
                assert float(row["confidence"]) == pytest.approx(item.prediction.confidence, abs=1e-4)
                assert float(row["probability COVID-19"]) + float(row["probability Normal"]) == pytest.approx(1, abs=2e-4)
            assert row["warnings"] == ""  # PNGs and JPEGs carry no cautions
            attention = item.prediction.lung_attention
            p = item.prediction
            # A withheld image shows no attention (model-derived, withheld with the rest) and no flag.
            assert row["lung attention"] == ("" if attention is None or p.withheld else f"{attention:.4f}")
            assert ("looked mostly outside the lungs" in row["flags"]) == (
                attention is not None and attention < 0.5 and not p.withheld)
            if p.lung_only_label is None or p.withheld:  # withheld: no class answer of any kind
                assert row["lung-only label"] == row["depends on outside lungs"] == ""
            else:
                assert row["lung-only label"] == p.lung_only_label
                assert float(row["lung-only confidence"]) == pytest.approx(p.lung_only_confidence, abs=1e-4)
                assert row["depends on outside lungs"] == ("yes" if p.depends_on_outside_lungs else "no")
            assert ("depends on what lies outside the lungs" in row["flags"]) == bool(
                p.depends_on_outside_lungs and not p.withheld)
        else:
            assert row["label"] == "" and row["error"] == item.error
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_failed_csv_write_leaves_no_file(tmp_path, bundled_classifier):
    target = tmp_path / "results.csv"
    with pytest.raises(RuntimeError):
        with batch.CsvResults(target, bundled_classifier.card) as out:
            out.write([batch.BatchItem(0, tmp_path / "x.png", error="bad")])
            raise RuntimeError("cancelled")
    assert list(tmp_path.iterdir()) == []


def test_reduced_decoding_of_a_large_png_keeps_the_model_input_and_orientation(tmp_path):
    from covidgui.core.io.images import load_xray

    big = np.kron(chest_like(250, seed=3), np.ones((4, 6), np.uint8))  # 1000 x 1500, wide
    path = tmp_path / "big.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90 degrees
    Image.fromarray(big).save(path, exif=exif)
    full, reduced = load_xray(path), load_xray(path, max_side=224)
    assert full.pixels.shape == (1500, 1000)
    assert reduced.pixels.shape == (750, 500)  # halved: both sides stay >= 2 x 224
    difference = np.abs(prepare(full.pixels, 224).input - prepare(reduced.pixels, 224).input)
    assert difference.mean() < 0.01


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(tmp_path, start):
    from covidgui.core.models.modelcard import ModelCard

    card = ModelCard(name=f"{start}HYPERLINK(\"http://x\")", version="1", classes=["Covid", "Normal"], input_size=32)
    items = [batch.BatchItem(0, Path(f"{start}cmd|' /C calc'!A0.png"), error=f"{start}SUM(1+1)"),
             batch.BatchItem(1, Path("plain.png"), error="the file is empty")]
    out = write_csv(tmp_path / "results.csv", items, card)
    with open(out, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["path"] == f"'{start}cmd|' /C calc'!A0.png"
    assert rows[0]["error"] == f"'{start}SUM(1+1)"
    assert rows[0]["model"] == f"'{start}HYPERLINK(\"http://x\") 1"
    assert rows[1]["path"] == "plain.png" and rows[1]["error"] == "the file is empty"  # others untouched
    every_cell = [cell for row in rows for cell in row.values()]
    assert not any(cell.startswith(batch.FORMULA_STARTS) for cell in every_cell)
