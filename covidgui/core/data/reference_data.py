"""The split the bundled model is trained and validated on, from ``../shared/data``.

Training: covid-xray/Train (Covid, Normal) plus the adult-normal images as Normal, minus a seeded
hold-out of adult normals. Validation: covid-xray/Val plus those held-back adult normals. The adult
normals are there to break the "child vs adult" shortcut of covid-xray, whose Normal class is all
children. Used by ``scripts/train_bundled_model.py`` and ``benchmarks/training.py`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from covidgui.core.data.dataset import LabelledFiles, scan_class_folders, split_off

CLASSES = ["Covid", "Normal"]


@dataclass
class ReferenceSplit:
    train: LabelledFiles
    val: LabelledFiles
    covid_val: LabelledFiles  # covid-xray/Val alone
    adult_val: LabelledFiles  # the held-back adult normals alone


def bundled_model_split(data_root: str | Path, hold_out: int = 75, seed: int = 0) -> ReferenceSplit:
    """data_root: the folder holding covid-xray/ and adult-normal/; hold_out: adult normals kept
    for validation (seeded by ``seed``)."""
    data_root = Path(data_root)
    covid_train = scan_class_folders(data_root / "covid-xray" / "Train", CLASSES)
    covid_val = scan_class_folders(data_root / "covid-xray" / "Val", CLASSES)
    adults = LabelledFiles(["Normal"], sorted((data_root / "adult-normal").glob("*.jpg")))
    adults.labels = [0] * len(adults.paths)
    adult_train, adult_val = split_off(adults, hold_out, seed)
    return ReferenceSplit(covid_train.extend(adult_train), covid_val.extend(adult_val), covid_val, adult_val)
