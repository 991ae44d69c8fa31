"""Matplotlib charts inside Qt for the Training tab: learning curves, confusion matrices, ROC curves.

They only draw numbers that core computed (histories, classification reports, ROC points).
"""

from __future__ import annotations

import threading

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy

from covidgui.gui.image_view import rgba_to_qimage
from covidgui.gui.worker import WorkerThread

NEW_COLOUR = "#1f6fb4"
ACTIVE_COLOUR = "#888888"
VALIDATION_COLOUR = "#d9822b"

_thread: WorkerThread | None = None
_thread_lock = threading.Lock()


def chart_thread() -> WorkerThread:
    """The one thread every chart draws on (created on first use, lives as long as the app)."""
    global _thread
    with _thread_lock:
        if _thread is None:
            _thread = WorkerThread("charts")
        return _thread


class RenderedFigure(QLabel):
    """A matplotlib figure drawn off the GUI thread and shown as a picture.

    Drawing a figure took 50-90 ms (learning curves, every epoch) and 300-490 ms (the results) on
    the GUI thread, which froze the window for that long (benchmarks/training.py gui). Here the
    GUI thread only says what to draw (:meth:`request`, plain numbers) and, when the picture is
    ready, wraps it in a pixmap. The figure and its artists belong to the chart thread
    (:func:`chart_thread`): :meth:`_apply` sets them up from the numbers there, reusing the
    artists where a subclass can, and the Agg canvas renders them to a QImage there (a QImage may be
    built off the GUI thread; it is an owned copy). Requests that queue up behind a slow render
    are skipped: only the newest one, which carries everything to draw, is rendered.
    """

    _rendered = Signal(int, object, object)  # request number, QImage, its spec
    shown = Signal()  # a new picture is on screen

    def __init__(self, figsize: tuple[float, float], parent=None, **figure_options):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(1, 1)
        # Neither the figure's size nor the last picture's (a label's minimum) is asked of the
        # layout: a chart takes the space its column gives it, down to its minimum, so a column of
        # charts fits a low screen and never grows from its own pictures.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self._size_hint = QSize(int(figsize[0] * 100), int(figsize[1] * 100))
        self.figure = Figure(figsize=figsize, dpi=100, **figure_options)
        FigureCanvasAgg(self.figure)
        self._spec = None  # what the newest request draws
        self._requested = 0  # number of the newest request
        self._shown = 0  # number of the request whose picture is shown
        self._shown_spec = None
        self._rendered.connect(self._show_rendered)
        self._resize_timer = QTimer(self, singleShot=True, interval=150, timeout=self._rerender)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name): the figure's size, not the last picture's
        return self._size_hint

    def request(self, spec) -> None:
        """Draw ``spec`` (the subclass's plain description of the whole chart) at the widget's size."""
        self._spec = spec
        self._requested += 1
        ratio = self.devicePixelRatioF()
        size = (max(self.width(), 300), max(self.height(), 120), ratio)
        chart_thread().submit(self._render, self._requested, spec, size)

    def is_current(self) -> bool:
        """Whether the picture shown is that of the newest request."""
        return self._shown == self._requested

    def shown_spec(self):
        """What the picture on screen shows (the spec of its request), None before the first one."""
        return self._shown_spec

    def _rerender(self) -> None:
        if self._spec is not None:
            self.request(self._spec)

    def _render(self, number: int, spec, size) -> None:
        """On the chart thread."""
        if number != self._requested:
            return  # a newer request is queued behind this one
        width, height, ratio = size
        self._apply(spec)
        self.figure.set_size_inches(width / 100, height / 100)
        self.figure.set_dpi(100 * ratio)
        self.figure.canvas.draw()
        image = rgba_to_qimage(np.asarray(self.figure.canvas.buffer_rgba()))  # an owned copy
        try:
            self._rendered.emit(number, image, spec)
        except RuntimeError:  # the widget was closed while the picture was rendering: nothing to show
            pass

    def _apply(self, spec) -> None:
        """On the chart thread: set the figure's artists up to show ``spec``."""
        raise NotImplementedError

    @Slot(int, object, object)
    def _show_rendered(self, number: int, image: QImage, spec) -> None:
        if number < self._shown:
            return
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(self.devicePixelRatioF())
        self.setPixmap(pixmap)
        self._shown = number
        self._shown_spec = spec
        self.shown.emit()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._resize_timer.start()


