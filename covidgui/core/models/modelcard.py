"""The model card: the JSON file beside every ``.keras`` model that says what the model is.

It names the classes (in output order), the input size and preprocessing, the calibration
temperature, how the model was trained (command, data manifest hashes, split) and its measured
validation figures. No model is loaded without one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from covidgui.core.errors import ModelError

CARD_SUFFIX = ".json"
# card.training[FILE_HASHES_KEY] = {"train": [...], "calibration": [...]}: the sorted short sha256
# of each file a model was fitted and calibrated on (covidgui.core.data.dataset.short_file_hashes).
FILE_HASHES_KEY = "file_hashes"


@dataclass
class ModelCard:
    """What a model is. ``classes`` are folder names in the model's output order."""

    name: str
    version: str
    classes: list[str]
    input_size: int
    display_names: dict[str, str] = field(default_factory=dict)
    positive_class: str | None = None
    preprocessing: dict = field(default_factory=dict)
    temperature: float = 1.0
    # Per-class offsets added to the temperature-scaled logits (None: none). Fitted with the
    # temperature on calibration films where both classes share the hospitals (siim-covid), they
    # set the decision threshold where the classes' own prevalence and look put it.
    logit_bias: list[float] | None = None
    indeterminate_band: tuple[float, float] = (0.35, 0.65)
    architecture: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    # Per-source figures (covidgui.core.scoring.sources): the locked test split ({"per_source": [rows], ...})
    # and leave-one-source-out ([rows]); rows are {"source", "class", "n", "correct", ...}.
    test: dict = field(default_factory=dict)
    leave_one_source_out: list = field(default_factory=list)
    notes: str = ""
    created: str = ""
    # SHA-256 of each file of the model's set (role -> hex, None = the model has no such file),
    # written by covidgui.core.models.model_files so a file from another model is never used with this one.
    files: dict = field(default_factory=dict)

    @property
    def harmonises_storage(self) -> bool:
        """Every image is first stored as the 224-px sources were, in training and inference
        (:func:`covidgui.core.inference.preprocess.harmonise_storage`)."""
        return bool(self.preprocessing.get("harmonise_storage"))

    def seen_files(self) -> dict[str, set[str]]:
        """Part ("train", "calibration") -> the short sha256 of its files, from the card; {} when
        the card does not record them (a model trained before they were)."""
        recorded = self.training.get(FILE_HASHES_KEY) or {}
        return {part: set(hashes) for part, hashes in recorded.items() if hashes is not None}

    def locked_test_line(self) -> str:
        """The locked-test figures in one line, or why there are none."""
        test = self.test or {}
        if not test.get("n") or test.get("sensitivity") is None:
            return "no locked-test figures (not tested on images kept out of its training and calibration)"
        auc = test.get("auc")
        return (f"locked test n={test['n']}: sensitivity {test['sensitivity']:.1%}, specificity "
                f"{test['specificity']:.1%}, AUC " + ("n/a" if auc is None else f"{auc:.3f}"))

    def display_name(self, class_name: str) -> str:
        """How a class is shown to a clinician (``Covid`` -> ``COVID-19``)."""
        return self.display_names.get(class_name, class_name)

    def summary(self) -> str:
        """A few human-readable lines for the About box and reports: the locked-test and
        leave-one-source-out figures when the card has them, else the validation figures."""
        lines = [f"{self.name} v{self.version}", "Classes: " + ", ".join(map(self.display_name, self.classes))]
        if self.test.get("per_source") or self.leave_one_source_out:
            return "\n".join(lines + self.source_lines())
        val = self.metrics.get("validation") or {}
        if "accuracy" in val and "n" in val:
            lines.append(f"Validation: {val.get('correct', round(val['accuracy'] * val['n']))}/{val['n']} correct "
                         f"({val['accuracy']:.1%}) on {val.get('dataset', 'held-out data')}")
        if "sensitivity" in val and "specificity" in val:
            lines.append(f"Sensitivity {val['sensitivity']:.1%}, specificity {val['specificity']:.1%}")
        if self.training.get("data"):
            lines.append("Trained on: " + str(self.training["data"]))
        return "\n".join(lines)

    def source_lines(self) -> list[str]:
        """Per-source figures as lines: the locked test split, then sources never trained on."""
        def row_text(row: dict) -> str:
            if "+" in row["class"]:  # a source of both classes (siim-covid): the figures a threshold is judged by
                counts = ", ".join(f"{n} {self.display_name(c)}" for c, n in (row.get("counts") or {}).items())
                figures = ", ".join(f"{label} {row[key]:.2f}" for key, label in
                                    (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("auc", "AUC"))
                                    if row.get(key) is not None)
                return f"  {row['source']} (both classes: {counts or row['n']}): {figures}"
            share = row["correct"] / row["n"] if row["n"] else float("nan")
            return (f"  {row['source']} ({self.display_name(row['class'])}): {row['correct']}/{row['n']} "
                    f"called {self.display_name(row['class'])} ({share:.0%})")

        lines = []
        if self.test.get("per_source"):
            lines.append("Locked test images (sources seen in training, images never used to choose anything):")
            lines += [row_text(r) for r in self.test["per_source"]]
        if self.leave_one_source_out:
            lines.append("Sources never seen in training (leave-one-source-out, "
                         f"{self.test.get('loso_schedule', 'reduced schedule')}):")
            lines += [row_text(r) for r in self.leave_one_source_out]
            ranges = []
            for name in self.classes:
                shares = [r["correct"] / r["n"] for r in self.leave_one_source_out if r["class"] == name and r["n"]]
                if shares:
                    ranges.append(f"{self.display_name(name)} images called {self.display_name(name)} "
                                  f"{min(shares):.0%}-{max(shares):.0%}")
            lines.append("On sources never seen: " + ", ".join(ranges) + ". Expect a new hospital's images "
                         "to fare like this rather than like the test images.")
        return lines

    def to_json(self) -> str:
        data = asdict(self)
        data["indeterminate_band"] = list(self.indeterminate_band)
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "ModelCard":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        missing = [k for k in ("name", "version", "classes", "input_size") if k not in known]
        if missing:
            raise ModelError(f"The model card lacks {', '.join(missing)}.")
        if "indeterminate_band" in known:
            known["indeterminate_band"] = tuple(known["indeterminate_band"])
        return cls(**known)


def card_path(model_path: str | Path) -> Path:
    """The model card's path for a ``.keras`` file: same name, ``.json``."""
    return Path(model_path).with_suffix(CARD_SUFFIX)


def read_card(model_path: str | Path) -> ModelCard:
    """Read the card beside ``model_path``; raises ModelError if it is absent or malformed."""
    path = card_path(model_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"The model card {path.name} is missing beside {Path(model_path).name}.") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"The model card {path} cannot be read: {exc}") from exc
    return ModelCard.from_dict(data)
