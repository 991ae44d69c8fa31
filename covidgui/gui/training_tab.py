"""The Training tab: choose labelled folders, check them, train, watch the curves, compare, keep.

Every number shown here comes from the training worker's signals; this widget decodes nothing and
never imports TensorFlow.
"""

from __future__ import annotations

import time
from dataclasses import fields

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QRadioButton,
                               QScrollArea, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from covidgui.core.training.lung_guidance import LUNG_GUIDANCE_WEIGHT
from covidgui.core.inference.lungs import bundled_segmenter_path
from covidgui.core.training.train import TrainConfig
from covidgui.gui.charts import EvaluationCharts, LearningCurves
from covidgui.gui.training_worker import TrainingOutcome, TrainingThread

_DEFAULTS = TrainConfig()


def _percent_ci(value, ci) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%} ({ci[0]:.1%}–{ci[1]:.1%})"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class FolderPicker(QWidget):
    """A path field with a Browse… button."""

    changed = Signal(str)

    def __init__(self, caption: str, parent=None):
        super().__init__(parent)
        self.caption = caption
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("a folder with one subfolder per class")
        self.edit.editingFinished.connect(lambda: self.changed.emit(self.path()))
        self.button = QPushButton("Browse…")
        self.button.clicked.connect(self.browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)

    def path(self) -> str:
        return self.edit.text().strip()

    def set_path(self, path: str) -> None:
        self.edit.setText(str(path))
        self.changed.emit(self.path())

    def browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, self.caption, self.path())
        if path:
            self.set_path(path)


