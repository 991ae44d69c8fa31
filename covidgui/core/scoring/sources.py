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

import csv
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidgui.core.data.dataset import LabelledFiles, image_files, manifest_hash
from covidgui.core.errors import DatasetError
from covidgui.core.scoring.evaluation import predict_labelled
from covidgui.core.scoring.metrics import classification_report, expected_calibration_error

# The order a folder-trained model gets (sorted class folder names, as scan_class_folders does).
CLASSES = ["Covid", "Normal", "Pneumonia"]
# What the app shows for each class of a model trained on these sources.
DISPLAY_NAMES = {"Covid": "COVID-19", "Normal": "Normal", "Pneumonia": "Pneumonia (not COVID-19)"}
# The class that is no finding: a call of any other class is an "abnormal" call.
NORMAL_CLASS = "Normal"

# name -> {class: folders below the data root}. covid-xray holds two sources: its COVID-19 images
# (adults, many cropped from publications) and its normals (children of one hospital). nih-cxr14
# comes from the same hospital as rsna-radiographydb's normals (source does not predict class
# between those two); its report-mined labels are noisy (about half show no opacity). siim-covid
# is the one source that holds two classes from the same hospitals, machines and conversion, read
# by radiologists: Covid = "Typical Appearance" of COVID-19 pneumonia, Normal = "Negative for
# Pneumonia", Pneumonia = "Atypical Appearance" (a pneumonia whose pattern is not COVID-19's: the
# one pneumonia source that shares hospitals, machines and conversion with normals; issue 27). Its
# Indeterminate films are no class.
SOURCE_FOLDERS: dict[str, dict[str, tuple[str, ...]]] = {
    "covid-xray-covid": {"Covid": ("covid-xray/Train/Covid", "covid-xray/Val/Covid")},
    "covid-xray-children": {"Normal": ("covid-xray/Train/Normal", "covid-xray/Val/Normal")},
    "adult-normal": {"Normal": ("adult-normal",)},
    "bimcv-radiographydb": {"Covid": ("multisource/bimcv-radiographydb/Covid",)},
    "covid-cxnet": {"Covid": ("multisource/covid-cxnet/Covid",)},
    "rsna-radiographydb": {"Normal": ("multisource/rsna-radiographydb/Normal",)},
    "nih-cxr14": {"Pneumonia": ("pneumonia/nih-cxr14/Pneumonia",)},
    "cohen-web": {"Pneumonia": ("pneumonia/cohen-web/Pneumonia",)},
    "siim-covid": {"Covid": ("siim-covid/Covid",), "Normal": ("siim-covid/Normal",),
                   "Pneumonia": ("siim-covid/Atypical",)},
}

# Sources whose file stem is a study id: the split hashes the stem, so a study never straddles
# two parts whatever its file is called.
SPLIT_BY_STUDY_ID = frozenset({"siim-covid"})

# Sources from one group of hospitals, left out together in leave-one-source-out: SIIM's BIMCV
# films come from the same Valencian hospitals, period and patients (follow-up films) as
# bimcv-radiographydb, so a fold that kept one while testing the other would test a hospital it knows.
HOSPITAL_GROUPS: dict[str, str] = {"bimcv-radiographydb": "valencia-bimcv", "siim-covid": "valencia-bimcv"}

# SIIM's radiologists' reading of 205 bimcv-radiographydb films (file -> RSNA category), below the
# data root: the PCR label of that source says COVID-19 where a third of them show no pneumonia.
BIMCV_READ_BY_SIIM = "siim-covid/bimcv-radiographydb-read-by-siim.tsv"
NEGATIVE_READING = "Negative for Pneumonia"
# What find_sources does with the bimcv-radiographydb films SIIM's radiologists read as Negative for
# Pneumonia: keep them as Covid (their PCR label), drop them, or relabel them Normal (what the film
# shows; the source then holds two classes of one hospital).
BIMCV_POLICIES = ("keep", "drop-read-negative", "relabel-read-negative", "drop-source")


def hospital_group(source: str) -> str:
    """The group of hospitals a source comes from (its own name when it is alone)."""
    return HOSPITAL_GROUPS.get(source, source)


def source_classes(name: str) -> list[str]:
    """The classes a known source holds, in SOURCE_FOLDERS order."""
    return list(SOURCE_FOLDERS[name])


# Shares of every source kept for the final figures only, and for calibration (temperature, gate,
# indeterminate band, early stopping); the rest trains.
TEST_SHARE = 0.20
CALIBRATION_SHARE = 0.15


