"""The Batch tab driven as a user would: drops, cancel, sorting, filtering, CSV export, double-click."""

from __future__ import annotations

import csv
import threading

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from covidgui.core.analysis import batch
from covidgui.gui.batch_view import (CONFIDENCE_COLUMN, ERROR_COLUMN, FILE_COLUMN, FLAGS_COLUMN, LABEL_COLUMN,
                                     LUNGS_COLUMN, PATH_ROLE, THUMB_COLUMN)
from covidgui.gui.result_panel import percent
from tests.conftest import SHARED_DATA, chest_like
from tests.test_batch import make_mixed_folder
from tests.test_gui import MODEL_TIMEOUT_MS, drop_files, ready_window, wait_for_result, window  # noqa: F401


def run_batch(qtbot, win, start):
    """Start a batch with ``start()`` and wait for it to end; returns its BatchSummary."""
    with qtbot.waitSignal(win.batch_view.batch_finished, timeout=MODEL_TIMEOUT_MS) as finished:
        start()
    return finished.args[0]


def shown(view, row, column) -> str:
    return view.proxy.index(row, column).data() or ""


def test_dropping_a_folder_fills_the_batch_table(qtbot, ready_window, tmp_path):
    files = make_mixed_folder(tmp_path / "day")
    summary = run_batch(qtbot, ready_window, lambda: drop_files(ready_window, tmp_path / "day"))
    view = ready_window.batch_view
    assert ready_window.tabs.currentWidget() is view
    assert (summary.total, summary.done, summary.failed, summary.skipped) == (6, 6, 2, 3)
    assert not summary.cancelled
    rows = {shown(view, r, FILE_COLUMN): r for r in range(view.proxy.rowCount())}
    assert set(rows) == {p.name for p in files.values()}
    for name in ("corrupt.jpg", "empty.png"):
        assert shown(view, rows[name], LABEL_COLUMN) == "Failed"
        assert shown(view, rows[name], ERROR_COLUMN)
    for name in ("a.png", "b.jpg", "c.JPEG", "nested.png"):
        assert shown(view, rows[name], LABEL_COLUMN) in ("COVID-19", "Normal", "Indeterminate", "Not a chest X-ray")
        label, confidence = shown(view, rows[name], LABEL_COLUMN), shown(view, rows[name], CONFIDENCE_COLUMN)
        # a withheld image (generated ones often are) shows no confidence, any other one does
        assert confidence == "" if label == "Not a chest X-ray" else confidence.endswith("%")
        assert view.proxy.index(rows[name], THUMB_COLUMN).data(Qt.ItemDataRole.DecorationRole) is not None
    text = view.summary_label.text()
    assert "Done: 6 files" in text and "2 could not be read" in text and "3 non-image files skipped" in text
    assert view.export_button.isEnabled() and not view.cancel_button.isEnabled()


