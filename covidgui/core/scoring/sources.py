"""Where each image comes from: the labelled sources, a locked test split, leave-one-source-out.

Every source in ``../shared/data`` holds one class only, so a model can learn *which collection an
image comes from* instead of what it shows, and figures on images from the sources it was trained
on cannot show that. Two measures here can:

- :func:`leave_one_source_out`: for each source S, train on all the others and test on S. A model
  that learned a source's look fails on the source it has not seen; this is what predicts how it
  does in a hospital whose images it never saw.
- :func:`locked_split`: a fixed share of every source, chosen by a hash of its file name (so it
  does not move when files are added or the code changes), used for nothing but final figures.
  A separate calibration share fits the temperature, the input gate and the indeterminate band.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidgui.core.data.dataset import LabelledFiles, image_files, manifest_hash
from covidgui.core.errors import DatasetError
from covidgui.core.scoring.evaluation import predict_labelled
from covidgui.core.scoring.metrics import expected_calibration_error

# The order a folder-trained model gets (sorted class folder names, as scan_class_folders does).
CLASSES = ["Covid", "Normal", "Pneumonia"]
# What the app shows for each class of a model trained on these sources.
DISPLAY_NAMES = {"Covid": "COVID-19", "Normal": "Normal", "Pneumonia": "Pneumonia (not COVID-19)"}
# The class that is no finding: a call of any other class is an "abnormal" call.
NORMAL_CLASS = "Normal"

# name -> (class, folders below the data root). covid-xray holds two sources: its COVID-19 images
# (adults, many cropped from publications) and its normals (children of one hospital). nih-cxr14
# comes from the same hospital as rsna-radiographydb's normals (source does not predict class
# between those two); its report-mined labels are noisy (about half show no opacity).
SOURCE_FOLDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "covid-xray-covid": ("Covid", ("covid-xray/Train/Covid", "covid-xray/Val/Covid")),
    "covid-xray-children": ("Normal", ("covid-xray/Train/Normal", "covid-xray/Val/Normal")),
    "adult-normal": ("Normal", ("adult-normal",)),
    "bimcv-radiographydb": ("Covid", ("multisource/bimcv-radiographydb/Covid",)),
    "covid-cxnet": ("Covid", ("multisource/covid-cxnet/Covid",)),
    "rsna-radiographydb": ("Normal", ("multisource/rsna-radiographydb/Normal",)),
    "nih-cxr14": ("Pneumonia", ("pneumonia/nih-cxr14/Pneumonia",)),
    "cohen-web": ("Pneumonia", ("pneumonia/cohen-web/Pneumonia",)),
}

# Shares of every source kept for the final figures only, and for calibration (temperature, gate,
# indeterminate band, early stopping); the rest trains.
TEST_SHARE = 0.20
CALIBRATION_SHARE = 0.15


@dataclass(frozen=True)
class Source:
    """One collection of images of one class. paths: sorted."""

    name: str
    class_name: str
    paths: tuple[Path, ...]


def find_sources(data_root: str | Path, names: list[str] | None = None,
                 classes: list[str] | None = None) -> list[Source]:
    """The sources of ``SOURCE_FOLDERS`` present below ``data_root`` (``../shared/data``).

    names: only these sources; classes: only the sources of these classes (a two-class model's
    sources, say). Raises DatasetError when none is found.
    """
    data_root = Path(data_root)
    sources = []
    for name, (class_name, folders) in SOURCE_FOLDERS.items():
        if (names is not None and name not in names) or (classes is not None and class_name not in classes):
            continue
        paths: list[Path] = []
        for folder in folders:
            folder = data_root / folder
            if folder.is_dir():
                # adult-normal keeps its lung masks in a subfolder: only the top level are films.
                paths.extend(sorted(p for p in image_files(folder) if p.parent == folder))
        if paths:
            sources.append(Source(name, class_name, tuple(paths)))
    if not sources:
        raise DatasetError(f"No known image sources were found below {data_root}.")
    return sources


def split_role(source: str, path: Path) -> str:
    """"test", "calibration" or "train" for one file: a hash of source and file name, so the
    split is fixed by the data alone (no seed, no file order)."""
    digest = hashlib.sha256(f"{source}/{path.name}".encode()).digest()
    share = int.from_bytes(digest[:8], "big") / 2 ** 64
    if share < TEST_SHARE:
        return "test"
    return "calibration" if share < TEST_SHARE + CALIBRATION_SHARE else "train"


@dataclass
class LockedSplit:
    """The three parts of every source, as LabelledFiles whose groups name the sources."""

    train: LabelledFiles
    calibration: LabelledFiles
    test: LabelledFiles

    def manifest(self) -> dict:
        """What a model card records: the rule, and per part a sha256 over (class, file sha256)."""
        return {"rule": f"sha256('<source>/<file name>') as a share: < {TEST_SHARE} test, "
                        f"< {TEST_SHARE + CALIBRATION_SHARE} calibration, else train",
                **{part: {"n": len(files), "sha256": manifest_hash(files)}
                   for part, files in (("train", self.train), ("calibration", self.calibration),
                                       ("test", self.test))}}


def locked_split(sources: list[Source], classes: list[str] | None = None) -> LockedSplit:
    """Split every source by :func:`split_role`; labels index ``classes`` (default: the classes of
    ``CLASSES`` that the sources hold, so two-class sources give a two-class split)."""
    if classes is None:
        classes = [c for c in CLASSES if any(s.class_name == c for s in sources)]
    parts = {role: LabelledFiles(list(classes)) for role in ("train", "calibration", "test")}
    for source in sources:
        label = classes.index(source.class_name)
        for path in source.paths:
            part = parts[split_role(source.name, path)]
            part.paths.append(path)
            part.labels.append(label)
            part.groups.append(source.name)
    return LockedSplit(parts["train"], parts["calibration"], parts["test"])


def select(files: LabelledFiles, keep: Callable[[str], bool], per_source: int | None = None,
           seed: int = 0) -> LabelledFiles:
    """The files whose source passes ``keep``, at most ``per_source`` of each (a seeded sample)."""
    out = LabelledFiles(list(files.classes))
    groups = files.group_names()
    for name in sorted(set(groups)):
        if not keep(name):
            continue
        members = [i for i, g in enumerate(groups) if g == name]
        if per_source is not None and len(members) > per_source:
            members = sorted(random.Random(f"{seed}/{name}").sample(members, per_source))
        for i in members:
            out.paths.append(files.paths[i])
            out.labels.append(files.labels[i])
            out.groups.append(name)
    return out


def score_by_source(classifier, files: LabelledFiles, keep_probabilities: bool = False) -> list[dict]:
    """How each source's images fare: one row per source (see :func:`rows_by_source`)."""
    return rows_by_source(predict_labelled(classifier, files), classifier.card, keep_probabilities)


