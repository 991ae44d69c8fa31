"""Opening files as people do: ``covidgui gui FILE…`` / ``CovidGUI FILE…`` ("Open with", a
double-click), the macOS file-open event, and the open dialog's "All files"."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

from covidgui.cli import _files_mean_gui, build_parser
from covidgui.gui.main_window import IMAGE_FILTER, MainWindow
from tests.test_gui import MODEL_TIMEOUT_MS


def test_a_path_alone_means_the_gui_on_that_path(tmp_path, chest_png):
    assert _files_mean_gui([str(chest_png)]) == ["gui", str(chest_png)]
    assert _files_mean_gui([str(chest_png), str(tmp_path)]) == ["gui", str(chest_png), str(tmp_path)]
    assert _files_mean_gui(["classify", str(chest_png)]) == ["classify", str(chest_png)]
    assert _files_mean_gui(["--version"]) == ["--version"]
    assert _files_mean_gui(["no-such-file.dcm"]) == ["no-such-file.dcm"]  # argparse then names the mistake
    args = build_parser().parse_args(_files_mean_gui([str(chest_png)]))
    assert args.command == "gui" and args.files == [str(chest_png)]


def run_gui_until(monkeypatch, qtbot, argv, done):
    """Run ``covidgui.cli.main(argv)`` with an event loop that returns once ``done(window)``."""
    from covidgui import cli

    seen = {}

    def exec_until_done(app):
        # The window main() has just shown (an earlier test's closed one may still exist).
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        qtbot.waitUntil(lambda: done(window), timeout=MODEL_TIMEOUT_MS)
        seen["window"] = window
        seen["tab"] = window.tabs.currentWidget()
        seen["file"] = window.result_panel.file_label.text()
        seen["rows"] = window.batch_view.model.rowCount()
        window.close()
        window.deleteLater()
        return 0

    monkeypatch.setattr(QApplication, "exec", exec_until_done)
    assert cli.main(argv) == 0
    return seen


def test_one_file_on_the_command_line_opens_in_the_image_tab(qtbot, monkeypatch, chest_png):
    seen = run_gui_until(monkeypatch, qtbot, [str(chest_png)],
                         lambda w: w.result_panel.label.text() not in ("…", "No image", "No result"))
    assert seen["tab"] is seen["window"].single_tab and seen["file"] == chest_png.name


def test_a_folder_on_the_command_line_opens_in_the_batch_tab(qtbot, monkeypatch, tmp_path, chest_png):
    folder = tmp_path / "ward"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(chest_png, folder / name)
    seen = run_gui_until(monkeypatch, qtbot, ["gui", str(folder)],
                         lambda w: w.batch_view.model.rowCount() == 2 and not w.batch_view.is_running())
    assert seen["tab"] is seen["window"].batch_tab and seen["rows"] == 2


def test_the_macos_file_open_event_opens_the_file(qtbot, chest_png):
    from covidgui.gui.app import FileOpenFilter, create_app

    app = create_app()
    window = MainWindow()
    qtbot.addWidget(window)
    window.file_open_filter = FileOpenFilter(window)
    app.installEventFilter(window.file_open_filter)
    try:
        QApplication.sendEvent(app, QFileOpenEvent(str(chest_png)))
        assert window.result_panel.file_label.text() == chest_png.name  # queued for the model
        assert window.tabs.currentWidget() is window.single_tab
    finally:
        app.removeEventFilter(window.file_open_filter)
        window.close()


def test_the_open_dialog_offers_all_files_for_dicom_without_extension():
    filters = IMAGE_FILTER.split(";;")
    assert "All files (*)" in filters
    assert "*.dcm" in filters[0]




def _declared_types():
    import sys

    from tests.conftest import REPO

    sys.path.insert(0, str(REPO / "desktop"))
    try:
        import file_types
    finally:
        sys.path.pop(0)
    return file_types


def test_the_bundle_declares_every_type_the_loader_opens():
    from covidgui.core.io.dicom import DICOM_EXTENSIONS
    from covidgui.core.io.images import RASTER_EXTENSIONS
    from tests.conftest import REPO

    types = _declared_types()
    declared = {f".{ext}" for *_, extensions in types.FILE_TYPES for ext in extensions}
    assert declared == set(RASTER_EXTENSIONS) | set(DICOM_EXTENSIONS)
    plist = types.macos_info_plist()
    documents = plist["CFBundleDocumentTypes"]
    assert {ext for d in documents for ext in d["CFBundleTypeExtensions"]} == {e.lstrip(".") for e in declared}
    assert all(d["LSHandlerRank"] == "Alternate" and d["CFBundleTypeRole"] == "Viewer" for d in documents)
    assert plist["UTImportedTypeDeclarations"][0]["UTTypeIdentifier"] == "org.nema.dicom"
    # Linux: the .desktop MimeType lists every MIME type; Windows: the script every extension.
    desktop = (REPO / "desktop" / "linux" / "CovidGUI.desktop").read_text()
    mime = next(line for line in desktop.splitlines() if line.startswith("MimeType=")).split("=", 1)[1]
    assert set(filter(None, mime.split(";"))) == {m for _, m, _, _ in types.FILE_TYPES}
    script = (REPO / "desktop" / "windows" / "register-open-with.ps1").read_text()
    listed = script.split("$extensions = @(", 1)[1].split(")", 1)[0]
    assert {e.strip().strip('"') for e in listed.split(",")} == declared
    spec = (REPO / "build.spec").read_text()
    assert "macos_info_plist()" in spec and "add_open_with(" in spec
