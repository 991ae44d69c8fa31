"""The Training tab's results: learning curves, the new model beside the active one, and the keep buttons."""

from __future__ import annotations

import html

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QPlainTextEdit, QPushButton, QSizePolicy, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from covidgui.core.scoring.metrics import wilson_interval
from covidgui.gui.charts import EvaluationCharts, LearningCurves


VALIDATION_TITLE = ("<b>Validation results</b>: the new model beside the active model, on the validation images "
                    "(the active model on those it was not trained on)")


class ResultsView(QWidget):
    """The right-hand side of the tab: what a run measured, and Save / Use buttons (the tab
    connects them)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        column = QVBoxLayout(self)
        # Minimum heights that still show every chart whole, and labels that wrap: the column scrolls
        # (the tab puts it in a scroll area) on a screen lower than their sum.
        column.addWidget(_wrapping("<b>Learning curves</b> (one point per epoch)"))
        self.curves = LearningCurves()
        self.curves.setMinimumHeight(150)
        column.addWidget(self.curves, 2)
        self.results_title = _wrapping(VALIDATION_TITLE)
        column.addWidget(self.results_title)
        self.evaluation = EvaluationCharts()
        self.evaluation.setMinimumHeight(220)
        column.addWidget(self.evaluation, 2)
        self.metrics_table = QTableWidget(0, 3)
        self.metrics_table.setHorizontalHeaderLabels(["", "New model", "Active model"])
        self.metrics_table.verticalHeader().setVisible(False)
        self.metrics_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.metrics_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.metrics_table.setToolTip("Percentages with their 95 % confidence intervals (Wilson).")
        self.metrics_table.setMinimumHeight(120)
        self.metrics_table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        column.addWidget(self.metrics_table, 1)
        # An adaptation's verdict, on its own line above the buttons: read before "Use this model".
        self.verdict_label = _wrapping("")
        self.verdict_label.setVisible(False)
        column.addWidget(self.verdict_label)
        keep = QHBoxLayout()
        self.keep_label = QLabel("")
        self.keep_label.setWordWrap(True)
        self.save_button = QPushButton("Save as new model…")
        self.use_button = QPushButton("Use this model")
        self.use_button.setToolTip("Make the new model the one that classifies images (saved first if needed).")
        keep.addWidget(self.keep_label, 1)
        keep.addWidget(self.save_button)
        keep.addWidget(self.use_button)
        column.addLayout(keep)

    def clear(self) -> None:
        """A new run starts: no curves, no results."""
        self.curves.reset()
        self.evaluation.clear_results()
        self.metrics_table.setRowCount(0)
        self.keep_label.setText("")
        self.verdict_label.setText("")
        self.verdict_label.setVisible(False)
        self.results_title.setText(VALIDATION_TITLE)

    def show_outcome(self, outcome) -> None:
        """A core.training.progress.TrainingOutcome: charts, the metrics table, and that it is not saved."""
        adaptation = outcome.adaptation
        names = None
        if adaptation:
            n = adaptation["adapted"]["n"]
            where = f"out of fold, n={n}" if adaptation.get("folds") else f"validation films, n={n}"
            names = {"new": f"Adapted ({where})", "active": "Starting model (same films)",
                     "new_short": "adapted", "active_short": "starting"}
            self.results_title.setText(f"<b>Adapted vs starting model</b> ({html.escape(adaptation['starting_model'])}"
                                       f"), both judged on {html.escape(adaptation['evaluated_on'])}")
            colour = "#1b6e20" if adaptation["better"] else "#b00020"
            self.verdict_label.setText(f"<p style='color:{colour}'><b>{html.escape(adaptation['verdict'])}</b></p>")
            self.verdict_label.setVisible(True)
        self.evaluation.show_results(outcome.new_scores, outcome.new_curves, outcome.active_scores,
                                     outcome.active_curves, outcome.active_note, names=names)
        self._fill_metrics(outcome)
        self.keep_label.setText("Not saved yet. Save it to keep it; the active model stays as it is until you "
                                "choose “Use this model”.")

    def _fill_metrics(self, outcome) -> None:
        new = outcome.new_scores.report
        active = outcome.active_scores.report if outcome.active_scores is not None else None
        adaptation = outcome.adaptation
        header, tip, new_header = "Active model", "", "New model"
        if adaptation:
            new_header = "Adapted (out of fold)" if adaptation.get("folds") else "Adapted"
            header = f"Starting: {adaptation['starting_model']}\n(same films)"
            tip = f"The active model the adaptation started from, judged on {adaptation['evaluated_on']}."
        elif active:
            scores = outcome.active_scores
            header = f"Active: {scores.model}" + (f"\n{scores.seen_note(short=True)}" if scores.seen else "")
            tip = f"The active model {scores.seen_note()}." if scores.seen else ""
        self.metrics_table.setHorizontalHeaderLabels(["", new_header, header])
        self.metrics_table.horizontalHeaderItem(2).setToolTip(tip)

        def auc(report, key):
            if adaptation:  # with the AUC's 95 % interval (core.training.adapt.figures)
                return _fmt_auc(adaptation[key], adaptation[key].get("auc_ci95"))
            return _fmt_auc(report) if report else "–"

        def acc(r):
            return None if r is None else _percent_ci(r["accuracy"], wilson_interval(r["correct"], r["n"]))

        rows = [("Accuracy (95 % CI)", acc(new), acc(active) or "–"),
                ("AUC (95 % CI)" if adaptation else "AUC", auc(new, "adapted"), auc(active, "starting"))]
        for name in new["classes"]:
            for key, label in (("sensitivity", "sensitivity"), ("specificity", "specificity"),
                               ("precision", "precision")):
                a_stats = _class_stats(active, name)
                n_stats = new["per_class"][name]
                rows.append((f"{name}: {label}", _percent_ci(n_stats[key], n_stats[key + "_ci95"]),
                             _percent_ci(a_stats[key], a_stats[key + "_ci95"]) if a_stats else "–"))
        if adaptation:
            rows.append(("Films judged", str(adaptation["adapted"]["n"]), str(adaptation["starting"]["n"])))
        self.metrics_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.metrics_table.setItem(r, c, QTableWidgetItem(text))
        self.metrics_table.resizeRowsToContents()


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


def _wrapping(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    return label


def _percent_ci(value, ci) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%} ({ci[0]:.1%}–{ci[1]:.1%})"


def _fmt_auc(report, ci=None) -> str:
    if report is None or report.get("auc") is None:
        return "n/a"
    return f"{report['auc']:.3f}" + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")


def _class_stats(report, name: str):
    if report is None:
        return None
    for cls, stats in report["per_class"].items():
        if cls.lower() == name.lower():
            return stats
    return None
