"""The Models list: the bundled model and the user's versions, with their locked-test figures (or
that a model has none: validation figures are not shown, as those images tuned the model).

Switching writes the choice (core.registry) and asks the window to reload; deleting is refused for
the bundled model (its row has no Delete). Reading model cards is plain JSON, cheap on this thread.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QMessageBox,
                               QPushButton, QVBoxLayout)

from covidgui.core.models import registry


class ModelsDialog(QDialog):
    model_activated = Signal(str)  # the newly active model's path

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(640, 360)
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._update_buttons)
        self.list.itemDoubleClicked.connect(lambda _item: self.use_selected())
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.use_button = QPushButton("Use this model")
        self.use_button.clicked.connect(self.use_selected)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self.delete_selected)
        buttons.addButton(self.use_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.delete_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("The active model classifies every image. The bundled model cannot be "
                                "changed or deleted."))
        layout.addWidget(self.list, 1)
        layout.addWidget(self.details)
        layout.addWidget(buttons)
        self.refresh()

    def refresh(self) -> None:
        active = registry.active_model_path()
        self.list.clear()
        for version in registry.list_versions():
            is_active = version.path.resolve() == active.resolve()
            item = QListWidgetItem(("● " if is_active else "   ") + version.label + ("  [active]" if is_active else ""))
            item.setData(Qt.ItemDataRole.UserRole, version)
            self.list.addItem(item)
            if is_active:
                self.list.setCurrentItem(item)
        self._update_buttons()

    def selected(self):
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def select(self, version_id: str) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole).id == version_id:
                self.list.setCurrentRow(row)

    @Slot()
    def _update_buttons(self, *_args) -> None:
        version = self.selected()
        self.use_button.setEnabled(version is not None)
        self.delete_button.setEnabled(version is not None and not version.bundled)
        if version is None:
            self.details.setText("")
            return
        card = version.card
        text = f"{card.name} v{card.version}\nClasses: {', '.join(map(card.display_name, card.classes))}\n"
        line = card.locked_test_line()
        text += line[0].upper() + line[1:] + "."
        if card.test.get("per_source") or card.leave_one_source_out:
            text += "\n" + "\n".join(card.source_lines())
        if version.card.notes:
            text += "\nNotes: " + version.card.notes
        text += f"\nFile: {version.path}"
        self.details.setText(text)

    @Slot()
    def use_selected(self) -> None:
        version = self.selected()
        if version is None:
            return
        registry.set_active(version.id)
        self.refresh()
        self.model_activated.emit(str(version.path))

    def _confirm_delete(self, version) -> bool:
        answer = QMessageBox.question(self, "Delete model", f"Delete “{version.card.name}” v{version.card.version}? "
                                      "This cannot be undone.",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    @Slot()
    def delete_selected(self) -> None:
        version = self.selected()
        if version is None or version.bundled or not self._confirm_delete(version):
            return
        was_active = registry.active_id() == version.id
        registry.delete_version(version.id)
        self.refresh()
        if was_active:  # the bundled model took over
            self.model_activated.emit(str(registry.active_model_path()))
