"""The one progress protocol of a training run: what is happening, and what a finished run leaves.

:class:`RunEvent` and :class:`TrainingOutcome` are plain data, light to import (the window shows
them); :func:`covidgui.core.training.run.run_training` makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

SCORING_TEXT = "Scoring the new and the active model on the validation images…"
READING_TEXT = "Reading images…"


@dataclass(frozen=True)
class RunEvent:
    """One step of a run's progress, the same whoever listens.

    kind: "phase" (``text`` is a short status line; in a run made of several trainings, e.g. the
    folds of an adaptation, ``part`` of ``parts``, 0-based, is the training that starts), "batch"
    (after batch ``batch`` of ``batches``, 1-based, in epoch ``epoch`` of ``epochs``, 0-based) or
    "epoch" (epoch ``epoch`` ended; ``logs`` maps loss, accuracy, val_loss, val_accuracy to floats).
    """

    KINDS = ("phase", "batch", "epoch")

    kind: str
    text: str = ""
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    logs: dict = field(default_factory=dict)
    part: int = 0
    parts: int = 0  # 0: a run of one training

    @classmethod
    def phase(cls, text: str) -> RunEvent:
        return cls("phase", text=text)

    def to_dict(self) -> dict:
        """The event as plain JSON data (``{"event": kind, ...}``), as the training child sends it."""
        data = {"event": self.kind}
        if self.kind == "phase":
            data["text"] = self.text
            if self.parts:
                data.update(part=self.part, parts=self.parts)
        else:
            data.update(epoch=self.epoch, epochs=self.epochs)
            if self.kind == "batch":
                data.update(batch=self.batch, batches=self.batches)
            else:
                data["logs"] = dict(self.logs)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RunEvent:
        """The event :meth:`to_dict` made; raises KeyError or TypeError for anything else."""
        kind = data["event"]
        if kind not in cls.KINDS:
            raise KeyError(kind)
        names = {f.name for f in fields(cls)} - {"kind"}
        values = {k: v for k, v in data.items() if k in names}
        if "logs" in values:
            values["logs"] = {str(k): float(v) for k, v in values["logs"].items()}
        return cls(kind, **values)

    def describe(self) -> str:
        """One line for a terminal, e.g. ``epoch 2/30: loss 0.4012, accuracy 0.8125``."""
        if self.kind == "phase":
            return self.text
        if self.kind == "batch":
            return f"epoch {self.epoch + 1}/{self.epochs}, batch {self.batch}/{self.batches}"
        return f"epoch {self.epoch + 1}/{self.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in self.logs.items())


@dataclass
class TrainingOutcome:
    """What a finished run leaves: the history, the validation report and, when asked for, the
    scores of the new and the active model on the same validation files."""

    history: dict  # Keras history: loss, accuracy, val_loss, val_accuracy per epoch
    unreadable: dict  # path -> reason, files left out of training
    seconds: float  # the whole run: reading, training, calibration, scoring
    report: dict = field(default_factory=dict)  # the validation report in the new model's card
    new_scores: object | None = None  # core.scoring.comparison.Scores
    new_curves: dict | None = None  # roc_curves(new_scores)
    active_scores: object | None = None
    active_curves: dict | None = None
    active_note: str = ""  # why the active model could not be compared, when it could not
    model_path: str | None = None  # where the model was saved (save_to), else None
    # An adaptation (core.training.adapt.run_adaptation): new_scores are the adapted model's,
    # active_scores the starting model's on the same films; this holds the plain figures of both
    # (with AUC intervals), what they were measured on, "better" and the "verdict" sentence.
    adaptation: dict | None = None
    classifier: object | None = None  # the trained classifier, in the process that trained it

    def plain_fields(self) -> dict:
        """Every field but the classifier (what crosses from the training child to the window)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "classifier"}
