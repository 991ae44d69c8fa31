"""The Training tab's run controls: Start and Cancel, the progress bar and the line that says where a run is."""

from __future__ import annotations

import time

from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout

CANCELLING = "Cancelling…"


def duration(seconds: float) -> str:
    """``42 s`` or ``3 min 05 s``."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class RunPanel(QGroupBox):
    """Group 4 of the tab. Shows a run's phase and batch events (core.training.progress.RunEvent) and
    how it ended; the tab decides what the buttons do."""

    def __init__(self, parent=None):
        super().__init__("4. Train", parent)
        layout = QVBoxLayout(self)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("startTraining")
        self.cancel_button = QPushButton("Cancel")
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setFormat("%p %")
        self.progress_label = QLabel("Not started.")
        self.progress_label.setWordWrap(True)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        self._started = 0.0
        self._part, self._parts = 0, 0  # the training under way, of a run made of several (an adaptation)

    def show_started(self) -> None:
        self.progress.setRange(0, 0)  # busy until the first batch says how many there are
        self.progress_label.setText("Starting…")
        self._started = time.perf_counter()
        self._part, self._parts = 0, 0

    def show_cancelling(self) -> None:
        self.cancel_button.setEnabled(False)
        self.progress_label.setText(CANCELLING)

    def show_phase(self, text: str, part: int = 0, parts: int = 0) -> None:
        """A phase RunEvent's line; ``part`` of ``parts`` (0-based) when a new training of a run made
        of several starts (the folds of an adaptation, then its final model)."""
        if parts:
            self._part, self._parts = part, parts
        self.progress_label.setText(text)

    def stage(self) -> str:
        """"Fold 2 of 5" or "Final model" during an adaptation, else ""."""
        if not self._parts:
            return ""
        return "Final model" if self._part == self._parts - 1 else f"Fold {self._part + 1} of {self._parts - 1}"

    def show_batch(self, event, early_stopping: bool) -> None:
        """Progress bar and time left after a "batch" RunEvent (nothing once cancelling)."""
        if self.progress_label.text() == CANCELLING:
            return
        # An adaptation's bar spans all its trainings (folds and final model), one as long as another.
        done = (self._part * event.epochs + event.epoch) * event.batches + event.batch
        total = max(self._parts, 1) * event.epochs * event.batches
        if self.progress.maximum() != total:
            self.progress.setRange(0, total)
        self.progress.setValue(done)
        elapsed = time.perf_counter() - self._started
        eta = elapsed / done * (total - done)
        stage = f"{self.stage()}: e" if self._parts else "E"
        self.progress_label.setText(f"{stage}poch {event.epoch + 1}/{event.epochs}, batch {event.batch}/{event.batches} — "
                                    f"{duration(elapsed)} so far, about {duration(eta)} left"
                                    + (" (less if early stopping ends it)" if early_stopping else ""))

    def show_ended(self, text: str, finished: bool = False) -> None:
        """A run ended: the bar full when it finished, empty otherwise, and why."""
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if finished else 0)
        self.progress_label.setText(text)

    def show_finished(self, outcome) -> None:
        """A core.training.progress.TrainingOutcome: epochs run, time, validation accuracy."""
        epochs_run = len(outcome.history.get("loss", []))
        report = outcome.new_scores.report
        if outcome.adaptation:
            self.show_ended(f"Finished adapting in {duration(outcome.seconds)}. Both models were judged on "
                            f"{outcome.adaptation['evaluated_on']}.", finished=True)
            return
        self.show_ended(f"Finished: {epochs_run} epochs in {duration(outcome.seconds)}. "
                        f"Validation: {report['correct']}/{report['n']} correct ({report['accuracy']:.1%}).",
                        finished=True)