def rows_by_source(predicted, card, keep_probabilities: bool = False) -> list[dict]:
    """One row per source of :class:`covidgui.core.scoring.evaluation.LabelledPredictions`.

    Rows: source, class, n (readable images), correct (top class is the true class, as if
    "classify anyway" were chosen for gated and indeterminate results, so withholding never
    flatters), called (the source's confusion-matrix row: class -> images whose top class it is),
    abnormal (images called anything but Normal; only when the card has a Normal class),
    ece (calibrated probabilities), rejected (input gate), indeterminate, and
    outside_lungs_flag: how often the shortcut check fired on right and on wrong calls.
    keep_probabilities: also ``positive_probabilities``, each image's calibrated probability of the
        card's positive class, and ``probabilities`` (N, C) in the order of ``classes`` (for
        studying decision thresholds on sources never trained on).
    """
    groups = np.asarray(predicted.groups)
    right = predicted.right
    positive = card.classes.index(card.positive_class or card.classes[0])
    rows = []
    for name in sorted(set(predicted.groups)):
        members = np.flatnonzero(groups == name)
        results = [predicted.results[i] for i in members]
        fired = np.array([bool(r.depends_on_outside_lungs) for r in results])
        probs, labels = predicted.probabilities[members], predicted.labels[members]
        top = probs.argmax(axis=1)
        row = {"source": name, "class": card.classes[labels[0]], "n": len(members),
               "correct": int(right[members].sum()),
               "called": {c: int((top == i).sum()) for i, c in enumerate(card.classes)},
               "ece": round(float(expected_calibration_error(probs, labels)), 4),
               "rejected": sum(int(r.not_xray) for r in results),
               "indeterminate": sum(int(r.indeterminate) for r in results),
               "outside_lungs_flag": {"right": int((fired & right[members]).sum()),
                                      "wrong": int((fired & ~right[members]).sum())}}
        if NORMAL_CLASS in card.classes:
            row["abnormal"] = int((top != card.classes.index(NORMAL_CLASS)).sum())
        if keep_probabilities:
            row["positive_probabilities"] = [round(float(p), 4) for p in probs[:, positive]]
            row["classes"] = list(card.classes)
            row["probabilities"] = np.round(probs, 4).tolist()
        rows.append(row)
    return rows


