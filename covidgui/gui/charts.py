"""Matplotlib charts inside Qt for the Training tab: learning curves, confusion matrices, ROC curves.

They only draw numbers that core computed (histories, classification reports, ROC points).
"""

from __future__ import annotations

import threading

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QLabel

from covidgui.gui.image_view import rgba_to_qimage

NEW_COLOUR = "#1f6fb4"
ACTIVE_COLOUR = "#888888"


class LearningCurves(FigureCanvasQTAgg):
    """Training and validation loss (left) and accuracy (right), one point per epoch."""

    def __init__(self, parent=None):
        figure = Figure(figsize=(7, 2.6))
        figure.subplots_adjust(left=0.07, right=0.98, bottom=0.17, top=0.88, wspace=0.18)
        super().__init__(figure)
        self.setParent(parent)
        self.loss_ax, self.acc_ax = figure.subplots(1, 2)
        self.history: dict[str, list[float]] = {}
        self.reset()

    def reset(self) -> None:
        self.history = {"loss": [], "val_loss": [], "accuracy": [], "val_accuracy": []}
        self._redraw()

    def add_epoch(self, logs: dict[str, float]) -> None:
        for key in self.history:
            self.history[key].append(logs.get(key, np.nan))
        self._redraw()

    def epochs_drawn(self) -> int:
        return len(self.history["loss"])

    def _redraw(self) -> None:
        for ax, key, title in ((self.loss_ax, "loss", "Loss (lower is better)"),
                               (self.acc_ax, "accuracy", "Accuracy (higher is better)")):
            ax.clear()
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("epoch", fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
            epochs = np.arange(1, len(self.history[key]) + 1)
            if len(epochs):
                ax.plot(epochs, self.history[key], "o-", color=NEW_COLOUR, label="training", ms=3)
                ax.plot(epochs, self.history[f"val_{key}"], "s--", color="#d9822b", label="validation", ms=3)
                ax.legend(fontsize=8, loc="best")
                ax.set_xlim(0.5, max(len(epochs), 2) + 0.5)
                ax.xaxis.get_major_locator().set_params(integer=True)
            else:
                ax.text(0.5, 0.5, "appears after the first epoch", ha="center", va="center",
                        transform=ax.transAxes, color="#777", fontsize=9)
            if key == "accuracy":
                ax.set_ylim(0, 1.02)
        self.draw_idle()


class EvaluationCharts(QLabel):
    """Confusion matrices of the new and the active model, and their ROC curves, side by side.

    Drawn off the GUI thread: this three-panel figure took 340-700 ms to render, which froze the
    window for that long when training ended (benchmarks/training.py gui). The artists are set up
    on the GUI thread (cheap), an Agg canvas renders them on a Python thread, and the finished
    picture comes back through a queued signal. A lock keeps set-up and rendering apart.
    """

    _rendered = Signal(object)  # uint8 RGBA (H, W, 4)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(1, 1)
        self.figure = Figure(figsize=(9, 2.9), dpi=100, layout="constrained")
        FigureCanvasAgg(self.figure)
        self._lock = threading.Lock()
        self.new_ax, self.active_ax, self.roc_ax = self.figure.subplots(1, 3)
        self._rendered.connect(self._show_rendered)
        self._resize_timer = QTimer(self, singleShot=True, interval=150, timeout=self.draw_idle)
        self.clear_results()

    def draw_idle(self) -> None:
        """Render the figure at the widget's size on a background thread."""
        ratio = self.devicePixelRatioF()
        width, height = max(self.width(), 300), max(self.height(), 120)
        self.figure.set_size_inches(width / 100, height / 100)
        self.figure.set_dpi(100 * ratio)
        threading.Thread(target=self._render, name="evaluation-chart", daemon=True).start()

    def _render(self) -> None:
        with self._lock:
            self.figure.canvas.draw()
            rgba = np.asarray(self.figure.canvas.buffer_rgba()).copy()
        try:
            self._rendered.emit(rgba)
        except RuntimeError:  # the widget was closed while the picture was rendering: nothing to show
            pass

    @Slot(object)
    def _show_rendered(self, rgba) -> None:
        pixmap = QPixmap.fromImage(rgba_to_qimage(rgba))
        pixmap.setDevicePixelRatio(self.devicePixelRatioF())
        self.setPixmap(pixmap)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._resize_timer.start()

    def clear_results(self) -> None:
        with self._lock:
            self._clear_axes()
        self.draw_idle()

    def _clear_axes(self) -> None:
        for ax in (self.new_ax, self.active_ax, self.roc_ax):
            ax.clear()
            ax.set_axis_off()
        self.new_ax.text(0.5, 0.5, "Results appear when training ends", ha="center", va="center",
                         transform=self.new_ax.transAxes, color="#777", fontsize=9)

    def show_results(self, new_scores, new_curves: dict, active_scores=None, active_curves: dict | None = None,
                     active_note: str = "") -> None:
        """new/active_scores: core.comparison.Scores; *_curves: core.comparison.roc_curves output."""
        with self._lock:
            self._set_up_results(new_scores, new_curves, active_scores, active_curves, active_note)
        self.draw_idle()

    def _set_up_results(self, new_scores, new_curves, active_scores, active_curves, active_note) -> None:
        self._confusion(self.new_ax, new_scores.report, f"New model\n{_accuracy(new_scores.report)}", "Blues")
        if active_scores is not None:
            self._confusion(self.active_ax, active_scores.report,
                            f"Active: {active_scores.model}\n{_accuracy(active_scores.report)}", "Greys")
        else:
            self.active_ax.clear()
            self.active_ax.set_axis_off()
            self.active_ax.text(0.5, 0.5, active_note or "No active model to compare", ha="center", va="center",
                                wrap=True, transform=self.active_ax.transAxes, color="#555", fontsize=9)
        ax = self.roc_ax
        ax.clear()
        ax.set_axis_on()
        ax.plot([0, 1], [0, 1], ":", color="#bbb", lw=1)
        for curves, colour, who, style in ((new_curves, NEW_COLOUR, "new", "-"),
                                           (active_curves or {}, ACTIVE_COLOUR, "active", "--")):
            for name, (fpr, tpr, auc) in curves.items():
                ax.plot(fpr, tpr, style, color=colour, lw=1.6, label=f"{who}: {name} AUC {auc:.3f}")
        one_vs_rest = len(new_scores.classes) > 2
        ax.set_title("ROC" + (" (one-vs-rest)" if one_vs_rest else f" ({new_scores.positive_class} positive)"),
                     fontsize=10)
        ax.set_xlabel("1 − specificity", fontsize=9)
        ax.set_ylabel("sensitivity", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="lower right")

    @staticmethod
    def _confusion(ax, report: dict, title: str, cmap: str) -> None:
        ax.clear()
        ax.set_axis_on()
        cm = np.asarray(report["confusion_matrix"])
        classes = report["classes"]
        ax.imshow(cm, cmap=cmap, vmin=0, vmax=max(int(cm.max()), 1))
        threshold = cm.max() / 2 if cm.size else 0
        for (i, j), value in np.ndenumerate(cm):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=11,
                    color="white" if value > threshold else "black")
        ax.set_xticks(range(len(classes)), classes, fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel("predicted", fontsize=9)
        ax.set_ylabel("true", fontsize=9)
        ax.set_title(title, fontsize=10)


def _accuracy(report: dict) -> str:
    return f"{report['correct']}/{report['n']} correct ({report['accuracy']:.1%})"