def test_several_files_dropped_at_once_are_a_batch_and_one_file_is_not(qtbot, ready_window, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(chest_like(128, seed=i)).save(paths[-1])
    summary = run_batch(qtbot, ready_window, lambda: drop_files(ready_window, *paths))
    assert summary.done == 3 and ready_window.batch_view.model.rowCount() == 3
    drop_files(ready_window, paths[0])
    assert ready_window.tabs.currentWidget() is ready_window.single_tab
    wait_for_result(qtbot, ready_window)


def test_open_folder_menu_starts_a_batch(qtbot, ready_window, tmp_path, monkeypatch):
    make_mixed_folder(tmp_path / "day")
    monkeypatch.setattr("covidgui.gui.main_window.QFileDialog.getExistingDirectory",
                        lambda *a, **k: str(tmp_path / "day"))
    summary = run_batch(qtbot, ready_window, ready_window.open_folder_action.trigger)
    assert summary.done == 6


def test_cancel_mid_batch_keeps_finished_rows_and_the_app_stays_usable(qtbot, ready_window, tmp_path, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        Image.fromarray(chest_like(96, seed=i)).save(folder / f"{i:03d}.png")
    # Files from the 40th on wait at a gate, so the batch is surely still running when Cancel is
    # clicked, whatever the speed of the machine.
    gate = threading.Event()
    real_decode = batch._decode

    def gated_decode(classifier, path, thumbnails):
        if int(path.stem) >= 40:
            gate.wait(30)
        return real_decode(classifier, path, thumbnails)

    monkeypatch.setattr(batch, "_decode", gated_decode)
    view = ready_window.batch_view
    try:
        with qtbot.waitSignal(view.batch_finished, timeout=MODEL_TIMEOUT_MS) as finished:
            ready_window.classify_batch([folder])
            qtbot.waitUntil(lambda: view.model.rowCount() >= 32, timeout=MODEL_TIMEOUT_MS)
            assert view.cancel_button.isEnabled()
            qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
    finally:
        gate.set()
    summary = finished.args[0]
    assert summary.cancelled and summary.total == 60
    # The two chunks of 16 finished before the gate stay; nothing after the gate was classified.
    assert view.model.rowCount() == summary.done == 32
    assert [item.path.name for item in view.model.items] == [f"{i:03d}.png" for i in range(32)]
    assert all(item.ok for item in view.model.items)
    assert "Cancelled: 32 of 60 files done" in view.summary_label.text()
    assert view.export_button.isEnabled() and not view.cancel_button.isEnabled()
    # Usable afterwards: another batch runs to the end and a single image still classifies.
    qtbot.waitUntil(lambda: not view.is_running(), timeout=MODEL_TIMEOUT_MS)
    summary = run_batch(qtbot, ready_window, lambda: ready_window.classify_batch([folder / "000.png", folder / "001.png"]))
    assert summary.done == 2 and not summary.cancelled and view.model.rowCount() == 2
    ready_window.classify(folder / "005.png")
    wait_for_result(qtbot, ready_window)
    assert ready_window.result_panel.file_label.text() == "005.png"


def test_exported_csv_matches_the_sorted_and_filtered_table(qtbot, ready_window, tmp_path):
    make_mixed_folder(tmp_path / "day")
    for i in range(5):
        Image.fromarray(chest_like(200, seed=20 + i)).save(tmp_path / "day" / f"extra{i}.jpg")
    run_batch(qtbot, ready_window, lambda: ready_window.classify_batch([tmp_path / "day"]))
    view = ready_window.batch_view
    view.table.horizontalHeader().setSortIndicator(CONFIDENCE_COLUMN, Qt.SortOrder.DescendingOrder)
    confidences = [shown(view, r, CONFIDENCE_COLUMN) for r in range(view.proxy.rowCount())]
    # "> 99.9 %" and "< 0.1 %" are how the table avoids claiming certainty
    numbers = [float(c.rstrip(" %").replace("> ", "").replace("< ", "")) for c in confidences if c]
    assert numbers == sorted(numbers, reverse=True) and confidences[-2:] == ["", ""]  # failures last

    def check_export(expected_rows):
        out = view.export_csv(tmp_path / "out.csv")
        with open(out, newline="", encoding="utf-8-sig") as f:
            records = list(csv.DictReader(f))
        assert len(records) == view.proxy.rowCount() == expected_rows
        for r, record in enumerate(records):
            assert record["path"].endswith("/" + shown(view, r, FILE_COLUMN))
            assert (record["label"] or "Failed") == shown(view, r, LABEL_COLUMN)
            conf = percent(float(record["confidence"])) if record["confidence"] else ""
            assert conf == shown(view, r, CONFIDENCE_COLUMN)
            assert record["error"] == shown(view, r, ERROR_COLUMN)
            # The table's Flags column: the result's flags, then the file's cautions.
            flags = [f for f in record["flags"].split(";") + record["warnings"].split(";") if f]
            assert ", ".join(flags) == shown(view, r, FLAGS_COLUMN)
            assert (record["lung attention"] == "") == (shown(view, r, LUNGS_COLUMN) == "")

    check_export(11)
    qtbot.keyClicks(view.filter_box, "extra")
    assert view.proxy.rowCount() == 5
    check_export(5)
    view.filter_box.clear()
    qtbot.keyClicks(view.filter_box, "failed")
    assert {shown(view, r, FILE_COLUMN) for r in range(view.proxy.rowCount())} == {"corrupt.jpg", "empty.png"}


def test_double_click_opens_the_image_in_the_single_image_view(qtbot, ready_window, tmp_path):
    make_mixed_folder(tmp_path / "day")
    run_batch(qtbot, ready_window, lambda: ready_window.classify_batch([tmp_path / "day"]))
    view = ready_window.batch_view
    row = next(r for r in range(view.proxy.rowCount()) if shown(view, r, FILE_COLUMN) == "b.jpg")
    batch_label = shown(view, row, LABEL_COLUMN)
    index = view.proxy.index(row, FILE_COLUMN)
    view.table.scrollTo(index)
    rect = view.table.visualRect(index)
    # A click then a double-click, as a mouse sends them (QTest's double-click alone has no press).
    qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert ready_window.tabs.currentWidget() is ready_window.single_tab
    wait_for_result(qtbot, ready_window)
    assert ready_window.result_panel.file_label.text() == "b.jpg"
    assert ready_window.result_panel.label.text() == batch_label


def test_a_batch_waits_for_the_model_to_load(qtbot, window, tmp_path):
    make_mixed_folder(tmp_path / "day")
    window.classify_batch([tmp_path / "day"])
    assert "Waiting for the model" in window.batch_view.title.text()
    with qtbot.waitSignal(window.batch_view.batch_finished, timeout=MODEL_TIMEOUT_MS) as finished:
        window.start_loading_model()
    assert finished.args[0].done == 6


def test_batch_table_shows_attention_on_lungs_as_the_single_view_does(qtbot, ready_window):
    classifier = ready_window.inference.worker.classifier
    if classifier.lungs is None:
        pytest.skip("no bundled lung model (models/lung_segmenter.keras)")
    folder = SHARED_DATA / "adult-normal"
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder}")
    paths = [folder / name for name in classifier.lungs.card["training"]["held_back"][:4]]
    run_batch(qtbot, ready_window, lambda: ready_window.classify_batch(paths))
    view = ready_window.batch_view
    assert view.model.headerData(LUNGS_COLUMN, Qt.Orientation.Horizontal) == "Attention on lungs"
    view.table.horizontalHeader().setSortIndicator(LUNGS_COLUMN, Qt.SortOrder.DescendingOrder)
    shown_percent = []
    for r in range(view.proxy.rowCount()):
        text = shown(view, r, LUNGS_COLUMN)
        single = classifier.predict_file(view.proxy.index(r, FILE_COLUMN).data(PATH_ROLE), heatmap=True)
        assert text.endswith(" %") and abs(int(text[:-2]) - single.lung_attention * 100) < 1.5, text
        shown_percent.append(int(text[:-2]))
    assert len(shown_percent) == 4 and shown_percent == sorted(shown_percent, reverse=True)


def test_batch_review_steps_through_the_sorted_and_filtered_table(qtbot, ready_window, tmp_path):
    """A click on a row shows it in the Image tab; PageDown / PageUp there walk the table as the
    reader sorted and filtered it, so flagged films can be reviewed one after another."""
    folder = tmp_path / "ward"
    folder.mkdir()
    for i, name in enumerate(["bed1-a.png", "bed1-b.png", "bed2-x.png", "bed1-c.png"]):
        Image.fromarray(chest_like(200, seed=40 + i)).save(folder / name)
    run_batch(qtbot, ready_window, lambda: ready_window.classify_batch([folder]))
    view = ready_window.batch_view
    view.table.horizontalHeader().setSortIndicator(FILE_COLUMN, Qt.SortOrder.DescendingOrder)
    qtbot.keyClicks(view.filter_box, "bed1")  # the reader's filter
    order = [shown(view, r, FILE_COLUMN) for r in range(view.proxy.rowCount())]
    assert order == ["bed1-c.png", "bed1-b.png", "bed1-a.png"]

    def showing(name):
        qtbot.waitUntil(lambda: ready_window.result_panel.file_label.text() == name
                        and ready_window.result_panel.label.text() not in ("…", "No image"), timeout=MODEL_TIMEOUT_MS)

    rect = view.table.visualRect(view.proxy.index(0, FILE_COLUMN))
    qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert ready_window.tabs.currentWidget() is ready_window.single_tab
    showing("bed1-c.png")
    viewer = ready_window.viewer
    viewer.setFocus()
    qtbot.keyClick(viewer, Qt.Key.Key_PageDown)
    showing("bed1-b.png")
    qtbot.keyClick(viewer, Qt.Key.Key_PageDown)
    showing("bed1-a.png")
    qtbot.keyClick(viewer, Qt.Key.Key_PageDown)  # the end: stays, and says so
    assert ready_window.statusBar().currentMessage() == "Last image of the batch"
    assert ready_window.result_panel.file_label.text() == "bed1-a.png"
    qtbot.keyClick(viewer, Qt.Key.Key_PageUp)
    showing("bed1-b.png")
    assert view.table.currentIndex().row() == 1  # the table follows the review


def test_the_real_dicom_folder_in_the_batch_tab_flags_every_other_file(qtbot, ready_window):
    from tests.test_dicom_real import ALL_FILES, CHEST_FILMS, DICOM_REAL, OTHERS

    if not DICOM_REAL.is_dir():
        pytest.skip(f"the real DICOM files are not at {DICOM_REAL}")
    summary = run_batch(qtbot, ready_window, lambda: drop_files(ready_window, DICOM_REAL))
    assert (summary.done, summary.failed, summary.skipped) == (len(ALL_FILES), 0, 2)
    view = ready_window.batch_view
    rows = {shown(view, r, FILE_COLUMN): r for r in range(view.proxy.rowCount())}
    for name, cautions in OTHERS.items():
        flags = shown(view, rows[name], FLAGS_COLUMN)
        assert flags.startswith("not a chest X-ray") and all(c in flags for c in cautions), (name, flags)
        assert shown(view, rows[name], CONFIDENCE_COLUMN) == ""
    for name in CHEST_FILMS:
        assert shown(view, rows[name], LABEL_COLUMN) in ("COVID-19", "Normal", "Indeterminate")


def test_a_model_change_classifies_the_batch_again_with_the_new_model(qtbot, ready_window, tmp_path):
    """Issue 28: the rows (and the CSV, which names the model) must belong to the model named,
    never to the one before it."""
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.models import registry
    from covidgui.core.models.modelcard import ModelCard
    from covidgui.core.training.train import build_classifier

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(chest_like(128, seed=i)).save(paths[-1])
    run_batch(qtbot, ready_window, lambda: drop_files(ready_window, *paths))
    view = ready_window.batch_view
    bundled = view.card
    assert f"{bundled.name} v{bundled.version}" in view.title.text()

    clinic = registry.save_version(Classifier(build_classifier(32, 2), ModelCard(
        name="Clinic", version="0", classes=["Covid", "Normal"], input_size=32)), "Clinic")
    summary = run_batch(qtbot, ready_window, lambda: ready_window.use_model(str(clinic.path)))
    assert summary.done == 3 and view.model.rowCount() == 3
    assert view.card.name == "Clinic"
    assert "Clinic" in view.title.text() and "Model changed to Clinic" in view.title.text()
    expected = {p.name: view.classifier.predict_file(p).label for p in paths}
    assert {shown(view, r, FILE_COLUMN): shown(view, r, LABEL_COLUMN) for r in range(3)} == expected
    with open(view.export_csv(tmp_path / "after.csv"), newline="", encoding="utf-8-sig") as f:
        models = {row["model"] for row in csv.DictReader(f)}
    assert models == {f"Clinic {view.card.version}"}