def leave_one_source_out(sources: list[Source], train_fn: Callable[[LabelledFiles, LabelledFiles], object],
                         per_source: int | None = None, seed: int = 0,
                         on_fold: Callable[[dict], None] | None = None,
                         held_out: list[str] | None = None,
                         score_fn: Callable[[object, LabelledFiles], list[dict]] | None = None) -> list[dict]:
    """For each source S: train on the other sources, test on S. Returns one row per source
    (see :func:`score_by_source`).

    Only the train and calibration parts of the locked split are used (the test part stays locked):
    the model trains on the other sources' train parts and calibrates on their calibration parts;
    S is tested on its train and calibration parts together.
    train_fn: (train files, calibration files) -> a calibrated Classifier.
    per_source: at most this many images of each source in training and calibration (the same
        sample in every fold); the left-out source is tested on all of its images.
    on_fold: called with each row as it is done (results survive a long run's interruption).
    held_out: leave out only these sources (default: each in turn).
    score_fn: (what train_fn returned, the left-out source's files) -> its rows (default:
        :func:`score_by_source` with the probabilities kept); a two-stage decision scores its pair
        of classifiers with :func:`covidgui.core.scoring.two_stage.two_stage_rows`.
    """
    split = locked_split(sources)
    development = split.train.extend(split.calibration)
    rows = []
    for held in sources:
        if held_out is not None and held.name not in held_out:
            continue
        others = lambda name, held=held.name: name != held  # noqa: E731
        train = select(split.train, others, per_source, seed)
        calibration = select(split.calibration, others, None if per_source is None else max(per_source // 3, 1), seed)
        classifier = train_fn(train, calibration)
        held_files = select(development, lambda name, held=held.name: name == held)
        row = (score_fn(classifier, held_files) if score_fn is not None
               else score_by_source(classifier, held_files, keep_probabilities=True))[0]
        rows.append(row)
        if on_fold is not None:
            on_fold(row)
    return rows


def right_at(row: dict, threshold: float, positive_class: str = "Covid") -> np.ndarray:
    """(N,) whether each image of a row (with ``positive_probabilities``) is called right when the
    positive class is called at ``threshold`` and otherwise the most probable other class is (with
    two classes: the other class; rows with ``probabilities`` and ``classes`` for more)."""
    called_positive = np.asarray(row["positive_probabilities"]) >= threshold
    if row["class"] == positive_class:
        return called_positive
    classes = row.get("classes")
    if not classes or len(classes) <= 2:
        return ~called_positive
    probs = np.array(row["probabilities"], dtype=float).reshape(-1, len(classes))
    probs[:, classes.index(positive_class)] = -1.0
    return ~called_positive & (probs.argmax(axis=1) == classes.index(row["class"]))


def share_right_at(rows: list[dict], threshold: float, positive_class: str = "Covid") -> float:
    """The mean over sources of the share of right calls when the positive class is called at
    ``threshold`` (rows with ``positive_probabilities``; see :func:`right_at`)."""
    return float(np.mean([right_at(row, threshold, positive_class).mean() for row in rows]))


def choose_threshold(rows: list[dict], positive_class: str = "Covid") -> tuple[float, float]:
    """The decision threshold on the positive class's calibrated probability that gives the best
    mean share of right calls over the sources of a leave-one-source-out table (rows with
    ``positive_probabilities``); returns (threshold, that mean). Each source weighs the same, so
    a large source cannot buy its own accuracy with a small one's."""
    best = (0.5, -1.0)
    for threshold in np.round(np.arange(0.05, 0.96, 0.01), 2):
        mean = share_right_at(rows, float(threshold), positive_class)
        # Ties go to the threshold nearest 0.5: move the decision no further than the data asks.
        if mean > best[1] + 1e-9 or (abs(mean - best[1]) <= 1e-9 and abs(threshold - 0.5) < abs(best[0] - 0.5)):
            best = (float(threshold), mean)
    return best


def with_threshold(rows: list[dict], positive_class: str = "Covid") -> list[dict]:
    """The rows re-counted as a model with a chosen decision threshold would do on each source,
    without that source having a say: for each row the threshold is chosen on the *other* rows
    (:func:`choose_threshold`), so the figure stays one of a source never used for any choice.
    Each new row has ``correct`` at that threshold and ``threshold`` (the other counts, ``called``
    and ``abnormal``, are left out: they were the top class's)."""
    out = []
    for i, row in enumerate(rows):
        threshold, _ = choose_threshold(rows[:i] + rows[i + 1:], positive_class)
        kept = {k: v for k, v in row.items() if k not in ("called", "abnormal")}
        out.append({**kept, "correct": int(right_at(row, threshold, positive_class).sum()), "threshold": threshold})
    return out


def format_table(rows: list[dict]) -> str:
    """The rows as a text table (source, class, n, correct, %, abnormal %, the confusion row when
    the rows have one, ECE) with the worst source named."""
    called = list(next((r["called"] for r in rows if r.get("called")), {}))
    has_abnormal = any("abnormal" in r for r in rows) and len(called) > 2
    header = f"{'source':<22}{'class':<10}{'n':>6}{'correct':>9}{'%':>8}"
    header += f"{'abnormal':>10}" if has_abnormal else ""
    header += "".join(f"{'->' + c[:8]:>11}" for c in called) + f"{'ECE':>7}"
    lines = [header]
    for row in rows:
        n = row["n"]
        share = row["correct"] / n if n else float("nan")
        ece = "n/a" if row.get("ece") is None else f"{row['ece']:.3f}"
        line = f"{row['source']:<22}{row['class']:<10}{n:>6}{row['correct']:>9}{share:>8.1%}"
        if has_abnormal:
            line += f"{row['abnormal'] / n:>10.1%}" if "abnormal" in row and n else f"{'':>10}"
        line += "".join(f"{row['called'][c]:>11}" if row.get("called") else f"{'':>11}" for c in called)
        lines.append(line + f"{ece:>7}")
    worst = min(rows, key=lambda r: r["correct"] / r["n"] if r["n"] else 1.0)
    mean = np.mean([r["correct"] / r["n"] for r in rows if r["n"]])
    lines.append(f"mean over sources {mean:.1%}; worst: {worst['source']} "
                 f"({worst['correct']}/{worst['n']}, {worst['correct'] / worst['n']:.1%})")
    return "\n".join(lines)
