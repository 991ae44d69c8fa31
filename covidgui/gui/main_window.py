"""The main window: drop or open an X-ray, see the image, the result and the heatmap."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QLabel, QMainWindow, QMessageBox, QSplitter, QStackedWidget,
                               QTabWidget)

from covidgui.gui.image_view import ImageView
from covidgui.gui.inference import ClassifiedImage, InferenceThread
from covidgui.gui.resources import about_html, app_icon
from covidgui.gui.result_panel import ResultPanel
from covidgui.gui.viewer_panel import ViewerPanel

IMAGE_FILTER = "X-ray images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.dcm *.dicom);;All files (*)"


class DropHint(QLabel):
    """What the image area shows before the first image: how to start."""

    def __init__(self, parent=None):
        super().__init__("Drop a chest X-ray here\n(PNG, JPEG, TIFF, BMP or DICOM)\n\nor use File > Open (Ctrl+O)", parent)
        self.setObjectName("dropHint")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)


class MainWindow(QMainWindow):
    # Emitted on the GUI thread once the model is loaded (or failed), for start-up code and tests.
    model_ready = Signal(object)
    model_unavailable = Signal(str)

    def __init__(self, model_path: str | None = None):
        super().__init__()
        self.setWindowTitle("CovidGUI — chest X-ray second opinion (research use only)")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1100, 720)

        self.card = None  # the loaded model's card, once ready
        self._request_id = 0
        self._model_path = model_path or ""

        self.viewer_panel = ViewerPanel()
        self.viewer: ImageView = self.viewer_panel.view
        self.last_result: ClassifiedImage | None = None  # what "Export report/image" writes
        self.hint = DropHint()
        self.image_area = QStackedWidget()
        self.image_area.addWidget(self.hint)
        self.image_area.addWidget(self.viewer_panel)
        self.result_panel = ResultPanel()
        self.result_panel.overlay_toggled.connect(self.viewer.set_overlay_visible)
        self.result_panel.overlay_opacity_changed.connect(self.viewer.set_overlay_opacity)
        self.viewer.set_overlay_opacity(self.result_panel.opacity_slider.value() / 100)

        single = QSplitter()
        single.addWidget(self.image_area)
        single.addWidget(self.result_panel)
        single.setStretchFactor(0, 3)
        single.setStretchFactor(1, 1)
        # One tab per job: the single-image view first; batch and training add their own tabs.
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.single_tab = single
        self.tabs.addTab(single, "Image")
        self.setCentralWidget(self.tabs)
        self._build_menus()

        self.inference = InferenceThread(self)
        worker = self.inference.worker
        worker.model_loaded.connect(self._on_model_loaded)
        worker.model_failed.connect(self._on_model_failed)
        worker.classified.connect(self._on_classified)
        worker.failed.connect(self._on_failed)
        self.statusBar().showMessage("Starting…")

    # -- set-up ---------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open X-ray…", self, shortcut=QKeySequence.StandardKey.Open,
                                   triggered=self.open_dialog)
        file_menu.addAction(self.open_action)
        self.export_report_action = QAction("Export &report (PDF)…", self, enabled=False,
                                            shortcut=QKeySequence("Ctrl+E"), triggered=self.export_report_dialog)
        self.export_image_action = QAction("Export &image (PNG)…", self, enabled=False,
                                           triggered=self.export_image_dialog)
        file_menu.addAction(self.export_report_action)
        file_menu.addAction(self.export_image_action)
        file_menu.addSeparator()
        file_menu.addAction(QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close))
        help_menu = self.menuBar().addMenu("&Help")
        self.about_action = QAction("&About CovidGUI", self, triggered=self.show_about)
        help_menu.addAction(self.about_action)

    def start_loading_model(self) -> None:
        """Ask the worker to load the model; call once the window is shown."""
        self.statusBar().showMessage("Loading model…")
        self.inference.request_load.emit(self._model_path)

    # -- user actions ---------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open chest X-ray", "", IMAGE_FILTER)
        if path:
            self.classify(path)

    def classify(self, path: str | Path) -> None:
        """Show the file as pending and queue it for the worker; the newest request wins."""
        self._request_id += 1
        name = Path(path).name
        waiting = "Classifying…" if self.card else "Waiting for the model to finish loading…"
        self.tabs.setCurrentWidget(self.single_tab)
        self.result_panel.show_pending(name, waiting)
        self.statusBar().showMessage(f"Classifying {name}…")
        self.inference.request_classify.emit(self._request_id, str(path))

    def show_about(self) -> None:
        QMessageBox.about(self, "About CovidGUI", about_html(self.card))

    # -- drag and drop --------------------------------------------------------------------------
    @staticmethod
    def _local_files(mime) -> list[str]:
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []

    def dragEnterEvent(self, event):
        if self._local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event):
        self.dragEnterEvent(event)

    def dropEvent(self, event):
        files = self._local_files(event.mimeData())
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.classify(files[0])

    # -- worker results -------------------------------------------------------------------------
    @Slot(object)
    def _on_model_loaded(self, card) -> None:
        self.card = card
        self.statusBar().showMessage(f"Ready — model {card.name} v{card.version}")
        self.model_ready.emit(card)

    @Slot(str)
    def _on_model_failed(self, message: str) -> None:
        self.card = None
        self.statusBar().showMessage("No model loaded")
        self.result_panel.show_error("", message)
        self.model_unavailable.emit(message)

    @Slot(object)
    def _on_classified(self, result: ClassifiedImage) -> None:
        if result.request_id != self._request_id:
            return  # the user has dropped another image since
        self.viewer.set_image(result.display)
        self.viewer.set_overlay(result.overlay)
        self.image_area.setCurrentWidget(self.viewer_panel)
        # The panel decides whether the overlay shows (not for an image the gate rejected).
        self.result_panel.show_prediction(result.prediction, result.path.name, result.overlay is not None)
        self.result_panel.show_input_info(result.metadata.get("warnings", []), result.metadata.get("dicom"),
                                          result.metadata.get("patient"))
        self.last_result = result
        self.export_report_action.setEnabled(True)
        self.export_image_action.setEnabled(True)
        self.statusBar().showMessage(f"Ready — {result.path.name}: {result.prediction.label}")

    @Slot(int, str, str)
    def _on_failed(self, request_id: int, path: str, message: str) -> None:
        if request_id != self._request_id:
            return
        self.viewer.clear()
        self.last_result = None
        self.export_report_action.setEnabled(False)
        self.export_image_action.setEnabled(False)
        self.image_area.setCurrentWidget(self.hint)
        self.result_panel.show_error(Path(path).name, message)
        self.statusBar().showMessage(f"Could not classify {Path(path).name}")

    # -- export ---------------------------------------------------------------------------------
    def export_report_dialog(self) -> None:
        from covidgui.gui.export_dialog import ask_report_destination

        if self.last_result is None:
            return
        patient = self.last_result.metadata.get("patient")
        choice = ask_report_destination(self, self.last_result.path, patient is not None and not patient.is_empty())
        if choice is not None:
            self.export_report(*choice)

    def export_report(self, out_path: str | Path, include_patient: bool = False) -> Path | None:
        """Write the PDF report of the current result; returns its path (None when it failed)."""
        from covidgui.core.report import write_report

        result = self.last_result
        if result is None or self.card is None:
            return None
        heat = result.heatmap if self.viewer.overlay_visible() else None
        try:
            out = write_report(out_path, result.display, result.prediction, self.card, result.path.name,
                               result.metadata, heatmap=heat, include_patient=include_patient,
                               overlay_opacity=self.viewer.overlay_opacity())
        except OSError as exc:
            QMessageBox.warning(self, "Export report", f"The report could not be written: {exc}")
            return None
        self.statusBar().showMessage(f"Report written to {out}")
        return out

    def export_image_dialog(self) -> None:
        if self.last_result is None:
            return
        default = str(self.last_result.path.with_name(self.last_result.path.stem + "-covidgui.png"))
        path, _ = QFileDialog.getSaveFileName(self, "Export image", default, "PNG image (*.png)")
        if path:
            self.export_image(path)

    def export_image(self, out_path: str | Path) -> Path | None:
        """Save the image as shown (window/level, invert, heatmap if visible) as a PNG."""
        if not self.viewer.has_image():
            return None
        out = Path(out_path)
        if not self.viewer.rendered_image().save(str(out), "PNG"):
            QMessageBox.warning(self, "Export image", f"The image could not be written to {out}.")
            return None
        self.statusBar().showMessage(f"Image written to {out}")
        return out

    def closeEvent(self, event):
        self.inference.stop()
        super().closeEvent(event)

