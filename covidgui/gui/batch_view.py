"""The Batch tab: a table of every file of a folder with its result, progress, cancel and CSV export.

The table is a model/view pair (QAbstractTableModel behind a QSortFilterProxyModel), so 10,000
rows sort and scroll smoothly; rows arrive in chunks from :mod:`covidgui.gui.batch_worker`.
Thumbnails were made by the decoding threads (64-px uint8 arrays); a QPixmap is built only for the
rows that are painted, and a few hundred are cached.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QSize, QSortFilterProxyModel, Qt, QTimer, Signal,
                            Slot)
from PySide6.QtGui import QBrush, QColor, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QMessageBox, QProgressBar, QPushButton, QTableView, QVBoxLayout, QWidget)

from covidgui.core.analysis.batch import write_csv
from covidgui.core.errors import CovidGUIError
from covidgui.core.inference.classifier import INDETERMINATE
from covidgui.gui.batch_worker import BatchRunner, BatchSummary
from covidgui.core.output.presentation import (ATTENTION_HELP, CAUTION_COLOUR, FAILED_COLOUR, FAILED_LABEL,
                                               label_colour, present)

THUMB_COLUMN, FILE_COLUMN, LABEL_COLUMN, CONFIDENCE_COLUMN, LUNGS_COLUMN, FLAGS_COLUMN, ERROR_COLUMN = range(7)
HEADERS = ["Image", "File", "Label", "Confidence", "Attention on lungs", "Flags", "Error"]
HEADER_TIPS = {LUNGS_COLUMN: f"Attention on lungs: {ATTENTION_HELP} (empty without the lung model)"}
THUMB_DISPLAY = 48
# The role that sorting uses: numbers sort as numbers, not as "9.5 %" > "10.0 %".
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2


class BatchTableModel(QAbstractTableModel):
    """Rows of core.batch.BatchItem, in the order they were classified."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.items: list = []
        # Each row's words (core.output.presentation), made once when it arrives: sorting asks for
        # a cell's text tens of thousands of times.
        self._shown: list = []
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(section)
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item, column = self.items[index.row()], index.column()
        p = item.prediction
        shown = self._shown[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            if column == FILE_COLUMN:
                return item.path.name
            if column == LABEL_COLUMN:
                return shown.label if shown else FAILED_LABEL
            if column == CONFIDENCE_COLUMN:  # none for an image the gate withheld: there is no result
                return (shown.confidence or "") if shown else ""
            if column == LUNGS_COLUMN:
                return (shown.attention or "") if shown else ""
            if column == FLAGS_COLUMN:
                return shown.flags_text if shown else ""
            if column == ERROR_COLUMN:
                return item.error or ""
            return None
        if role == SORT_ROLE:
            if column == CONFIDENCE_COLUMN:
                # Blank cells after the numbers: indeterminate (no label to be confident in), then withheld.
                return (-1.0 if p is None else -0.5 if shown.withheld else -0.25 if shown.confidence is None
                        else p.confidence)
            if column == LUNGS_COLUMN:
                return -1.0 if p is None or p.lung_attention is None else p.lung_attention
            if column == THUMB_COLUMN:
                return item.index
            return (self.data(index) or "").lower()
        if role == Qt.ItemDataRole.DecorationRole and column == THUMB_COLUMN:
            return self._pixmap(index.row())
        if role == Qt.ItemDataRole.ForegroundRole and column in (LABEL_COLUMN, ERROR_COLUMN):
            colour = label_colour(p.label, default=None) if p else FAILED_COLOUR  # no colour: the palette's text
            return QBrush(QColor(colour)) if colour else None
        if role == Qt.ItemDataRole.ForegroundRole and column == LUNGS_COLUMN and shown and shown.low_attention:
            return QBrush(QColor(CAUTION_COLOUR))
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(item.path) + (f"\n{item.error}" if item.error else "")
        if role == PATH_ROLE:
            return str(item.path)
        return None

    def _pixmap(self, row: int) -> QPixmap | None:
        if row in self._pixmaps:
            self._pixmaps.move_to_end(row)
            return self._pixmaps[row]
        thumb = self.items[row].thumbnail
        if thumb is None:
            return None
        h, w = thumb.shape
        image = QImage(thumb.data, w, h, thumb.strides[0], QImage.Format.Format_Grayscale8).copy()
        pixmap = QPixmap.fromImage(image)
        self._pixmaps[row] = pixmap
        if len(self._pixmaps) > 500:  # only the visible rows matter; keep a few screens' worth
            self._pixmaps.popitem(last=False)
        return pixmap

    def append(self, items: list) -> None:
        if not items:
            return
        first = len(self.items)
        self.beginInsertRows(QModelIndex(), first, first + len(items) - 1)
        self.items.extend(items)
        self._shown.extend(None if item.prediction is None else present(item.prediction) for item in items)
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.items = []
        self._shown = []
        self._pixmaps.clear()
        self.endResetModel()


class BatchFilter(QSortFilterProxyModel):
    """Sorts by SORT_ROLE; the filter text matches the file name, label, flags or error."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)  # any column's text


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class BatchView(QWidget):
    """The Batch tab. Call :meth:`set_classifier` once the model is loaded, then :meth:`start`."""

    open_requested = Signal(str)  # a file the user wants to see in the single-image view
    status_message = Signal(str)  # a line for the window's status bar
    batch_finished = Signal(object)  # BatchSummary

    def __init__(self, parent=None):
        super().__init__(parent)
        self.classifier = None
        self.card = None
        self.runner: BatchRunner | None = None
        self._queued: list[str] | None = None  # waiting for the model, or for a running batch to stop
        self._inputs: list[str] = []  # the last batch started (run again when the model changes)
        self._because = ""
        self._started_at = 0.0
        self._summary = BatchSummary()

        self.title = QLabel("Drop a folder (or several files) on the window, or use File > Open Folder.")
        self.title.setObjectName("batchTitle")
        self.title.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m")
        self.progress.setFixedHeight(22)
        self.rate_label = QLabel("")
        self.rate_label.setObjectName("batchRate")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.export_button.setToolTip("Save the rows shown (in the order shown) as a CSV file")
        self.export_button.clicked.connect(self.export_dialog)
        self.filter_box = QLineEdit()
        self.filter_box.setPlaceholderText(f"Filter by file name or label (e.g. COVID, {INDETERMINATE}, {FAILED_LABEL})…")
        self.filter_box.setClearButtonEnabled(True)
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("batchSummary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.model = BatchTableModel(self)
        self.proxy = BatchFilter(self)
        self.proxy.setSourceModel(self.model)
        self.filter_box.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(THUMB_COLUMN, Qt.SortOrder.AscendingOrder)  # file order until the user sorts
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setIconSize(QSize(THUMB_DISPLAY, THUMB_DISPLAY))
        self.table.setWordWrap(False)
        rows = self.table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # uniform rows: no per-row measuring
        rows.setDefaultSectionSize(THUMB_DISPLAY + 6)
        rows.hide()
        columns = self.table.horizontalHeader()
        for column, width in ((THUMB_COLUMN, THUMB_DISPLAY + 12), (FILE_COLUMN, 260), (LABEL_COLUMN, 120),
                              (CONFIDENCE_COLUMN, 100), (LUNGS_COLUMN, 140), (FLAGS_COLUMN, 200)):
            columns.resizeSection(column, width)
        columns.setStretchLastSection(True)
        self.table.doubleClicked.connect(self._open_row)
        # Review image by image: the row made current (click, arrow keys, or step()) is shown in
        # the Image tab. Programmatic changes while rows arrive or the sort changes do not open
        # anything: only a user's click or key, or step().
        self.table.clicked.connect(self._open_row)
        self.table.activated.connect(self._open_row)

        top = QHBoxLayout()
        top.addWidget(self.progress, 1)
        top.addWidget(self.rate_label)
        top.addWidget(self.cancel_button)
        tools = QHBoxLayout()
        tools.addWidget(self.filter_box, 1)
        tools.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(top)
        layout.addWidget(self.summary_label)
        layout.addLayout(tools)
        layout.addWidget(self.table, 1)

    # -- model ----------------------------------------------------------------------------------
    def set_classifier(self, classifier) -> None:
        """The model to use (the single-image worker's, already loaded); starts a waiting batch.

        When another model replaces one that made the rows shown (or is making them), the last
        batch runs again with the new model: rows, summary and CSV always belong to the model named
        in them, never to the one before it.
        """
        changed = self.classifier is not None and classifier is not None and classifier is not self.classifier
        self.classifier = classifier
        self.card = classifier.card if classifier is not None else None
        if changed and self._inputs and self._queued is None and (self.is_running() or self.model.rowCount()):
            self.start(self._inputs, because=f"Model changed to {self.card.name} v{self.card.version}: "
                                             "classifying the batch again")
            return
        if classifier is not None and self._queued is not None and not self.is_running():
            queued, self._queued = self._queued, None
            self.start(queued)

    @Slot(str)
    def set_model_error(self, message: str) -> None:
        if self._queued is not None:
            self._queued = None
            self.title.setText(f"No model is loaded, so the batch cannot run. {message}")

    # -- running --------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.runner is not None and self.runner.is_running()

    def start(self, inputs: list[str], because: str = "") -> None:
        """Classify these folders and files (folders searched recursively). A running batch is
        cancelled first; the new one starts when it has stopped. ``because``: why it (re)starts,
        shown in the title."""
        inputs = [str(p) for p in inputs]
        self._queued = inputs
        self._because = because
        names = ", ".join(Path(p).name or p for p in inputs[:3]) + ("…" if len(inputs) > 3 else "")
        if self.is_running():
            self.runner.cancel()
            self.title.setText(f"{because}. " if because else f"Stopping the current batch to start {names}…")
            self.model.clear()  # its rows came from the batch being stopped
            return
        if self.classifier is None:
            self.title.setText(f"Waiting for the model to finish loading to classify {names}…")
            return
        self._queued = None
        self._inputs = inputs
        self.model.clear()
        self._summary = BatchSummary()
        model = f" · model {self.card.name} v{self.card.version}" if self.card is not None else ""
        self.title.setText(f"<b>Batch:</b> {names}{model}" + (f"<br>{self._because}." if self._because else ""))
        self.summary_label.setText("Searching for images…")
        self.rate_label.setText("")
        self.progress.setRange(0, 0)  # busy until the search has counted the files
        self.cancel_button.setEnabled(True)
        self.export_button.setEnabled(False)
        self.runner = BatchRunner(self.classifier, inputs, self)
        self.runner.job.scanned.connect(self._on_scanned)
        self.runner.job.rows.connect(self._on_rows)
        self.runner.job.finished.connect(self._on_finished)
        self.status_message.emit("Batch: searching for images…")
        self.runner.start()

    def cancel(self) -> None:
        """Stop the running batch; the rows already done stay."""
        if self.is_running():
            self.runner.cancel()
            self.cancel_button.setEnabled(False)
            self.rate_label.setText("Cancelling…")

    def shutdown(self) -> None:
        """Cancel and wait for the batch thread (the window is closing)."""
        self._queued = None
        if self.runner is not None:
            self.runner.wait()

    # -- results --------------------------------------------------------------------------------
    @Slot(object)
    def _on_scanned(self, summary: BatchSummary) -> None:
        self._summary = summary
        self.progress.setRange(0, max(summary.total, 1))
        self.progress.setValue(0)
        self._started_at = time.monotonic()
        self._show_summary()
        self.status_message.emit(f"Batch: classifying {summary.total:,} image files…")

    @Slot(list)
    def _on_rows(self, items: list) -> None:
        self.model.append(items)
        self._summary.done += len(items)
        self._summary.failed += sum(not i.ok for i in items)
        self.progress.setValue(self._summary.done)
        elapsed = time.monotonic() - self._started_at
        if elapsed > 0 and self._summary.done:
            rate = self._summary.done / elapsed
            left = (self._summary.total - self._summary.done) / rate
            self.rate_label.setText(f"{rate:.1f} images/s · about {_duration(left)} left")
        self._show_summary()

    @Slot(object)
    def _on_finished(self, summary: BatchSummary) -> None:
        self.cancel_button.setEnabled(False)
        self.export_button.setEnabled(self.model.rowCount() > 0)
        elapsed = time.monotonic() - self._started_at if self._started_at else 0.0
        rate = f" in {_duration(elapsed)} ({summary.done / elapsed:.1f} images/s)" if elapsed > 0 and summary.done else ""
        if summary.error:
            head = summary.error
        elif summary.cancelled:
            head = f"Cancelled: {summary.done:,} of {summary.total:,} files done"
        else:
            head = f"Done: {summary.done:,} files{rate}"
        self.rate_label.setText("")
        if summary.total == 0:
            self.progress.setRange(0, 1)
        self._summary = summary
        self._show_summary(head)
        self.status_message.emit("Batch: " + head)
        # Let the runner's thread wind down before dropping it.
        QTimer.singleShot(0, self._after_finished)
        self.batch_finished.emit(summary)

    def _after_finished(self) -> None:
        if self.runner is not None:
            self.runner.join()  # it ends right after emitting finished
        self.runner = None
        if self._queued is not None:
            queued, self._queued = self._queued, None
            self.start(queued, self._because)

    def _show_summary(self, head: str = "") -> None:
        s = self._summary
        parts = [head] if head else []
        if s.total == 0 and head:
            parts.append("no image files were found")
        else:
            parts.append(f"{s.total:,} image files")
        if s.done:
            classified = s.done - s.failed
            parts.append(f"{classified:,} classified")
        if s.failed:
            parts.append(f"<span style='color:{FAILED_COLOUR}'>{s.failed:,} could not be read</span>")
        if s.skipped:
            parts.append(f"{s.skipped:,} non-image files skipped")
        text = " · ".join(parts)
        if s.unreadable:
            shown = "; ".join(f"{folder} ({reason})" for folder, reason in s.unreadable[:3])
            more = f" and {len(s.unreadable) - 3} more" if len(s.unreadable) > 3 else ""
            text += (f"<br><span style='color:{FAILED_COLOUR}'>{len(s.unreadable)} folder(s) could not be "
                     f"opened: {shown}{more}</span>")
        self.summary_label.setText(text)

    # -- user actions ---------------------------------------------------------------------------
    def visible_items(self) -> list:
        """The rows as the table shows them (filtered and sorted)."""
        return [self.model.items[self.proxy.mapToSource(self.proxy.index(r, 0)).row()]
                for r in range(self.proxy.rowCount())]

    def export_csv(self, path: str | Path) -> Path:
        """Write the rows shown to ``path`` (atomically). Raises CovidGUIError when it cannot."""
        return write_csv(path, self.visible_items(), self.card)

    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export results as CSV", "covidgui-results.csv",
                                              "CSV files (*.csv)")
        if not path:
            return
        try:
            written = self.export_csv(path)
        except (CovidGUIError, OSError) as exc:
            QMessageBox.warning(self, "Export CSV", f"The CSV could not be written: {exc}")
            return
        self.status_message.emit(f"Exported {self.proxy.rowCount():,} rows to {written}")

    def _open_row(self, index) -> None:
        path = self.proxy.data(index, PATH_ROLE)
        if path:
            self.open_requested.emit(path)

    def step(self, delta: int) -> str | None:
        """Review the next (+1) or previous (-1) row in the table's current sort and filter: make it
        current, show it, and open it in the Image tab. Returns its path, or None at either end
        (or with no rows). With no current row, +1 starts at the first row and -1 at the last."""
        count = self.proxy.rowCount()
        if count == 0:
            return None
        current = self.table.currentIndex()
        if current.isValid():
            row = current.row() + delta
        else:
            row = 0 if delta > 0 else count - 1
        if not 0 <= row < count:
            return None
        index = self.proxy.index(row, FILE_COLUMN)
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)
        self._open_row(index)
        return self.proxy.data(index, PATH_ROLE)

    def review_position(self) -> tuple[int, int]:
        """(1-based position of the current row, rows shown), (0, n) when no row is current."""
        current = self.table.currentIndex()
        return (current.row() + 1 if current.isValid() else 0), self.proxy.rowCount()
