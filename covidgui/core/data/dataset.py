"""Labelled image folders: one subfolder per class, as clinicians keep them.

Pure file-system work (no decoding), so it is fast enough to summarise a folder before training.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

from covidgui.core.errors import DatasetError
from covidgui.core.io.images import is_supported


@dataclass
class LabelledFiles:
    """Image files with integer labels indexing ``classes``.

    groups: where each file comes from (a source: a hospital, a collection), one per path, or
        empty when unknown. Training can weigh each source of a class equally
        (:func:`covidgui.core.training.train.balanced_sample_weight`), and evaluation can report per source.
    """

    classes: list[str]
    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        return {c: self.labels.count(i) for i, c in enumerate(self.classes)}

    def extend(self, other: "LabelledFiles") -> "LabelledFiles":
        """A new set with ``other``'s files added, mapped by class name."""
        merged = LabelledFiles(list(self.classes), list(self.paths), list(self.labels), list(self.group_names()))
        for path, label, group in zip(other.paths, other.labels, other.group_names()):
            name = other.classes[label]
            if name not in merged.classes:
                merged.classes.append(name)
            merged.paths.append(path)
            merged.labels.append(merged.classes.index(name))
            merged.groups.append(group)
        return merged

    def subset(self, keep, classes: list[str] | None = None, rename: dict[str, str] | None = None) -> "LabelledFiles":
        """The files where ``keep`` (one bool per file) is true, sources kept.

        rename: old class name -> new one (several old names may merge into one).
        classes: the new class order (default: the renamed classes in their order, each once).
        """
        rename = rename or {}
        names = [rename.get(c, c) for c in self.classes]
        classes = list(classes) if classes is not None else list(dict.fromkeys(names))
        out = LabelledFiles(classes)
        for path, label, group, k in zip(self.paths, self.labels, self.group_names(), keep):
            if k:
                out.paths.append(path)
                out.labels.append(classes.index(names[label]))
                out.groups.append(group)
        return out

    def group_names(self) -> list[str]:
        """Each file's source; a file without one counts as its class's own source."""
        if len(self.groups) == len(self.paths):
            return list(self.groups)
        return [self.classes[label] for label in self.labels]


def image_files(folder: Path) -> list[Path]:
    """Supported image files below ``folder`` (recursive, sorted, hidden files skipped)."""
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and is_supported(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def scan_class_folders(root: str | Path, classes: list[str] | None = None,
                       allow_missing: bool = False) -> LabelledFiles:
    """Files of a folder laid out one subfolder per class.

    classes: when given (a model's classes), subfolders are matched to them case-insensitively and
        labels follow that order; otherwise the classes are the subfolder names, sorted.
    allow_missing: with ``classes``, a class without a subfolder has no files instead of being an
        error (evaluating a three-class model on a folder of COVID-19 and normal films); at least
        one class must match.
    Each file's group (source) is its class folder's subfolder it lies in, or the class itself.
    Raises DatasetError for a missing folder, no class subfolders, or an unmatched class.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"The folder {root} does not exist.")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        raise DatasetError(f"{root} has no class subfolders; put each class's images in its own subfolder.")
    if classes is None:
        classes = [p.name for p in subfolders]
        folder_for = dict(zip(classes, subfolders))
    else:
        by_lower = {p.name.lower(): p for p in subfolders}
        missing = [c for c in classes if c.lower() not in by_lower]
        if allow_missing and len(missing) < len(classes):
            classes_found = [c for c in classes if c not in missing]
            files = LabelledFiles(list(classes))
            for name in classes_found:
                _add_class_folder(files, classes.index(name), name, by_lower[name.lower()])
            return files
        if missing:
            raise DatasetError(f"{root} has no subfolder for class {', '.join(missing)} "
                               f"(found: {', '.join(p.name for p in subfolders)}).")
        folder_for = {c: by_lower[c.lower()] for c in classes}
    files = LabelledFiles(list(classes))
    for label, name in enumerate(classes):
        _add_class_folder(files, label, name, folder_for[name])
    return files


def _add_class_folder(files: LabelledFiles, label: int, name: str, folder: Path) -> None:
    found = image_files(folder)
    files.paths.extend(found)
    files.labels.extend([label] * len(found))
    # A subfolder of a class folder (Covid/hospital-a/...) is a source of its own, so training
    # can weigh the sources of a class equally; files directly in the class folder are one source.
    files.groups.extend(f"{name}/{p.relative_to(folder).parts[0]}" if len(p.relative_to(folder).parts) > 1
                        else name for p in found)


def split_off(files: LabelledFiles, n_or_share: float, seed: int) -> tuple[LabelledFiles, LabelledFiles]:
    """Stratified, seeded split: (kept, held_out). ``n_or_share`` < 1 is a share of each class,
    >= 1 a count taken from each class in proportion to its size."""
    rng = random.Random(seed)
    kept, held = LabelledFiles(list(files.classes)), LabelledFiles(list(files.classes))
    total = len(files)
    groups = files.group_names()
    for label in range(len(files.classes)):
        members = [(p, g) for p, lab, g in zip(files.paths, files.labels, groups) if lab == label]
        rng.shuffle(members)
        share = n_or_share if n_or_share < 1 else n_or_share / max(total, 1)
        n_held = round(len(members) * share)
        for i, (path, group) in enumerate(members):
            target = held if i < n_held else kept
            target.paths.append(path)
            target.labels.append(label)
            target.groups.append(group)
    return kept, held


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_hash(files: LabelledFiles) -> str:
    """One sha256 over every (class, file sha256) pair, order-independent: names the exact data."""
    lines = sorted(f"{files.classes[lab]}\t{sha256_file(p)}" for p, lab in zip(files.paths, files.labels))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# Characters of a file's sha256 kept per file in a model card: 64 bits, so two different films
# share one by chance about once in 10^19 pairs, and a card of 2,000 files stays small.
SHORT_HASH_CHARS = 16


def short_file_hashes(files: LabelledFiles) -> list[str]:
    """The sorted short sha256 (first 16 hex characters) of each file's bytes: what a model card
    records of its train and calibration parts, so an evaluation can tell the files a model was
    fitted on from files it never saw, whatever their names or folders."""
    return sorted(sha256_file(p)[:SHORT_HASH_CHARS] for p in files.paths)
