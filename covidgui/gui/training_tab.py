"""The Training tab: choose labelled folders, check them, train, watch the curves, compare, keep.

It puts together the setup form (covidgui.gui.training_setup), the run controls
(covidgui.gui.training_run_panel) and the results (covidgui.gui.training_results), and holds the
state of one run. Every number shown comes from the training worker's signals
(covidgui.gui.training_worker); this widget decodes nothing and never imports TensorFlow.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QFrame, QMessageBox, QScrollArea, QSplitter, QVBoxLayout, QWidget

from covidgui.core.inference.lungs import bundled_segmenter_path
from covidgui.core.models.registry import set_active
from covidgui.core.training.progress import RunEvent, TrainingOutcome
from covidgui.core.training.train import TrainConfig
from covidgui.gui.training_results import ResultsView, SaveModelDialog
from covidgui.gui.training_run_panel import RunPanel
from covidgui.gui.training_setup import SetupForm
from covidgui.gui.training_worker import TrainingThread


class TrainingTab(QWidget):
    """Emits ``model_activated(path)`` when the user makes a newly saved model the active one."""

    model_activated = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.summary = None
        self.outcome: TrainingOutcome | None = None
        self.saved_version = None
        self._summary_id = 0
        self._summary_inputs = None
        self._pending_inputs = None
        self._training = False
        self._activate_after_save = False
        self.save_dialog: SaveModelDialog | None = None
        # TrainConfig fields without a control here (e.g. input_size), overriding their defaults.
        self.fixed_settings: dict = {}

        self.jobs = TrainingThread(self)
        worker = self.jobs.worker
        worker.summary_progress.connect(self._on_summary_progress)
        worker.summary_ready.connect(self._on_summary_ready)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.cancelled.connect(self._on_cancelled)
        worker.failed.connect(self._on_failed)
        worker.saved.connect(self._on_saved)
        worker.save_failed.connect(self._on_save_failed)

        # Re-check the folders shortly after the last change, not on every keystroke.
        self._summary_timer = QTimer(self, singleShot=True, interval=300, timeout=self.check_data)

        self.setup = SetupForm(lung_model=bundled_segmenter_path().is_file())
        self.setup.inputs_changed.connect(self._inputs_changed)
        self.run_panel = RunPanel()
        self.run_panel.start_button.clicked.connect(self.start)
        self.run_panel.cancel_button.clicked.connect(self.cancel)
        self.setup.start_active_radio.toggled.connect(
            lambda adapting: self.start_button.setText("Start adapting" if adapting else "Start training"))
        self.results = ResultsView()
        self.results.save_button.clicked.connect(self.ask_save)
        self.results.use_button.clicked.connect(self.use_new_model)
        self._name_parts()
        self._lay_out()
        self._update_buttons()

    def _name_parts(self) -> None:
        """The parts' widgets under the names the window, tests and benchmarks use."""
        s, r, v = self.setup, self.run_panel, self.results
        self.train_picker, self.val_picker = s.train_picker, s.val_picker
        self.val_share_radio, self.val_folder_radio, self.val_share_spin = (s.val_share_radio, s.val_folder_radio,
                                                                            s.val_share_spin)
        self.epochs_spin, self.batch_spin, self.lr_spin = s.epochs_spin, s.batch_spin, s.lr_spin
        self.augment_check, self.lung_check = s.augment_check, s.lung_check
        self.patience_spin, self.seed_spin = s.patience_spin, s.seed_spin
        self.start_new_radio, self.start_active_radio, self.folds_spin = (s.start_new_radio, s.start_active_radio,
                                                                          s.folds_spin)
        self.summary_status, self.counts_table = s.summary_status, s.counts_table
        self.summary_messages, self.unreadable_list = s.summary_messages, s.unreadable_list
        self.start_button, self.cancel_button = r.start_button, r.cancel_button
        self.progress, self.progress_label = r.progress, r.progress_label
        self.curves, self.evaluation, self.metrics_table = v.curves, v.evaluation, v.metrics_table
        self.keep_label, self.save_button, self.use_button = v.keep_label, v.save_button, v.use_button
        self.verdict_label = v.verdict_label

    def _lay_out(self) -> None:
        # The form and the results scroll rather than making the window taller or wider than a
        # 1366 x 768 (or 1024 x 700) screen: their contents have minimum sizes the window must not
        # inherit. The run controls stay below the form, never scrolled away.
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 4, 0)
        column.addWidget(self.setup)
        column.addStretch(1)
        self.left_scroll = form = QScrollArea()
        form.setWidgetResizable(True)
        form.setWidget(box)
        form.setFrameShape(QFrame.Shape.NoFrame)
        # Wide enough for the form beside a vertical scroll bar; narrower (a splitter drag), it scrolls
        # sideways too instead of cutting the form off.
        form.setMinimumWidth(box.minimumSizeHint().width() + form.verticalScrollBar().sizeHint().width() + 2)
        form.setMinimumHeight(120)
        left = QWidget()
        left_column = QVBoxLayout(left)
        left_column.setContentsMargins(0, 0, 0, 0)
        left_column.addWidget(form, 1)
        left_column.addWidget(self.run_panel)
        self.results_scroll = right = QScrollArea()
        right.setWidgetResizable(True)
        right.setWidget(self.results)
        right.setFrameShape(QFrame.Shape.NoFrame)
        right.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        right.setMinimumHeight(200)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setChildrenCollapsible(False)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    def showEvent(self, event):  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self._name_active_model()

    def _name_active_model(self) -> None:
        """Name the active model in the "Start from" choice (it may have changed in the Models dialog)."""
        from covidgui.core.errors import CovidGUIError
        from covidgui.core.models.modelcard import read_card
        from covidgui.core.models.registry import active_model_path

        try:
            card = read_card(active_model_path())
            self.setup.set_active_model_name(f"{card.name} v{card.version}")
        except (CovidGUIError, OSError, ValueError):
            self.setup.set_active_model_name("")

    # -- state ----------------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self._training

    def _inputs(self) -> tuple:
        return self.setup.inputs()

    def _update_buttons(self) -> None:
        fresh = self.summary is not None and self._summary_inputs == self._inputs()
        self.start_button.setEnabled(not self._training and fresh and self.summary.ok)
        self.cancel_button.setEnabled(self._training)
        has_result = self.outcome is not None and not self._training
        self.save_button.setEnabled(has_result and self.saved_version is None)
        self.use_button.setEnabled(has_result)
        self.setup.set_editable(not self._training, lung_model=bundled_segmenter_path().is_file())

    def config(self) -> TrainConfig:
        """The settings as a TrainConfig (fields this tab has no control for keep their defaults)."""
        return self.setup.config(self.fixed_settings)

    # -- data check -----------------------------------------------------------------------------
    def set_training_folder(self, path) -> None:
        self.train_picker.set_path(str(path))

    def set_validation_folder(self, path) -> None:
        self.val_folder_radio.setChecked(True)
        self.val_picker.set_path(str(path))

    @Slot()
    def _inputs_changed(self, *_args) -> None:
        self.summary = None
        self._update_buttons()
        if self.train_picker.path():
            self._summary_timer.start()

    @Slot()
    def check_data(self) -> None:
        """Ask the worker to summarise the chosen folders."""
        if self._training or not self.train_picker.path():
            return
        self._summary_id += 1
        self._pending_inputs = self._inputs()
        self.setup.show_checking()
        self.jobs.summarize(self._summary_id, *self._pending_inputs)

    @Slot(int, int)
    def _on_summary_progress(self, done: int, total: int) -> None:
        self.setup.show_checking(done, total)

    @Slot(int, object)
    def _on_summary_ready(self, request_id: int, summary) -> None:
        if request_id != self._summary_id:
            return  # the folders changed since this check started
        self.summary = summary
        self._summary_inputs = self._pending_inputs
        self.setup.show_summary(summary)
        self._update_buttons()

    # -- training -------------------------------------------------------------------------------
    @Slot()
    def start(self) -> None:
        if self.summary is None or not self.summary.ok or self._training:
            return
        if self.outcome is not None and self.saved_version is None and not self._confirm_discard_unsaved():
            return  # the reader keeps the last run's model (and can still save it)
        self._training = True
        self.outcome = None
        self.saved_version = None
        self.results.clear()
        self.run_panel.show_started()
        train_dir, val_dir, share, seed = self._summary_inputs
        info = {"data": train_dir, "validation_data": val_dir or f"{share:.0%} of each training class, seed {seed}",
                "train_counts": self.summary.train_counts, "val_counts": self.summary.val_counts,
                "left_out_unreadable": self.summary.unreadable, "trained_with": "CovidGUI Training tab"}
        adaptation = None
        if self.setup.adapting():
            adaptation = {"folds": self.setup.folds()}
            info["trained_with"] = "CovidGUI Training tab, adapting the active model"
        self._update_buttons()
        self.jobs.train(self.summary, self.config(), info, adaptation)

    def _confirm_discard_unsaved(self) -> bool:
        """A new run replaces the last one's model, which is not saved: ask first (default: No)."""
        answer = QMessageBox.question(
            self, "Discard the unsaved model?",
            "The model from the last run has not been saved. Starting a new run discards it.\n\n"
            "Start a new run anyway? (No: keep it, and save it with “Save as new model…”.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    @Slot()
    def cancel(self) -> None:
        if not self._training:
            return
        self.jobs.worker.request_stop()
        self.run_panel.show_cancelling()

    def stop_and_wait(self, timeout_ms: int = 30_000) -> bool:
        """Stop training and the worker thread (the window is closing)."""
        self._summary_timer.stop()
        return self.jobs.stop(timeout_ms)

    @Slot(object)
    def _on_progress(self, event: RunEvent) -> None:
        if event.kind == "phase":
            self.run_panel.show_phase(event.text, event.part, event.parts)
            if event.parts:
                self.curves.reset()  # each fold, and the final model, is a training of its own
        elif event.kind == "epoch":
            self.curves.add_epoch(event.logs)
        elif self._training:
            self.run_panel.show_batch(event, early_stopping=bool(self.patience_spin.value()))

    @Slot()
    def _on_cancelled(self) -> None:
        self._training = False
        self.run_panel.show_ended("Training cancelled. Nothing was saved and the active model is unchanged.")
        self._update_buttons()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._training = False
        self.run_panel.show_ended(f"Training failed: {message} Nothing was saved.")
        self.summary_status.setText(self.summary_status.text() if self.summary else message)
        self._update_buttons()

    @Slot(object)
    def _on_finished(self, outcome: TrainingOutcome) -> None:
        self._training = False
        self.outcome = outcome
        self.run_panel.show_finished(outcome)
        self.results.show_outcome(outcome)
        self._update_buttons()

    # -- keeping the model ----------------------------------------------------------------------
    @Slot()
    def ask_save(self) -> None:
        """Open the name/notes dialog (non-blocking); saving happens on the worker."""
        if self.outcome is None:
            return
        train_name = self.train_picker.path().rstrip("/").split("/")[-1] or "model"
        default = f"{train_name} model"
        if self.outcome.adaptation:
            default = f"{self.outcome.adaptation['starting_model']} adapted to {train_name}"
        self.save_dialog = SaveModelDialog(self, default_name=default)
        self.save_dialog.accepted.connect(self._save_accepted)
        self.save_dialog.rejected.connect(lambda: setattr(self, "_activate_after_save", False))
        self.save_dialog.open()

    @Slot()
    def _save_accepted(self) -> None:
        dialog = self.save_dialog
        self.save_button.setEnabled(False)
        self.use_button.setEnabled(False)
        self.keep_label.setText("Saving…")
        self.jobs.save(dialog.name_edit.text(), dialog.notes_edit.toPlainText())

    @Slot()
    def use_new_model(self) -> None:
        adaptation = self.outcome.adaptation if self.outcome is not None else None
        if adaptation and not adaptation["better"] and not self._confirm_use_not_better(adaptation["verdict"]):
            return
        if self.saved_version is None:
            self._activate_after_save = True
            self.ask_save()
            return
        self._activate(self.saved_version)

    def _confirm_use_not_better(self, verdict: str) -> bool:
        """The adapted model is not better than the active one: ask before using it (default: No)."""
        answer = QMessageBox.question(
            self, "Use a model that is not better?",
            f"{verdict}\n\nUse the adapted model for classifying images anyway? "
            "(No: the active model stays as it is.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _activate(self, version) -> None:
        set_active(version.id)
        self.keep_label.setText(f"“{version.card.name}” v{version.card.version} is now the active model.")
        self._name_active_model()
        self.model_activated.emit(str(version.path))

    @Slot(object)
    def _on_saved(self, version) -> None:
        self.saved_version = version
        self.keep_label.setText(f"Saved as “{version.card.name}” v{version.card.version} ({version.path.name}).")
        self._update_buttons()
        if self._activate_after_save:
            self._activate_after_save = False
            self._activate(version)

    @Slot(str)
    def _on_save_failed(self, message: str) -> None:
        self._activate_after_save = False
        self.keep_label.setText(f"Not saved: {message}")
        self._update_buttons()
        QMessageBox.warning(self, "Model not saved", message)
