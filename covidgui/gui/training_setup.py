"""The Training tab's setup form: the labelled folders, what the data check found in them, the settings."""

from __future__ import annotations

import html
from dataclasses import fields

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
                               QRadioButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from covidgui.core.training.adapt import GENTLE_EPOCHS, GENTLE_LEARNING_RATE
from covidgui.core.data.datasummary import FEW_IMAGES_WARNING
from covidgui.core.training.lung_guidance import LUNG_GUIDANCE_WEIGHT
from covidgui.core.training.train import TrainConfig

_DEFAULTS = TrainConfig()
# What lung guidance does and does not do, in the README's words ("Lung guidance", "Limits you must
# know"): it keeps the heatmap on the lungs; it did not stop the bundled model recognising where an
# image comes from.
LUNG_GUIDANCE_HELP = (
    "Adds a penalty on the share of the model's evidence that lies outside the lung fields (outlined by the "
    "bundled lung model), so its heatmaps stay on the lungs. It does not stop the model learning shortcuts: "
    "with and without it the bundled model recognised where an image comes from about as much, and was "
    "as often wrong on a hospital it had never seen. On by default, as for the bundled model.")
DEFAULT_FOLDS = 5
ACTIVE_CHOICE = "The active model\n(adapt it to these films)"
# The settings' help, for a new network and for adapting the active model.
EPOCHS_HELP = ("How many times training goes through every training image. Early stopping may end it sooner.",
               f"How many times adapting goes through every film. Few ({GENTLE_EPOCHS} by default): the model "
               "starts from what it already knows and should only be nudged towards these films.")
LR_HELP = ("Size of each weight update at the start (it then decreases). Too high makes the loss jump around; "
           "too low learns slowly.",
           f"Size of each weight update. Small ({GENTLE_LEARNING_RATE:g} by default, half a new network's) "
           "so that adapting starts from what the model learned instead of undoing it.")
FOLDS_HELP = ("How the gain is measured without a separate validation folder: the films are split into this "
              "many parts; each part is judged by a model adapted on the other parts only, beside the active "
              "model's judgement of the same films. The final model is then adapted on all the films. "
              "More folds take longer (one adaptation per fold, plus the final one); the validation share "
              "above is then not used. 0 = none: that share of the films is set aside to compare the two "
              "models instead.")


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