@dataclass(frozen=True)
class Source:
    """One collection of images, of one class or (siim-covid) more. paths: sorted within each
    class; labels: each path's class name."""

    name: str
    paths: tuple[Path, ...]
    labels: tuple[str, ...]

    @property
    def classes(self) -> list[str]:
        """The classes the source holds, in ``CLASSES`` order."""
        return [c for c in CLASSES if c in self.labels] + sorted(set(self.labels) - set(CLASSES))

    @property
    def class_name(self) -> str:
        """The class of a one-class source; "Covid+Normal" for a source of several."""
        return "+".join(self.classes)

    def describe(self) -> str:
        """``name (class, n)``, or ``name (Covid n1, Normal n2)`` for a source of several classes."""
        if len(self.classes) == 1:
            return f"{self.name} ({self.class_name}, {len(self.paths)})"
        return f"{self.name} (" + ", ".join(f"{c} {self.labels.count(c)}" for c in self.classes) + ")"


def find_sources(data_root: str | Path, names: list[str] | None = None,
                 classes: list[str] | None = None, bimcv: str = "keep") -> list[Source]:
    """The sources of ``SOURCE_FOLDERS`` present below ``data_root`` (``../shared/data``).

    names: only these sources; classes: only these classes' files (a two-class model's sources,
    say; a source keeps the files of the classes asked for). bimcv: what to do with the
    bimcv-radiographydb films SIIM's radiologists read as Negative for Pneumonia (``BIMCV_POLICIES``).
    Raises DatasetError when none is found.
    """
    if bimcv not in BIMCV_POLICIES:
        raise ValueError(f"bimcv must be one of {BIMCV_POLICIES}, not {bimcv!r}")
    data_root = Path(data_root)
    read_negative = _read_negative(data_root) if bimcv != "keep" else set()
    sources = []
    for name, class_folders in SOURCE_FOLDERS.items():
        if (names is not None and name not in names) or (bimcv == "drop-source" and name == "bimcv-radiographydb"):
            continue
        paths: list[Path] = []
        labels: list[str] = []
        for class_name, folders in class_folders.items():
            if classes is not None and class_name not in classes:
                continue
            for folder in folders:
                folder = data_root / folder
                if folder.is_dir():
                    # adult-normal keeps its lung masks in a subfolder: only the top level are films.
                    found = sorted(p for p in image_files(folder) if p.parent == folder)
                    paths.extend(found)
                    labels.extend([class_name] * len(found))
        if name == "bimcv-radiographydb" and read_negative:
            paths, labels = _apply_reading(paths, labels, read_negative, bimcv, classes)
        if paths:
            sources.append(Source(name, tuple(paths), tuple(labels)))
    if not sources:
        raise DatasetError(f"No known image sources were found below {data_root}.")
    return sources


def _read_negative(data_root: Path) -> set[str]:
    """File names of the bimcv-radiographydb films SIIM's radiologists read as Negative for Pneumonia."""
    table = data_root / BIMCV_READ_BY_SIIM
    if not table.is_file():
        raise DatasetError(f"The SIIM reading of bimcv-radiographydb ({table}) is missing.")
    with table.open(encoding="utf-8", newline="") as handle:
        return {row["bimcv_radiographydb_file"] for row in csv.DictReader(handle, delimiter="\t")
                if (row.get("siim_study_label") or "").strip() == NEGATIVE_READING}


def _apply_reading(paths, labels, read_negative, policy, classes):
    """bimcv-radiographydb's files and labels after ``policy`` for the films read as negative."""
    out_paths, out_labels = [], []
    for path, label in zip(paths, labels):
        if path.name in read_negative:
            if policy == "drop-read-negative":
                continue
            if policy == "relabel-read-negative":
                if classes is not None and NORMAL_CLASS not in classes:
                    continue
                label = NORMAL_CLASS
        out_paths.append(path)
        out_labels.append(label)
    return out_paths, out_labels


def split_role(source: str, path: Path) -> str:
    """"test", "calibration" or "train" for one file: a hash of source and file name (of source and
    study id, the file stem, for ``SPLIT_BY_STUDY_ID``), so the split is fixed by the data alone
    (no seed, no file order)."""
    key = path.stem if source in SPLIT_BY_STUDY_ID else path.name
    digest = hashlib.sha256(f"{source}/{key}".encode()).digest()
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
        return {"rule": f"sha256('<source>/<file name>') (siim-covid: '<source>/<study id>') as a share: < {TEST_SHARE} test, "
                        f"< {TEST_SHARE + CALIBRATION_SHARE} calibration, else train",
                **{part: {"n": len(files), "sha256": manifest_hash(files)}
                   for part, files in (("train", self.train), ("calibration", self.calibration),
                                       ("test", self.test))}}