class LearningCurves(RenderedFigure):
    """Training and validation loss (left) and accuracy (right), one point per epoch.

    Incremental: the four lines, the legends and the placeholder text are made once; an epoch
    changes the lines' data and the axes' limits.
    """

    def __init__(self, parent=None):
        # Constrained: margins in points, not shares of the figure, so the axis labels stay whole
        # when the chart is given little height.
        super().__init__((7, 2.6), parent, layout="constrained")
        self.loss_ax, self.acc_ax = self.figure.subplots(1, 2)
        self._lines = {}
        self._placeholders = []
        self._legends = []
        for ax, key, title in ((self.loss_ax, "loss", "Loss (lower is better)"),
                               (self.acc_ax, "accuracy", "Accuracy (higher is better)")):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("epoch", fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
            (self._lines[key],) = ax.plot([], [], "o-", color=NEW_COLOUR, label="training", ms=3)
            (self._lines[f"val_{key}"],) = ax.plot([], [], "s--", color=VALIDATION_COLOUR, label="validation", ms=3)
            self._legends.append(ax.legend(fontsize=8, loc="best"))
            self._placeholders.append(ax.text(0.5, 0.5, "appears after the first epoch", ha="center", va="center",
                                              transform=ax.transAxes, color="#777", fontsize=9))
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_xlim(0.5, 2.5)
        self.acc_ax.set_ylim(0, 1.02)
        self.history: dict[str, list[float]] = {}
        self.reset()

    def reset(self) -> None:
        self.history = {"loss": [], "val_loss": [], "accuracy": [], "val_accuracy": []}
        self.request({key: [] for key in self.history})

    def add_epoch(self, logs: dict[str, float]) -> None:
        for key in self.history:
            self.history[key].append(float(logs.get(key, np.nan)))
        self.request({key: list(values) for key, values in self.history.items()})

    def epochs_drawn(self) -> int:
        """Epochs in the picture on screen."""
        spec = self.shown_spec()
        return len(spec["loss"]) if spec else 0

    def _apply(self, spec) -> None:
        n = len(spec["loss"])
        epochs = np.arange(1, n + 1)
        for key, line in self._lines.items():
            line.set_data(epochs, np.asarray(spec[key], dtype=float))
        for legend, placeholder in zip(self._legends, self._placeholders):
            legend.set_visible(n > 0)
            placeholder.set_visible(n == 0)
        for ax in (self.loss_ax, self.acc_ax):
            ax.set_xlim(0.5, max(n, 2) + 0.5)
        if n:
            self.loss_ax.relim()
            self.loss_ax.autoscale_view(scalex=False)


class EvaluationCharts(RenderedFigure):
    """Confusion matrices of the new and the active model, and their ROC curves, side by side.

    Drawn once per run, on the chart thread (see :class:`RenderedFigure`).
    """

    def __init__(self, parent=None):
        super().__init__((9, 2.9), parent, layout="constrained")
        self.new_ax, self.active_ax, self.roc_ax = self.figure.subplots(1, 3)
        self.clear_results()

    def clear_results(self) -> None:
        self.request(None)

    def show_results(self, new_scores, new_curves: dict, active_scores=None, active_curves: dict | None = None,
                     active_note: str = "", names: dict | None = None) -> None:
        """new/active_scores: core.comparison.Scores; *_curves: core.comparison.roc_curves output.
        names: the matrices' titles ("new", "active") and the ROC legend's ("new_short",
        "active_short"), e.g. for an adaptation; by default "New model", "Active: <model>", "new", "active"."""
        self.request((new_scores, new_curves, active_scores, active_curves, active_note, names or {}))

    def showing_results(self) -> bool:
        """Whether the picture on screen is a run's results (not the empty placeholder)."""
        return self.shown_spec() is not None and self.is_current()

    def _apply(self, spec) -> None:
        if spec is None:
            self._clear_axes()
        else:
            self._set_up_results(*spec)

    def _clear_axes(self) -> None:
        for ax in (self.new_ax, self.active_ax, self.roc_ax):
            ax.clear()
            ax.set_axis_off()
        self.new_ax.text(0.5, 0.5, "Results appear when training ends", ha="center", va="center",
                         transform=self.new_ax.transAxes, color="#777", fontsize=9)

    def _set_up_results(self, new_scores, new_curves, active_scores, active_curves, active_note, names) -> None:
        self._confusion(self.new_ax, new_scores.report,
                        f"{names.get('new', 'New model')}\n{_accuracy(new_scores.report)}", "Blues")
        if active_scores is not None:
            # A model scored on fewer images than the new one says so in its title (the files it
            # was trained on are left out: core.scoring.comparison.score_unseen).
            unseen = f"\n{active_scores.seen_note(short=True)}" if active_scores.seen else ""
            title = names.get("active", f"Active: {active_scores.model}{unseen}")
            self._confusion(self.active_ax, active_scores.report,
                            f"{title}\n{_accuracy(active_scores.report)}", "Greys")
        else:
            self.active_ax.clear()
            self.active_ax.set_axis_off()
            self.active_ax.text(0.5, 0.5, active_note or "No active model to compare", ha="center", va="center",
                                wrap=True, transform=self.active_ax.transAxes, color="#555", fontsize=9)
        ax = self.roc_ax
        ax.clear()
        ax.set_axis_on()
        ax.plot([0, 1], [0, 1], ":", color="#bbb", lw=1)
        one_vs_rest = len(new_scores.classes) > 2
        for curves, colour, who, style in ((new_curves, NEW_COLOUR, names.get("new_short", "new"), "-"),
                                           (active_curves or {}, ACTIVE_COLOUR, names.get("active_short", "active"),
                                            "--")):
            for name, (fpr, tpr, auc) in curves.items():
                label = f"{who} {name} {auc:.3f}" if one_vs_rest else f"{who} {auc:.3f}"
                ax.plot(fpr, tpr, style, color=colour, lw=1.6, label=label)
        # Two short title lines and the legend beside the axes, where the constrained layout makes
        # room for them: over a small square axes the legend hid the curves and a one-line title
        # ran off the figure (1024-pixel screens).
        ax.set_title("ROC\n" + ("one-vs-rest" if one_vs_rest else f"{new_scores.positive_class} positive"),
                     fontsize=10)
        ax.set_xlabel("1 − specificity", fontsize=9)
        ax.set_ylabel("sensitivity", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_box_aspect(1)
        ax.legend(title="AUC", title_fontsize=7, fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5),
                  frameon=False, handlelength=1.4, borderaxespad=0.2)

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
        ax.set_title(title, fontsize=9)


def _accuracy(report: dict) -> str:
    return f"{report['correct']}/{report['n']} correct ({report['accuracy']:.1%})"