class SaveModelDialog(QDialog):
    """Asks for the new model's name and notes."""

    def __init__(self, parent=None, default_name: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Save as new model")
        self.name_edit = QLineEdit(default_name)
        self.notes_edit = QPlainTextEdit()
        self.notes_edit.setPlaceholderText("What data it was trained on, why, by whom…")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._accept_if_named)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name_edit)
        form.addRow("Notes", self.notes_edit)
        form.addRow(self.buttons)

    def _accept_if_named(self) -> None:
        if self.name_edit.text().strip():
            self.accept()
        else:
            self.name_edit.setPlaceholderText("a name is needed")
            self.name_edit.setFocus()


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
        self._training = False
        self._activate_after_save = False
        self._started = 0.0
        self.save_dialog: SaveModelDialog | None = None
        # TrainConfig fields without a control here (e.g. input_size), overriding their defaults.
        self.fixed_settings: dict = {}

        self.jobs = TrainingThread(self)
        worker = self.jobs.worker
        worker.summary_progress.connect(self._on_summary_progress)
        worker.summary_ready.connect(self._on_summary_ready)
        worker.batch_done.connect(self._on_batch)
        worker.epoch_done.connect(self._on_epoch)
        worker.phase.connect(self._on_phase)
        worker.finished.connect(self._on_finished)
        worker.cancelled.connect(self._on_cancelled)
        worker.failed.connect(self._on_failed)
        worker.saved.connect(self._on_saved)
        worker.save_failed.connect(self._on_save_failed)

        # Re-check the folders shortly after the last change, not on every keystroke.
        self._summary_timer = QTimer(self, singleShot=True, interval=300, timeout=self.check_data)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        left = QScrollArea()
        left.setWidgetResizable(True)
        left.setWidget(self._build_setup())
        left.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left.setMinimumWidth(440)
        splitter.addWidget(left)
        splitter.addWidget(self._build_results())
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self._update_buttons()

    # -- layout ---------------------------------------------------------------------------------
    def _build_setup(self) -> QWidget:
        box = QWidget()
        column = QVBoxLayout(box)

        data = QGroupBox("1. Data")
        form = QFormLayout(data)
        self.train_picker = FolderPicker("Training folder (one subfolder per class)")
        self.train_picker.setToolTip("Each subfolder is a class, named as it should be shown (e.g. Covid, Normal).")
        self.train_picker.changed.connect(self._inputs_changed)
        form.addRow("Training folder", self.train_picker)
        self.val_share_radio = QRadioButton("Validation: hold back a share of the training images")
        self.val_folder_radio = QRadioButton("Validation: a separate folder")
        self.val_share_radio.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.val_share_radio)
        group.addButton(self.val_folder_radio)
        self.val_share_spin = QSpinBox(suffix=" %", minimum=5, maximum=50, value=20)
        self.val_share_spin.setToolTip("This share of each class is set aside (stratified, using the random "
                                       "seed below) to measure the model; it is never trained on.")
        self.val_picker = FolderPicker("Validation folder (same class subfolders)")
        self.val_picker.setToolTip("Images the model never trains on, laid out like the training folder.")
        form.addRow(self.val_share_radio)
        form.addRow("Share", self.val_share_spin)
        form.addRow(self.val_folder_radio)
        form.addRow("Folder", self.val_picker)
        for signal in (self.val_share_radio.toggled, self.val_share_spin.valueChanged):
            signal.connect(self._inputs_changed)
        self.val_picker.changed.connect(self._inputs_changed)
        self.val_share_radio.toggled.connect(self._update_buttons)
        column.addWidget(data)

        summary = QGroupBox("2. Check")
        summary_layout = QVBoxLayout(summary)
        self.summary_status = QLabel("Choose a training folder to see what it holds.")
        self.summary_status.setWordWrap(True)
        self.counts_table = QTableWidget(0, 3)
        self.counts_table.setHorizontalHeaderLabels(["Class", "Training", "Validation"])
        self.counts_table.verticalHeader().setVisible(False)
        self.counts_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.counts_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.counts_table.setMaximumHeight(130)
        self.summary_messages = QLabel()
        self.summary_messages.setWordWrap(True)
        self.summary_messages.setTextFormat(Qt.TextFormat.RichText)
        self.unreadable_list = QPlainTextEdit(readOnly=True)
        self.unreadable_list.setMaximumHeight(90)
        self.unreadable_list.setVisible(False)
        for w in (self.summary_status, self.counts_table, self.summary_messages, self.unreadable_list):
            summary_layout.addWidget(w)
        column.addWidget(summary)

        settings = QGroupBox("3. Settings")
        form = QFormLayout(settings)
        self.epochs_spin = QSpinBox(minimum=1, maximum=500, value=_DEFAULTS.epochs)
        self.epochs_spin.setToolTip("How many times training goes through every training image. "
                                    "Early stopping may end it sooner.")
        self.batch_spin = QSpinBox(minimum=1, maximum=256, value=_DEFAULTS.batch_size)
        self.batch_spin.setToolTip("Images per training step. Larger batches use more memory.")
        self.lr_spin = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4,
                                      value=_DEFAULTS.learning_rate)
        self.lr_spin.setToolTip("Size of each weight update at the start (it then decreases). "
                                "Too high makes the loss jump around; too low learns slowly.")
        self.augment_check = QCheckBox("on")
        self.augment_check.setChecked(_DEFAULTS.augment)
        self.augment_check.setToolTip("Random small rotations, zooms and shifts: the model sees "
                                      "slightly changed copies of each image, so it learns the disease rather "
                                      "than the exact pictures. Recommended.")
        self.lung_check = QCheckBox("keep the model's evidence on the lung fields")
        lung_model = bundled_segmenter_path().is_file()
        self.lung_check.setChecked(lung_model and _DEFAULTS.lung_guidance > 0)
        self.lung_check.setEnabled(lung_model)
        self.lung_check.setToolTip(
            "Penalises evidence the model finds outside the lungs (outlined by the bundled lung model), so "
            "it cannot learn shortcuts such as the patient's age, markers or positioning. Recommended."
            if lung_model else "Needs the lung model (models/lung_segmenter.keras), which is not installed.")
        self.patience_spin = QSpinBox(minimum=0, maximum=500, value=_DEFAULTS.patience)
        self.patience_spin.setSpecialValueText("off")
        self.patience_spin.setToolTip("Stop when the validation loss has not improved for this many epochs, "
                                      "and keep the best epoch's model (0 = off: train every epoch).")
        self.seed_spin = QSpinBox(minimum=0, maximum=2**31 - 1, value=_DEFAULTS.seed)
        self.seed_spin.setToolTip("Fixes the random choices (validation split, augmentation, initial weights), "
                                  "so the same settings give the same model.")
        self.seed_spin.valueChanged.connect(self._inputs_changed)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Augmentation", self.augment_check)
        form.addRow("Lung guidance", self.lung_check)
        form.addRow("Early-stopping patience", self.patience_spin)
        form.addRow("Random seed", self.seed_spin)
        column.addWidget(settings)

        run = QGroupBox("4. Train")
        run_layout = QVBoxLayout(run)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("startTraining")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setFormat("%p %")
        self.progress_label = QLabel("Not started.")
        self.progress_label.setWordWrap(True)
        run_layout.addLayout(buttons)
        run_layout.addWidget(self.progress)
        run_layout.addWidget(self.progress_label)
        column.addWidget(run)
        column.addStretch(1)
        return box

    def _build_results(self) -> QWidget:
        box = QWidget()
        column = QVBoxLayout(box)
        column.addWidget(QLabel("<b>Learning curves</b> (one point per epoch)"))
        self.curves = LearningCurves()
        self.curves.setMinimumHeight(220)
        column.addWidget(self.curves, 2)
        column.addWidget(QLabel("<b>Validation results</b>: the new model beside the active model, "
                                "on the same validation images"))
        self.evaluation = EvaluationCharts()
        self.evaluation.setMinimumHeight(240)
        column.addWidget(self.evaluation, 2)
        self.metrics_table = QTableWidget(0, 3)
        self.metrics_table.setHorizontalHeaderLabels(["", "New model", "Active model"])
        self.metrics_table.verticalHeader().setVisible(False)
        self.metrics_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.metrics_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.metrics_table.setToolTip("Percentages with their 95 % confidence intervals (Wilson).")
        self.metrics_table.setMinimumHeight(170)
        column.addWidget(self.metrics_table, 1)
        keep = QHBoxLayout()
        self.keep_label = QLabel("")
        self.keep_label.setWordWrap(True)
        self.save_button = QPushButton("Save as new model…")
        self.save_button.clicked.connect(self.ask_save)
        self.use_button = QPushButton("Use this model")
        self.use_button.setToolTip("Make the new model the one that classifies images (saved first if needed).")
        self.use_button.clicked.connect(self.use_new_model)
        keep.addWidget(self.keep_label, 1)
        keep.addWidget(self.save_button)
        keep.addWidget(self.use_button)
        column.addLayout(keep)
        return box

    # -- state ----------------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self._training

    def _inputs(self) -> tuple:
        use_folder = self.val_folder_radio.isChecked()
        return (self.train_picker.path(), self.val_picker.path() if use_folder else "",
                self.val_share_spin.value() / 100, self.seed_spin.value())

    def _update_buttons(self) -> None:
        fresh = self.summary is not None and self._summary_inputs == self._inputs()
        self.start_button.setEnabled(not self._training and fresh and self.summary.ok)
        self.cancel_button.setEnabled(self._training)
        has_result = self.outcome is not None and not self._training
        self.save_button.setEnabled(has_result and self.saved_version is None)
        self.use_button.setEnabled(has_result)
        folder = self.val_folder_radio.isChecked()
        self.val_picker.setEnabled(folder and not self._training)
        self.val_share_spin.setEnabled(not folder and not self._training)
        for w in (self.train_picker, self.val_share_radio, self.val_folder_radio, self.epochs_spin,
                  self.batch_spin, self.lr_spin, self.augment_check, self.patience_spin, self.seed_spin):
            w.setEnabled(not self._training)
        self.lung_check.setEnabled(not self._training and bundled_segmenter_path().is_file())

    def config(self) -> TrainConfig:
        """The settings as a TrainConfig (fields this tab has no control for keep their defaults)."""
        values = {f.name: getattr(_DEFAULTS, f.name) for f in fields(TrainConfig)}
        values.update(epochs=self.epochs_spin.value(), batch_size=self.batch_spin.value(),
                      learning_rate=self.lr_spin.value(), augment=self.augment_check.isChecked(),
                      patience=self.patience_spin.value(), seed=self.seed_spin.value(),
                      lung_guidance=LUNG_GUIDANCE_WEIGHT if self.lung_check.isChecked() else 0.0)
        values.update(self.fixed_settings)
        return TrainConfig(**values)

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
        self.summary_status.setText("Checking the images…")
        self.summary_messages.setText("")
        self.jobs.request_summary.emit(self._summary_id, *self._pending_inputs)

    @Slot(int, int)
    def _on_summary_progress(self, done: int, total: int) -> None:
        self.summary_status.setText(f"Checking the images… {done}/{total}")

    @Slot(int, object)
    def _on_summary_ready(self, request_id: int, summary) -> None:
        if request_id != self._summary_id:
            return  # the folders changed since this check started
        self.summary = summary
        self._summary_inputs = self._pending_inputs
        self.counts_table.setRowCount(len(summary.classes))
        for row, name in enumerate(summary.classes):
            for col, text in enumerate((name, str(summary.train_counts.get(name, 0)),
                                        str(summary.val_counts.get(name, 0)) if summary.val_counts else "–")):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.counts_table.setItem(row, col, item)
        total = sum(summary.train_counts.values())
        self.summary_status.setText(f"{total} training images in {len(summary.classes)} classes; "
                                    f"validation: {summary.validation_source}." if summary.classes else "")
        html = "".join(f"<p style='color:#b00020'><b>Cannot train:</b> {_esc(p)}</p>" for p in summary.problems)
        html += "".join(f"<p style='color:#8a5a00'><b>Warning:</b> {_esc(w)}</p>" for w in summary.warnings)
        if summary.ok and not summary.warnings:
            html = "<p style='color:#1b6e20'>Ready to train.</p>"
        self.summary_messages.setText(html)
        self.unreadable_list.setPlainText("\n".join(f"{p}: {r}" for p, r in summary.unreadable.items()))
        self.unreadable_list.setVisible(bool(summary.unreadable))
        self._update_buttons()

    # -- training -------------------------------------------------------------------------------
    @Slot()
    def start(self) -> None:
        if self.summary is None or not self.summary.ok or self._training:
            return
        self._training = True
        self.outcome = None
        self.saved_version = None
        self.curves.reset()
        self.evaluation.clear_results()
        self.metrics_table.setRowCount(0)
        self.keep_label.setText("")
        self.progress.setRange(0, 0)  # busy until the first batch says how many there are
        self.progress_label.setText("Starting…")
        self._started = time.perf_counter()
        train_dir, val_dir, share, seed = self._summary_inputs
        info = {"data": train_dir, "validation_data": val_dir or f"{share:.0%} of each training class, seed {seed}",
                "train_counts": self.summary.train_counts, "val_counts": self.summary.val_counts,
                "left_out_unreadable": self.summary.unreadable, "trained_with": "CovidGUI Training tab"}
        self._update_buttons()
        self.jobs.request_train.emit(self.summary, self.config(), info)

    @Slot()
    def cancel(self) -> None:
        if not self._training:
            return
        self.jobs.worker.request_stop()
        self.cancel_button.setEnabled(False)
        self.progress_label.setText("Cancelling…")

    def stop_and_wait(self, timeout_ms: int = 30_000) -> bool:
        """Stop training and the worker thread (the window is closing)."""
        self._summary_timer.stop()
        return self.jobs.stop(timeout_ms)

    @Slot(str)
    def _on_phase(self, text: str) -> None:
        self.progress_label.setText(text)

    @Slot(int, int, int, int)
    def _on_batch(self, epoch: int, epochs: int, batch: int, batches: int) -> None:
        if not self._training or self.progress_label.text() == "Cancelling…":
            return
        done = epoch * batches + batch
        total = epochs * batches
        if self.progress.maximum() != total:
            self.progress.setRange(0, total)
        self.progress.setValue(done)
        elapsed = time.perf_counter() - self._started
        eta = elapsed / done * (total - done)
        self.progress_label.setText(f"Epoch {epoch + 1}/{epochs}, batch {batch}/{batches} — "
                                    f"{_duration(elapsed)} so far, about {_duration(eta)} left"
                                    + (" (less if early stopping ends it)" if self.patience_spin.value() else ""))

    @Slot(int, int, object)
    def _on_epoch(self, epoch: int, epochs: int, logs: dict) -> None:
        self.curves.add_epoch(logs)

    @Slot()
    def _on_cancelled(self) -> None:
        self._training = False
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress_label.setText("Training cancelled. Nothing was saved and the active model is unchanged.")
        self._update_buttons()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._training = False
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress_label.setText(f"Training failed: {message} Nothing was saved.")
        self.summary_status.setText(self.summary_status.text() if self.summary else message)
        self._update_buttons()

    @Slot(object)
    def _on_finished(self, outcome: TrainingOutcome) -> None:
        self._training = False
        self.outcome = outcome
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        epochs_run = len(outcome.history.get("loss", []))
        report = outcome.new_scores.report
        self.progress_label.setText(f"Finished: {epochs_run} epochs in {_duration(outcome.seconds)}. "
                                    f"Validation: {report['correct']}/{report['n']} correct "
                                    f"({report['accuracy']:.1%}).")
        self.evaluation.show_results(outcome.new_scores, outcome.new_curves, outcome.active_scores,
                                     outcome.active_curves, outcome.active_note)
        self._fill_metrics(outcome)
        self.keep_label.setText("Not saved yet. Save it to keep it; the active model stays as it is until you "
                                "choose “Use this model”.")
        self._update_buttons()

    def _fill_metrics(self, outcome: TrainingOutcome) -> None:
        new = outcome.new_scores.report
        active = outcome.active_scores.report if outcome.active_scores is not None else None
        self.metrics_table.setHorizontalHeaderLabels(
            ["", "New model", f"Active: {outcome.active_scores.model}" if active else "Active model"])

        def acc(r):
            return None if r is None else _percent_ci(r["accuracy"], _wilson(r["correct"], r["n"]))

        rows = [("Accuracy (95 % CI)", acc(new), acc(active) or "–"),
                ("AUC", _fmt_auc(new), _fmt_auc(active) if active else "–")]
        for name in new["classes"]:
            for key, label in (("sensitivity", "sensitivity"), ("specificity", "specificity"),
                               ("precision", "precision")):
                a_stats = _class_stats(active, name)
                n_stats = new["per_class"][name]
                rows.append((f"{name}: {label}", _percent_ci(n_stats[key], n_stats[key + "_ci95"]),
                             _percent_ci(a_stats[key], a_stats[key + "_ci95"]) if a_stats else "–"))
        self.metrics_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.metrics_table.setItem(r, c, QTableWidgetItem(text))

    # -- keeping the model ----------------------------------------------------------------------
    @Slot()
    def ask_save(self) -> None:
        """Open the name/notes dialog (non-blocking); saving happens on the worker."""
        if self.outcome is None:
            return
        train_name = self.train_picker.path().rstrip("/").split("/")[-1] or "model"
        self.save_dialog = SaveModelDialog(self, default_name=f"{train_name} model")
        self.save_dialog.accepted.connect(self._save_accepted)
        self.save_dialog.rejected.connect(lambda: setattr(self, "_activate_after_save", False))
        self.save_dialog.open()

    @Slot()
    def _save_accepted(self) -> None:
        dialog = self.save_dialog
        self.save_button.setEnabled(False)
        self.use_button.setEnabled(False)
        self.keep_label.setText("Saving…")
        self.jobs.request_save.emit(dialog.name_edit.text(), dialog.notes_edit.toPlainText())

    @Slot()
    def use_new_model(self) -> None:
        if self.saved_version is None:
            self._activate_after_save = True
            self.ask_save()
            return
        self._activate(self.saved_version)

    def _activate(self, version) -> None:
        from covidgui.core.models.registry import set_active

        set_active(version.id)
        self.keep_label.setText(f"“{version.card.name}” v{version.card.version} is now the active model.")
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


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def _wilson(successes: int, n: int):
    from covidgui.core.scoring.metrics import wilson_interval

    return wilson_interval(successes, n)


def _fmt_auc(report) -> str:
    return "n/a" if report is None or report.get("auc") is None else f"{report['auc']:.3f}"


def _class_stats(report, name: str):
    if report is None:
        return None
    for cls, stats in report["per_class"].items():
        if cls.lower() == name.lower():
            return stats
    return None