def locked_split(sources: list[Source], classes: list[str] | None = None) -> LockedSplit:
    """Split every source by :func:`split_role`; labels index ``classes`` (default: the classes of
    ``CLASSES`` that the sources hold, so two-class sources give a two-class split)."""
    if classes is None:
        classes = [c for c in CLASSES if any(c in s.labels for s in sources)]
    parts = {role: LabelledFiles(list(classes)) for role in ("train", "calibration", "test")}
    for source in sources:
        for path, class_name in zip(source.paths, source.labels):
            part = parts[split_role(source.name, path)]
            part.paths.append(path)
            part.labels.append(classes.index(class_name))
            part.groups.append(source.name)
    return LockedSplit(parts["train"], parts["calibration"], parts["test"])


def select(files: LabelledFiles, keep: Callable[[str], bool], per_source: int | None = None,
           seed: int = 0) -> LabelledFiles:
    """The files whose source passes ``keep``, at most ``per_source`` of each source's class (a
    seeded sample: a source of two classes gives ``per_source`` of each)."""
    out = LabelledFiles(list(files.classes))
    groups = files.group_names()
    for name in sorted(set(groups)):
        if not keep(name):
            continue
        in_source = [i for i, g in enumerate(groups) if g == name]
        labels = sorted({files.labels[i] for i in in_source})
        members = []
        for label in labels:
            of_class = [i for i in in_source if files.labels[i] == label]
            if per_source is not None and len(of_class) > per_source:
                # One-class sources keep the seed string they always had, so earlier tables reproduce.
                key = f"{seed}/{name}" if len(labels) == 1 else f"{seed}/{name}/{files.classes[label]}"
                of_class = random.Random(key).sample(of_class, per_source)
            members.extend(of_class)
        for i in sorted(members):
            out.paths.append(files.paths[i])
            out.labels.append(files.labels[i])
            out.groups.append(name)
    return out


