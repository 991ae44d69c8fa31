"""The main window: drop or open an X-ray, see the image, the result and the heatmap."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (QFileDialog, QFrame, QLabel, QMainWindow, QMessageBox, QScrollArea, QSplitter,
                               QStackedWidget, QTabWidget)

from covidgui.core.analysis.analyse import Analysis
from covidgui.core.models.registry import active_model_path
from covidgui.gui.batch_view import BatchView
from covidgui.gui.export_dialog import ask_report_destination
from covidgui.gui.image_view import ImageView
from covidgui.gui.inference import ClassifiedImage, InferenceThread
from covidgui.gui.models_dialog import ModelsDialog
from covidgui.gui.resources import about_html, app_icon
from covidgui.gui.result_panel import ResultPanel
from covidgui.gui.settings import restore_window, save_window
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
        # No model named: the one chosen with "Use this model" (the bundled one until then).
        self._model_path = model_path or _active_model_path()

        self.viewer_panel = ViewerPanel()
        self.viewer: ImageView = self.viewer_panel.view
        self.last_result: Analysis | None = None  # what "Export report/image" writes
        self.last_result_model: ClassifiedImage | None = None  # the model that made it: card, input-check warning
        self._current_path: str | None = None  # the single image on display (or pending), re-classified on a model change
        self.hint = DropHint()
        self.image_area = QStackedWidget()
        self.image_area.addWidget(self.hint)
        self.image_area.addWidget(self.viewer_panel)
        self.result_panel = ResultPanel()
        self.result_panel.overlay_toggled.connect(self.viewer.set_overlay_visible)
        self.result_panel.overlay_opacity_changed.connect(self.viewer.set_overlay_opacity)
        self.result_panel.lung_outline_toggled.connect(self.viewer.set_lung_outline_visible)
        self.result_panel.classified_anyway.connect(self._on_classified_anyway)
        self.viewer.set_overlay_opacity(self.result_panel.opacity_slider.value() / 100)
        # The panel scrolls rather than squeezing its texts when cautions and DICOM rows pile up
        # on a small screen; it always gets the full width, so its labels wrap between words.
        self.result_scroll = QScrollArea()
        self.result_scroll.setWidget(self.result_panel)
        self.result_scroll.setWidgetResizable(True)
        self.result_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.result_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.result_scroll.setMinimumWidth(self.result_panel.minimumWidth() + 16)

        single = QSplitter()
        single.addWidget(self.image_area)
        single.addWidget(self.result_scroll)
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
        self._add_batch_tab()  # tabs in the order of use: Image, Batch, Training
        self._add_training_tab()
        self.statusBar().showMessage("Starting…")
        self.settings = restore_window(self)  # geometry, heatmap opacity (covidgui.gui.settings)

    # -- set-up ---------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open X-ray…", self, shortcut=QKeySequence.StandardKey.Open,
                                   triggered=self.open_dialog)
        file_menu.addAction(self.open_action)
        self.open_folder_action = QAction("Open &Folder…", self, shortcut=QKeySequence("Ctrl+Shift+O"),
                                          triggered=self.open_folder_dialog)
        file_menu.addAction(self.open_folder_action)
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
        path, _ = QFileDialog.getOpenFileName(self, "Open chest X-ray", self.settings.last_folder("open"),
                                              IMAGE_FILTER)
        if path:
            self.settings.set_last_folder("open", path)
            self.classify(path)

    def classify(self, path: str | Path, waiting: str | None = None, show_tab: bool = True) -> None:
        """Show the file as pending and queue it for the worker; the newest request wins. Until its
        result arrives there is nothing to export (the previous result is not the one on display).
        waiting: the panel's message meanwhile; show_tab: bring the Image tab to the front."""
        self._request_id += 1
        self._current_path = str(path)
        self._forget_result()
        name = Path(path).name
        waiting = waiting or ("Classifying…" if self.card else "Waiting for the model to finish loading…")
        if show_tab:
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
        self.open_paths(files)

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open what the user named (a drop, ``covidgui FILE…``, "Open with"): one file in the
        Image tab, several files or a folder in the Batch tab. Classified once the model is ready."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        if len(paths) == 1 and not Path(paths[0]).is_dir():
            self.classify(paths[0])
        else:  # a folder, or several files at once: a batch
            self.classify_batch(paths)

    # -- worker results -------------------------------------------------------------------------
    @Slot(object)
    def _on_model_loaded(self, card) -> None:
        self.card = card
        self.statusBar().showMessage(f"Ready — model {card.name} v{card.version}")
        self._show_input_check_warning(getattr(self.inference.worker.classifier, "input_check_warning", None))
        self.model_ready.emit(card)

    def _show_input_check_warning(self, warning: str | None) -> None:
        """A model without an input gate says so for as long as it is loaded (status bar, right)."""
        label = getattr(self, "input_check_label", None)
        if label is None:
            label = self.input_check_label = QLabel("⚠ No input check")
            label.setObjectName("noInputCheck")
            label.setStyleSheet("color: #b71c1c; font-weight: bold;")
            self.statusBar().addPermanentWidget(label)
        label.setToolTip(warning or "")
        label.setVisible(bool(warning))

    @Slot(str)
    def _on_model_failed(self, message: str) -> None:
        self.card = None
        self._request_id += 1  # a classification queued behind the load cannot run; its failure is not news
        self._forget_result()
        self.statusBar().showMessage("No model loaded")
        self.result_panel.show_error("", message)
        self.model_unavailable.emit(message)

    @Slot(object)
    def _on_classified(self, result: ClassifiedImage) -> None:
        if result.request_id != self._request_id:
            return  # the user has dropped another image since
        analysis = result.analysis
        self.viewer_panel.show_image(result.shown, analysis.levels)
        self.viewer.set_overlay(analysis.overlay)
        self.viewer.set_lung_outline(analysis.lung_outline)
        self.image_area.setCurrentWidget(self.viewer_panel)
        # The panel decides whether the overlay shows (not for an image the gate rejected).
        self.result_panel.show_prediction(analysis.prediction, analysis.path.name, analysis.overlay is not None,
                                          card=result.card)
        self.result_panel.show_input_info(analysis.metadata.get("warnings", []), analysis.metadata.get("dicom"),
                                          analysis.metadata.get("patient"))
        self.last_result = analysis
        self.last_result_model = result
        self.export_report_action.setEnabled(True)
        self.export_image_action.setEnabled(True)
        self.statusBar().showMessage(f"Ready — {analysis.path.name}: {analysis.prediction.label}")

    @Slot(object)
    def _on_classified_anyway(self, prediction) -> None:
        if self.last_result is not None:
            self.last_result.prediction = prediction
            self.statusBar().showMessage(f"{self.last_result.path.name}: {prediction.label} (classified anyway)")

    @Slot(int, str, str)
    def _on_failed(self, request_id: int, path: str, message: str) -> None:
        if request_id != self._request_id:
            return
        self.viewer.clear()
        self._forget_result()
        self.image_area.setCurrentWidget(self.hint)
        self.result_panel.show_error(Path(path).name, message)
        self.statusBar().showMessage(f"Could not classify {Path(path).name}")

    def _forget_result(self) -> None:
        """Nothing to export: the result on display is gone or not yet there."""
        self.last_result = None
        self.last_result_model = None
        self.export_report_action.setEnabled(False)
        self.export_image_action.setEnabled(False)

    # -- export ---------------------------------------------------------------------------------
    def export_report_dialog(self) -> None:
        if self.last_result is None:
            return
        patient = self.last_result.metadata.get("patient")
        choice = ask_report_destination(self, self.last_result.path, patient is not None and not patient.is_empty())
        if choice is not None:
            self.export_report(*choice)

    def export_report(self, out_path: str | Path, include_patient: bool = False) -> Path | None:
        """Write the PDF report of the current result; returns its path (None when it failed)."""
        # Here, not at the top: the report imports matplotlib's PDF backend, which start-up need not pay.
        from covidgui.core.output.report import write_report

        result, model = self.last_result, self.last_result_model
        if result is None or model is None:
            return None
        heat = result.prediction.heatmap if self.viewer.overlay_visible() else None
        metadata = result.metadata
        if model.input_check_warning:  # the report says it too, among its cautions
            metadata = {**metadata, "warnings": [*metadata.get("warnings", []), model.input_check_warning]}
        try:
            # Credited to the model that made the result, whichever is loaded now.
            out = write_report(out_path, result.display, result.prediction, model.card, result.path.name,
                               metadata, heatmap=heat, include_patient=include_patient,
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

    # -- training and model versions (covidgui.gui.training_tab, covidgui.gui.models_dialog) ------
    def _add_training_tab(self) -> None:
        # Built when first opened: matplotlib, scipy and scikit-learn cost ~2 s to import, which
        # must not delay the window at start-up.
        self.training_tab = None
        self._training_placeholder = QLabel("Loading the training tools…")
        self._training_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.tabs.addTab(self._training_placeholder, "Training")
        self.tabs.currentChanged.connect(self._maybe_build_training_tab)
        models_menu = self.menuBar().addMenu("&Models")
        self.models_action = QAction("&Manage models…", self, triggered=self.show_models)
        models_menu.addAction(self.models_action)

    @Slot(int)
    def _maybe_build_training_tab(self, index: int) -> None:
        if self.training_tab is None and self.tabs.widget(index) is self._training_placeholder:
            self.open_training_tab()

    def open_training_tab(self):
        """Show the Training tab (building it on first use); returns it."""
        if self.training_tab is None:
            # Here, not at the top: the tab brings matplotlib and scikit-learn; built on first use.
            from covidgui.gui.training_tab import TrainingTab

            index = self.tabs.indexOf(self._training_placeholder)
            self.training_tab = TrainingTab()
            self.training_tab.model_activated.connect(self.use_model)
            self.tabs.blockSignals(True)
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, self.training_tab, "Training")
            self.tabs.blockSignals(False)
            self._training_placeholder.deleteLater()
        self.tabs.setCurrentWidget(self.training_tab)
        return self.training_tab

    def show_models(self):
        """The Models list: switch to or delete a user version (non-blocking dialog; returned)."""
        self.models_dialog = ModelsDialog(self)
        self.models_dialog.model_activated.connect(self.use_model)
        self.models_dialog.open()
        return self.models_dialog

    @Slot(str)
    def use_model(self, path: str) -> None:
        """Classify with the model at ``path`` from now on (reloads the worker's model). The image on
        display is classified again by it: a result never outlives the model that made it."""
        self._model_path = path
        self.card = None
        self.start_loading_model()
        if self._current_path is not None:  # queued behind the load, so the new model answers
            self.classify(self._current_path, "Classifying again with the newly chosen model…", show_tab=False)

    def _confirm_stop_training(self) -> bool:
        answer = QMessageBox.question(self, "Training in progress",
                                      "A model is being trained. Stop training and close? "
                                      "Nothing will be saved and the active model stays as it is.",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # -- batch ----------------------------------------------------------------------------------
    def _add_batch_tab(self) -> None:
        """The Batch tab; it classifies with the model the single-image worker loads."""
        self.batch_view = BatchView()
        self.batch_tab = self.batch_view
        self.tabs.addTab(self.batch_view, "Batch")
        self.batch_view.open_requested.connect(self.classify)
        self.batch_view.status_message.connect(self.statusBar().showMessage)
        # Bound methods of widgets, so the calls are queued to the GUI thread (a lambda would run
        # on the worker's thread).
        self.inference.worker.model_loaded.connect(self._give_batch_the_model)
        self.inference.worker.model_failed.connect(self.batch_view.set_model_error)
        # Batch review from the Image tab: PageDown / PageUp show the next / previous row of the
        # Batch table as it is sorted and filtered (the table keeps PageDown for scrolling).
        self.next_shortcut = QShortcut(QKeySequence(Qt.Key.Key_PageDown), self.single_tab, lambda: self.review_step(1))
        self.previous_shortcut = QShortcut(QKeySequence(Qt.Key.Key_PageUp), self.single_tab,
                                           lambda: self.review_step(-1))
        for shortcut in (self.next_shortcut, self.previous_shortcut):
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

    def review_step(self, delta: int) -> None:
        """Show the next (+1) or previous (-1) image of the Batch table in the Image tab."""
        if self.batch_view.step(delta) is None:
            _, count = self.batch_view.review_position()
            self.statusBar().showMessage("No batch to review: open a folder first" if count == 0 else
                                         "Last image of the batch" if delta > 0 else "First image of the batch")
            return
        position, count = self.batch_view.review_position()
        self.statusBar().showMessage(f"Batch review: image {position} of {count} (PageDown: next, PageUp: previous)")

    @Slot(object)
    def _give_batch_the_model(self, _card) -> None:
        self.batch_view.set_classifier(self.inference.worker.classifier)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of chest X-rays",
                                                  self.settings.last_folder("batch"))
        if folder:
            self.settings.set_last_folder("batch", folder)
            self.classify_batch([folder])

    def classify_batch(self, paths: list[str | Path]) -> None:
        """Classify folders (searched recursively) and files in the Batch tab."""
        self.tabs.setCurrentWidget(self.batch_tab)
        self.batch_view.start([str(p) for p in paths])

    def closeEvent(self, event):
        if self.training_tab is not None and self.training_tab.is_training():
            if not self._confirm_stop_training():
                event.ignore()
                return
        if self.training_tab is not None:
            self.statusBar().showMessage("Stopping training…")
            self.training_tab.stop_and_wait()
        self.batch_view.shutdown()
        self.inference.stop()
        save_window(self, self.settings)
        super().closeEvent(event)


def _active_model_path() -> str:
    return str(active_model_path())