class SetupForm(QWidget):
    """Groups 1-3 of the tab: Data, Check, Settings. Emits ``inputs_changed`` when what the data
    check depends on (folders, validation choice, seed) changes.

    lung_model: whether the lung model is installed (lung guidance needs it).
    """

    inputs_changed = Signal()

    def __init__(self, lung_model: bool, parent=None):
        super().__init__(parent)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self._data_group())
        column.addWidget(self._check_group())
        column.addWidget(self._settings_group(lung_model))
        # The new-network settings a switch to adapting replaced, restored when switching back.
        self._new_network_settings = None
        self._update_start_from()

    # -- layout ---------------------------------------------------------------------------------
    def _data_group(self) -> QGroupBox:
        data = QGroupBox("1. Data")
        form = QFormLayout(data)
        self.train_picker = FolderPicker("Training folder (one subfolder per class)")
        self.train_picker.setToolTip("Each subfolder is a class, named as it should be shown (e.g. Covid, Normal).")
        form.addRow("Training folder", self.train_picker)
        self.val_share_radio = QRadioButton("Validation: a share of the training images")
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
        for signal in (self.train_picker.changed, self.val_picker.changed, self.val_share_radio.toggled,
                       self.val_share_spin.valueChanged):
            signal.connect(self.inputs_changed)
        return data

    def _check_group(self) -> QGroupBox:
        summary = QGroupBox("2. Check")
        layout = QVBoxLayout(summary)
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
            layout.addWidget(w)
        return summary

    def _settings_group(self, lung_model: bool) -> QGroupBox:
        settings = QGroupBox("3. Settings")
        form = self.settings_form = QFormLayout(settings)
        self.start_new_radio = QRadioButton("A new network")
        self.start_new_radio.setToolTip("Train a network from scratch on these folders (needs many films).")
        self.start_active_radio = QRadioButton(ACTIVE_CHOICE)
        self.start_active_radio.setToolTip(
            "Start from the model that classifies images now: keep its architecture, preprocessing and classes "
            "(the folders must hold the same classes), start from its weights and train gently. The window "
            "then shows it beside the adapted model on the same films.")
        self.start_new_radio.setChecked(True)
        start_group = QButtonGroup(self)
        start_group.addButton(self.start_new_radio)
        start_group.addButton(self.start_active_radio)
        start_column = QVBoxLayout()
        start_column.setSpacing(2)
        start_column.addWidget(self.start_new_radio)
        start_column.addWidget(self.start_active_radio)
        # The active model's name on a line of its own that wraps: a long name must not widen the form.
        self.active_model_label = QLabel("")
        self.active_model_label.setWordWrap(True)
        self.active_model_label.setStyleSheet("color: #555; margin-left: 22px")
        self.active_model_label.setVisible(False)
        start_column.addWidget(self.active_model_label)
        form.addRow("Start from", start_column)
        self.folds_spin = QSpinBox(minimum=0, maximum=20, value=DEFAULT_FOLDS)
        self.folds_spin.setSpecialValueText("none")
        self.folds_spin.setToolTip(FOLDS_HELP)
        self.folds_spin.valueChanged.connect(self._skip_one_fold)
        self._folds_before = DEFAULT_FOLDS
        form.addRow("Cross-validation folds", self.folds_spin)
        self.start_active_radio.toggled.connect(self._update_start_from)
        self.val_folder_radio.toggled.connect(self._update_start_from)
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
        self.lung_check = QCheckBox("keep the evidence on the lungs")
        self.lung_check.setChecked(lung_model and _DEFAULTS.lung_guidance > 0)
        self.lung_check.setEnabled(lung_model)
        self.lung_check.setToolTip(LUNG_GUIDANCE_HELP if lung_model else
                                   "Needs the lung model (models/lung_segmenter.keras), which is not installed.")
        self.patience_spin = QSpinBox(minimum=0, maximum=500, value=_DEFAULTS.patience)
        self.patience_spin.setSpecialValueText("off")
        self.patience_spin.setToolTip("Stop when the validation loss has not improved for this many epochs, "
                                      "and keep the best epoch's model (0 = off: train every epoch).")
        self.seed_spin = QSpinBox(minimum=0, maximum=2**31 - 1, value=_DEFAULTS.seed)
        self.seed_spin.setToolTip("Fixes the random choices (validation split, augmentation, initial weights), "
                                  "so the same settings give the same model.")
        self.seed_spin.valueChanged.connect(self.inputs_changed)
        for label, widget in (("Epochs", self.epochs_spin), ("Batch size", self.batch_spin),
                              ("Learning rate", self.lr_spin), ("Augmentation", self.augment_check),
                              ("Lung guidance", self.lung_check), ("Early-stopping patience", self.patience_spin),
                              ("Random seed", self.seed_spin)):
            form.addRow(label, widget)
        return settings

    # -- start from -----------------------------------------------------------------------------
    def adapting(self) -> bool:
        """Whether the run adapts the active model (else it trains a new network)."""
        return self.start_active_radio.isChecked()

    def folds(self) -> int:
        """Cross-validation folds of an adaptation: 0 with a separate validation folder or "none"."""
        return 0 if self.val_folder_radio.isChecked() else self.folds_spin.value()

    def set_active_model_name(self, name: str) -> None:
        """Name the model an adaptation starts from under its choice, e.g. "covid-cnn v3.0.0"."""
        self.active_model_label.setText(f"now: {name}")
        self.active_model_label.setVisible(bool(name))

    def _skip_one_fold(self, value: int) -> None:
        if value == 1:  # one fold is no cross-validation: step over it
            self.folds_spin.setValue(2 if self._folds_before == 0 else 0)
            return
        self._folds_before = value
        self._update_share()
        self._show_summary_again()

    def _show_summary_again(self) -> None:
        """The check's table and sentence as the chosen start and folds will use the films."""
        if getattr(self, "_summary", None) is not None:
            self.show_summary(self._summary)

    def _share_used(self) -> bool:
        """Whether the validation share matters: not when an adaptation cross-validates on every film."""
        return not (self.adapting() and self.folds())

    def _update_share(self) -> None:
        self.val_share_spin.setEnabled(self.val_share_radio.isChecked() and self._share_used()
                                       and self.train_picker.isEnabled())

    def _update_start_from(self, *_args) -> None:
        """Adapting: the gentle epochs and learning rate, no early stopping, and the folds when there
        is no validation folder; back to a new network: the settings it had."""
        adapting = self.adapting()
        self.settings_form.setRowVisible(self.folds_spin, adapting and not self.val_folder_radio.isChecked())
        self._update_share()
        self._show_summary_again()
        self.epochs_spin.setToolTip(EPOCHS_HELP[adapting])
        self.lr_spin.setToolTip(LR_HELP[adapting])
        if adapting and self._new_network_settings is None:
            self._new_network_settings = (self.epochs_spin.value(), self.lr_spin.value(), self.patience_spin.value())
            self.epochs_spin.setValue(GENTLE_EPOCHS)
            self.lr_spin.setValue(GENTLE_LEARNING_RATE)
            self.patience_spin.setValue(0)
        elif not adapting and self._new_network_settings is not None:
            epochs, lr, patience = self._new_network_settings
            self._new_network_settings = None
            self.epochs_spin.setValue(epochs)
            self.lr_spin.setValue(lr)
            self.patience_spin.setValue(patience)

    # -- state ----------------------------------------------------------------------------------
    def inputs(self) -> tuple:
        """What the data check depends on: (training folder, validation folder or "", share, seed)."""
        use_folder = self.val_folder_radio.isChecked()
        return (self.train_picker.path(), self.val_picker.path() if use_folder else "",
                self.val_share_spin.value() / 100, self.seed_spin.value())

    def config(self, fixed: dict) -> TrainConfig:
        """The settings as a TrainConfig; ``fixed`` overrides fields this form has no control for."""
        values = {f.name: getattr(_DEFAULTS, f.name) for f in fields(TrainConfig)}
        values.update(epochs=self.epochs_spin.value(), batch_size=self.batch_spin.value(),
                      learning_rate=self.lr_spin.value(), augment=self.augment_check.isChecked(),
                      patience=self.patience_spin.value(), seed=self.seed_spin.value(),
                      lung_guidance=LUNG_GUIDANCE_WEIGHT if self.lung_check.isChecked() else 0.0)
        values.update(fixed)
        return TrainConfig(**values)

    def set_editable(self, editable: bool, lung_model: bool) -> None:
        """Lock every control while a run trains; the validation controls follow their choice."""
        folder = self.val_folder_radio.isChecked()
        self.val_picker.setEnabled(folder and editable)
        self.val_share_spin.setEnabled(not folder and editable and self._share_used())
        for w in (self.train_picker, self.val_share_radio, self.val_folder_radio, self.epochs_spin,
                  self.batch_spin, self.lr_spin, self.augment_check, self.patience_spin, self.seed_spin,
                  self.start_new_radio, self.start_active_radio, self.folds_spin):
            w.setEnabled(editable)
        self.lung_check.setEnabled(editable and lung_model)

    # -- the data check -------------------------------------------------------------------------
    def show_checking(self, done: int | None = None, total: int | None = None) -> None:
        if done is None:
            self.summary_status.setText("Checking the images…")
            self.summary_messages.setText("")
        else:
            self.summary_status.setText(f"Checking the images… {done}/{total}")

    def show_summary(self, summary) -> None:
        """Show a core.data.datasummary.DatasetSummary: counts per class, problems, warnings; as
        an adaptation that cross-validates will use them (every film, in folds) when that is chosen."""
        self._summary = summary
        folds = self.folds() if self.adapting() else 0
        self.counts_table.setRowCount(len(summary.classes))
        for row, name in enumerate(summary.classes):
            train, val = summary.train_counts.get(name, 0), summary.val_counts.get(name, 0)
            cells = ((name, str(train + val), "in every fold") if folds else
                     (name, str(train), str(val) if summary.val_counts else "–"))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.counts_table.setItem(row, col, item)
        total = sum(summary.train_counts.values())
        if not summary.classes:
            status = ""
        elif folds:
            status = (f"{total + sum(summary.val_counts.values())} films in {len(summary.classes)} classes; "
                      f"{folds}-fold cross-validation: each film judged once by a model adapted without it, "
                      "then the final model adapted on all of them.")
        else:
            status = f"{total} training images in {len(summary.classes)} classes; validation: {summary.validation_source}."
        self.summary_status.setText(status)
        # "Too few images to learn from" speaks of a new network: adapting exists for a few dozen films.
        warnings = [w for w in summary.warnings if not (self.adapting() and w.startswith(FEW_IMAGES_WARNING))]
        text = "".join(f"<p style='color:#b00020'><b>Cannot train:</b> {html.escape(p)}</p>" for p in summary.problems)
        text += "".join(f"<p style='color:#8a5a00'><b>Warning:</b> {html.escape(w)}</p>" for w in warnings)
        if summary.ok and not warnings:
            text = "<p style='color:#1b6e20'>Ready to train.</p>"
        self.summary_messages.setText(text)
        self.unreadable_list.setPlainText("\n".join(f"{p}: {r}" for p, r in summary.unreadable.items()))
        self.unreadable_list.setVisible(bool(summary.unreadable))