def share_of(files: LabelledFiles, source: str, fraction: float, seed: int = 0) -> LabelledFiles:
    """``files`` with only a seeded ``fraction`` of ``source``'s films of each class (the classes'
    ratio kept; the other sources whole), for a learning curve: what fewer films of a source cost.
    Each smaller share is a subset of every larger one at the same seed."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a share of {source} must be in (0, 1], not {fraction}")
    groups = files.group_names()
    if source not in groups:
        raise ValueError(f"no films of the source {source!r} to take a share of")
    dropped: set[int] = set()
    for label in sorted(set(files.labels)):
        of_class = [i for i, (group, film_label) in enumerate(zip(groups, files.labels))
                    if group == source and film_label == label]
        order = random.Random(f"{seed}/{source}/{files.classes[label]}/share").sample(of_class, len(of_class))
        dropped.update(order[round(fraction * len(of_class)):])
    return files.subset([i not in dropped for i in range(len(files))])


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
    A source of several classes (siim-covid) has class "Covid+Normal" (or "Covid+Normal+Pneumonia")
    and also ``auc``, ``sensitivity`` and ``specificity`` of the card's positive class against the
    rest (at the model's own call), ``counts`` (images per class) and ``confusion`` (true class ->
    called class -> images); with three classes also ``auc_one_vs_rest`` and ``covid_vs_normal``
    (see :func:`two_class_figures`).
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
        present = sorted(set(labels.tolist()))
        if len(present) > 1:
            row["class"] = "+".join(card.classes[i] for i in present)
            row.update(two_class_figures(labels, probs, card.classes, positive))
            if keep_probabilities:
                row["labels"] = labels.tolist()
        rows.append(row)
    return rows


def two_class_figures(labels: np.ndarray, probs: np.ndarray, classes: list[str], positive: int) -> dict:
    """The positive class's AUC (against the rest), sensitivity and specificity of the top-class
    call with their 95 % Wilson intervals, images per class and the confusion (true -> called ->
    images) of a source of several classes (:func:`~covidgui.core.scoring.metrics.classification_report`)."""
    report = classification_report(labels, probs, classes, classes[positive])
    stats = report["per_class"][classes[positive]]
    present = sorted(set(labels.tolist()))

    def rounded(value):
        return None if value is None else round(float(value), 4)

    row = {"auc": rounded(report["auc"]), "sensitivity": rounded(report["sensitivity"]),
           "specificity": rounded(report["specificity"]),
           "sensitivity_ci95": [rounded(v) for v in stats["sensitivity_ci95"]],
           "specificity_ci95": [rounded(v) for v in stats["specificity_ci95"]],
           "counts": {classes[i]: int((labels == i).sum()) for i in present},
           "confusion": {classes[i]: dict(zip(classes, report["confusion_matrix"][i])) for i in present}}
    if len(present) > 2:
        # A source of three classes (siim-covid with its Atypical films): each class against the
        # rest, and the two-class question (positive against Normal) on those two classes' films
        # alone, comparable with a two-class model's figures on the same films.
        row["auc_one_vs_rest"] = {classes[i]: rounded(classification_report(labels, probs, classes,
                                                                            classes[i])["auc"]) for i in present}
        if NORMAL_CLASS in classes and classes.index(NORMAL_CLASS) in present:
            pair = np.isin(labels, [positive, classes.index(NORMAL_CLASS)])
            versus = two_class_figures(labels[pair], probs[pair], classes, positive)
            row[f"{classes[positive].lower()}_vs_normal"] = {k: versus[k] for k in (
                "auc", "sensitivity", "specificity", "sensitivity_ci95", "specificity_ci95", "counts")}
    return row


def leave_one_source_out(sources: list[Source], train_fn: Callable[[LabelledFiles, LabelledFiles], object],
                         per_source: int | None = None, seed: int = 0,
                         on_fold: Callable[[dict], None] | None = None,
                         held_out: list[str] | None = None,
                         score_fn: Callable[[object, LabelledFiles], list[dict]] | None = None) -> list[dict]:
    """For each source S: train on the other sources, test on S. Returns one row per source
    (see :func:`score_by_source`).

    Sources of one group of hospitals (``HOSPITAL_GROUPS``) are left out together: one model,
    trained without any of them, is tested on each of them (one row each).
    Only the train and calibration parts of the locked split are used (the test part stays locked):
    the model trains on the other sources' train parts and calibrates on their calibration parts;
    S is tested on its train and calibration parts together.
    train_fn: (train files, calibration files) -> a calibrated Classifier.
    per_source: at most this many images of each source in training and calibration (the same
        sample in every fold); the left-out source is tested on all of its images.
    on_fold: called with each row as it is done (results survive a long run's interruption).
    held_out: leave out only these sources' groups (default: each in turn).
    score_fn: (what train_fn returned, the left-out source's files) -> its rows (default:
        :func:`score_by_source` with the probabilities kept); a two-stage decision scores its pair
        of classifiers with :func:`covidgui.core.scoring.two_stage.two_stage_rows`.
    """
    split = locked_split(sources)
    development = split.train.extend(split.calibration)
    rows = []
    for group in dict.fromkeys(hospital_group(s.name) for s in sources):
        members = [s.name for s in sources if hospital_group(s.name) == group]
        if held_out is not None and not set(members) & set(held_out):
            continue
        others = lambda name, group=group: hospital_group(name) != group  # noqa: E731
        train = select(split.train, others, per_source, seed)
        calibration = select(split.calibration, others, None if per_source is None else max(per_source // 3, 1), seed)
        classifier = train_fn(train, calibration)
        for member in members:
            held_files = select(development, lambda name, member=member: name == member)
            row = (score_fn(classifier, held_files) if score_fn is not None
                   else score_by_source(classifier, held_files, keep_probabilities=True))[0]
            if len(members) > 1:
                row["left_out_with"] = [m for m in members if m != member]
            rows.append(row)
            if on_fold is not None:
                on_fold(row)
    return rows


def right_at(row: dict, threshold: float, positive_class: str = "Covid") -> np.ndarray:
    """(N,) whether each image of a row (with ``positive_probabilities``) is called right when the
    positive class is called at ``threshold`` and otherwise the most probable other class is (with
    two classes: the other class; rows with ``probabilities`` and ``classes`` for more). A row of a
    source of several classes carries each image's true class in ``labels`` (indices into ``classes``)."""
    called_positive = np.asarray(row["positive_probabilities"]) >= threshold
    classes = row.get("classes")
    if "labels" in row:
        truth = np.array([classes[i] for i in row["labels"]])
    else:
        truth = np.full(len(called_positive), row["class"])
    right = np.where(truth == positive_class, called_positive, ~called_positive)
    if not classes or len(classes) <= 2:
        return right
    probs = np.array(row["probabilities"], dtype=float).reshape(-1, len(classes))
    probs[:, classes.index(positive_class)] = -1.0
    other_call = np.array(classes)[probs.argmax(axis=1)]
    return np.where(truth == positive_class, called_positive, ~called_positive & (other_call == truth))


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
    single = [r for r in rows if r["n"] and "+" not in r["class"]]
    mean = np.mean([r["correct"] / r["n"] for r in single]) if single else float("nan")
    lines.append(f"mean over one-class sources {mean:.1%}; worst: {worst['source']} "
                 f"({worst['correct']}/{worst['n']}, {worst['correct'] / worst['n']:.1%})")
    for row in rows:
        if "+" in row["class"]:
            lines.append(f"{row['source']} ({row['class']}, {row.get('counts')}): AUC {_fmt(row.get('auc'))}, "
                         f"sensitivity {_fmt(row.get('sensitivity'))}, specificity {_fmt(row.get('specificity'))}, "
                         f"ECE {_fmt(row.get('ece'))}")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def single_class_mean(rows: list[dict]) -> float:
    """The mean share of right calls over the rows of one-class sources (the figure earlier
    leave-one-source-out tables report)."""
    return float(np.mean([r["correct"] / r["n"] for r in rows if r["n"] and "+" not in r["class"]]))
