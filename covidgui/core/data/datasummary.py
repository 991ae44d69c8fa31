"""What a user sees before training starts: images per class, unreadable files, and warnings.

:func:`summarize_training_data` scans the folders, tries to read every image (at a reduced size,
so a few hundred files take seconds), applies the validation split, and returns the readable
files ready for :func:`covidgui.core.training.train.train` together with plain-language problems
(which block training) and warnings (which do not).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from covidgui.core.data.dataset import LabelledFiles, scan_class_folders, split_off
from covidgui.core.errors import DatasetError, ImageLoadError
from covidgui.core.io.images import load_xray

# Warn when the largest class has more than this many times the images of the smallest.
IMBALANCE_RATIO = 3.0
# Warn when a training class has fewer images than this.
MIN_IMAGES_PER_CLASS = 20
# The start of the warning a small class gets (the Training tab leaves it out when adapting a model).
FEW_IMAGES_WARNING = f"Fewer than {MIN_IMAGES_PER_CLASS} training images"
# Reading checks decode at about this size: enough to catch truncated or foreign files, and fast
# (JPEGs decode at 1/8 scale in Pillow's draft mode).
_CHECK_SIDE = 64


@dataclass
class DatasetSummary:
    """The outcome of checking training (and validation) folders.

    train, val: the readable files (None when the folders could not be used at all).
    train_counts, val_counts: readable images per class, in class order.
    unreadable: file path -> why it cannot be read (left out of training).
    problems: reasons training cannot start; warnings: things to know before starting.
    """

    classes: list[str] = field(default_factory=list)
    train: LabelledFiles | None = None
    val: LabelledFiles | None = None
    train_counts: dict[str, int] = field(default_factory=dict)
    val_counts: dict[str, int] = field(default_factory=dict)
    validation_source: str = ""
    unreadable: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.train is not None and self.val is not None

    def text(self) -> str:
        """The summary as plain text (the CLI prints it; the GUI shows the same facts)."""
        lines = []
        if self.classes:
            lines.append(f"{'class':<20}{'training':>10}{'validation':>12}")
            for c in self.classes:
                lines.append(f"{c:<20}{self.train_counts.get(c, 0):>10}{self.val_counts.get(c, 0):>12}")
            lines.append(f"validation: {self.validation_source}")
        lines += [f"PROBLEM: {p}" for p in self.problems]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"  unreadable: {path}: {reason}" for path, reason in self.unreadable.items()]
        return "\n".join(lines)


def _readable(files: LabelledFiles, unreadable: dict[str, str], progress, should_stop) -> LabelledFiles:
    """The subset of ``files`` that decode; the rest go into ``unreadable`` with the reason."""

    def check(path: Path) -> str | None:
        if should_stop and should_stop():
            return None
        try:
            load_xray(path, max_side=_CHECK_SIDE)
        except ImageLoadError as exc:
            return exc.reason
        return None

    kept = LabelledFiles(list(files.classes))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for i, (path, label, reason) in enumerate(zip(files.paths, files.labels, pool.map(check, files.paths))):
            if reason is None:
                kept.paths.append(path)
                kept.labels.append(label)
            else:
                unreadable[str(path)] = reason
            if progress and (i % 25 == 0 or i + 1 == len(files)):
                progress(i + 1, len(files))
    return kept


def summarize_training_data(train_dir: str | Path, val_dir: str | Path | None = None, val_share: float = 0.2,
                            seed: int = 0, progress: Callable[[int, int], None] | None = None,
                            should_stop: Callable[[], bool] | None = None) -> DatasetSummary:
    """Check ``train_dir`` (one subfolder per class) and the validation folder or share.

    val_dir: a folder with the same class subfolders; when None, ``val_share`` (0 < share < 1) of
        each training class is held out, stratified and seeded by ``seed``.
    progress: called with (files checked, files to check) from this thread.
    Never raises DatasetError: every such problem is in ``problems``.
    """
    summary = DatasetSummary()
    try:
        train = scan_class_folders(train_dir)
    except DatasetError as exc:
        summary.problems.append(str(exc))
        return summary
    summary.classes = list(train.classes)
    val = None
    if val_dir is not None and str(val_dir):
        summary.validation_source = f"folder {val_dir}"
        try:
            val = scan_class_folders(val_dir)
        except DatasetError as exc:
            summary.problems.append(f"Validation folder: {exc}")
        if val is not None and sorted(c.lower() for c in val.classes) != sorted(c.lower() for c in train.classes):
            summary.problems.append(
                f"The class names do not match: the training folder has {', '.join(train.classes)}, "
                f"the validation folder has {', '.join(val.classes)}. Rename the subfolders so they match.")
            val = None
        elif val is not None:
            # Validation labels follow the training class order whatever the folder's case.
            val = scan_class_folders(val_dir, train.classes)
    else:
        if not 0 < val_share < 1:
            summary.problems.append("The validation share must be between 0 % and 100 %.")
        summary.validation_source = f"{val_share:.0%} of each training class (seed {seed})"

    if len(train) == 0:
        summary.problems.append(f"The training folder {train_dir} holds no images "
                                "(PNG, JPEG, TIFF or BMP) in its class subfolders.")
    if len(train.classes) < 2:
        summary.problems.append(f"Training needs at least two classes, one subfolder each; {train_dir} has "
                                f"{len(train.classes)} ({', '.join(train.classes)}).")
    train = _readable(train, summary.unreadable, progress, should_stop)
    if val is not None:
        val = _readable(val, summary.unreadable, None, should_stop)
    elif not summary.problems:
        train, val = split_off(train, val_share, seed)
    summary.train, summary.val = train, val
    summary.train_counts = train.counts()
    summary.val_counts = val.counts() if val is not None else {}
    if summary.unreadable:
        summary.warnings.append(f"{len(summary.unreadable)} file(s) cannot be read and will be left out "
                                "(listed below with the reason).")
    if summary.problems:
        return summary

    counts = summary.train_counts
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        summary.problems.append(f"Class {', '.join(empty)} has no readable images for training.")
    if len(val) == 0:
        summary.problems.append("The validation set holds no readable images.")
    empty_val = [c for c, n in summary.val_counts.items() if n == 0]
    if empty_val and len(val):
        summary.warnings.append(f"Validation has no images of {', '.join(empty_val)}: "
                                "its sensitivity cannot be measured.")
    nonzero = [n for n in counts.values() if n]
    if nonzero and max(nonzero) > IMBALANCE_RATIO * min(nonzero):
        big = max(counts, key=counts.get)
        small = min((c for c in counts if counts[c]), key=counts.get)
        summary.warnings.append(f"The classes are imbalanced: {big} has {counts[big]} images, {small} only "
                                f"{counts[small]} (more than {IMBALANCE_RATIO:.0f}:1). Training weighs the "
                                "classes equally, but the small class's figures will be uncertain.")
    few = [f"{c} ({n})" for c, n in counts.items() if 0 < n < MIN_IMAGES_PER_CLASS]
    if few:
        summary.warnings.append(f"{FEW_IMAGES_WARNING} in {', '.join(few)}: "
                                "the model will learn little from so few examples.")
    return summary
