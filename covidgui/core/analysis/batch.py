"""Classifying a whole folder: finding the files, streaming them through the model, writing a CSV.

The GUI's Batch tab and ``covidgui classify DIR --csv`` both use this module, so a folder gives the
same rows in both. The pipeline keeps memory bounded whatever the folder size: a few threads decode
and preprocess files (Pillow and numpy release the GIL, and JPEGs decode at reduced size), at most
``max_in_flight`` files are between the disk and the model at any moment, and the caller's thread
runs the model on batches while the threads decode the next ones. Only small per-file results
(probabilities, an optional 64-px thumbnail) outlive a batch.
"""

from __future__ import annotations

import csv
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from covidgui.core.errors import CovidGUIError, ImageLoadError
from covidgui.core.io.atomic import temp_beside
from covidgui.core.io.images import is_supported, to_uint8
from covidgui.core.inference.preprocess import load_prepared, resize
from covidgui.core.output.presentation import csv_header, csv_row

# Files per inference batch, and rows handed to the caller at a time (one GUI signal per chunk).
# 16 runs the model as fast per image as larger batches on 2 cores and keeps cancel quick.
DEFAULT_BATCH_SIZE = 16
# Thumbnails are stored as uint8 greyscale no larger than this per side (about 4 KB each).
THUMBNAIL_SIDE = 64


# -- finding files -----------------------------------------------------------------------------------
@dataclass
class FileScan:
    """What a search of folders and files found.

    files: the images to classify, in a stable order (folders sorted, depth first).
    skipped: files inside folders that are not images by their extension (.txt, .DS_Store, ...).
    unreadable: (folder, reason) for each folder that could not be listed.
    """

    files: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def find_images(inputs: Iterable[str | Path]) -> FileScan:
    """Search folders recursively for image files; keep named files as they are.

    inputs: folders and files. A named file is always kept (a damaged or foreign one then gets a
        row with its error); inside folders only files with an image extension are kept and the
        others are counted in ``skipped``. Hidden files (``.DS_Store``) count as skipped too.
    Symbolic links to folders are followed once: a link back to a parent (a loop) is ignored.
    A folder that cannot be listed is recorded in ``unreadable``; the search goes on.
    """
    scan = FileScan()
    visited: set[tuple[int, int]] = set()
    for item in map(Path, inputs):
        if item.is_dir():
            _walk(item, scan, visited)
        else:
            scan.files.append(item)
    return scan


def _walk(root: Path, scan: FileScan, visited: set[tuple[int, int]]) -> None:
    # An explicit stack, not recursion: a 10,000-level chain of folders must not hit Python's limit.
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()  # follows links, so a loop leads back to an already seen (dev, inode)
            key = (info.st_dev, info.st_ino)
            if key in visited:
                continue
            visited.add(key)
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            scan.unreadable.append((folder, exc.strerror or str(exc)))
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks; a dangling link is neither dir nor file
                is_file = not is_dir and entry.is_file()
            except OSError:
                is_dir = is_file = False
            if is_dir:
                subfolders.append(path)
            elif is_file and is_supported(path) and not entry.name.startswith("."):
                scan.files.append(path)
            elif is_file or entry.is_symlink():
                scan.skipped.append(path)
        # Reversed so that popping visits subfolders in name order.
        stack.extend(reversed(subfolders))


# -- the pipeline ------------------------------------------------------------------------------------
@dataclass
class BatchItem:
    """One file's outcome.

    index: position in the list of files given to :func:`classify_stream` (0-based).
    prediction: a core.model.Prediction, or None when the file failed.
    error: why the file could not be classified (a sentence for a clinician), or None.
    thumbnail: uint8 (h, w) greyscale, at most THUMBNAIL_SIDE per side, when asked for.
    """

    index: int
    path: Path
    prediction: object | None = None
    error: str | None = None
    thumbnail: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Decoded:
    model_input: np.ndarray | None
    error: str | None
    thumbnail: np.ndarray | None
    colourfulness: float = 0.0  # for the input gate
    warnings: list[str] = field(default_factory=list)  # short notes about the file (multi-frame, ...)


def make_thumbnail(pixels: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Greyscale pixels (H, W) 0..1 -> uint8 (h, w) with the longer side ``side``, aspect kept."""
    h, w = pixels.shape
    scale = side / max(h, w)
    if scale < 1:
        pixels = resize(pixels, (max(1, round(h * scale)), max(1, round(w * scale))))
    return to_uint8(pixels)


def _decode(classifier, path: Path, thumbnails: bool) -> _Decoded:
    """Runs on a pool thread: file -> model input (S, S). Never raises: a failure becomes an error."""
    try:
        xray, prepared = load_prepared(path, classifier.input_size, harmonise=classifier.harmonises)
        thumb = make_thumbnail(xray.pixels) if thumbnails else None
        return _Decoded(prepared.input, None, thumb, xray.metadata.get("colourfulness", 0.0),
                        list(xray.metadata.get("short_warnings", [])))
    except ImageLoadError as exc:
        return _Decoded(None, exc.reason, None)
    except MemoryError:
        return _Decoded(None, "not enough memory to open this image", None)
    except Exception as exc:  # one odd file must never stop a 10,000-file batch
        return _Decoded(None, f"unexpected error while reading the image ({type(exc).__name__}: {exc})", None)


def classify_stream(
    classifier,
    paths: Sequence[str | Path],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    max_in_flight: int | None = None,
    cancel: threading.Event | None = None,
    thumbnails: bool = False,
    lung_attention: bool = True,
) -> Iterator[list[BatchItem]]:
    """Classify files, yielding their results in order, ``batch_size`` items at a time.

    classifier: a core.model.Classifier (its forward pass is safe to call from any thread).
    workers: decoding threads (default: the number of CPUs).
    max_in_flight: files submitted for decoding but not yet yielded (default: 3 batches); bounds
        memory, since each holds at most its model input and thumbnail once decoded.
    cancel: when set, the stream stops after the batch in progress (files not yet decoded are
        dropped; rows already yielded stay valid). The model runs on one batch at a time, so this
        takes at most one batch's inference (well under a second at the default size).
    thumbnails: also make a small thumbnail of each image (for the GUI's table).
    lung_attention: measure each image's attention on lungs (a batched Grad-CAM; needs the lung
        model, else it stays None); off only to measure what it costs.
    Every path gets exactly one BatchItem, with a prediction or an error, unless cancelled.
    """
    paths = [Path(p) for p in paths]
    workers = workers or os.cpu_count() or 2
    max_in_flight = max(max_in_flight or 3 * batch_size, workers)
    cancel = cancel or threading.Event()
    in_flight: deque[tuple[int, Path, Future]] = deque()
    next_index = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch-decode")
    try:
        while next_index < len(paths) or in_flight:
            pending: list[tuple[int, Path, _Decoded]] = []
            while len(pending) < batch_size and (in_flight or next_index < len(paths)):
                while len(in_flight) < max_in_flight and next_index < len(paths):
                    path = paths[next_index]
                    in_flight.append((next_index, path, pool.submit(_decode, classifier, path, thumbnails)))
                    next_index += 1
                index, path, future = in_flight.popleft()
                # Wake up regularly so that a cancel is noticed during a slow decode.
                while not wait([future], timeout=0.2, return_when=FIRST_COMPLETED).done:
                    if cancel.is_set():
                        return
                if cancel.is_set():
                    return
                pending.append((index, path, future.result()))
            if cancel.is_set():
                return
            yield _classify_pending(classifier, pending, lung_attention)
    finally:
        for _, _, future in in_flight:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def _classify_pending(classifier, pending: list[tuple[int, Path, _Decoded]], lung_attention: bool) -> list[BatchItem]:
    good = [(path, d) for _, path, d in pending if d.error is None]
    predictions = iter(classifier.predict_inputs(np.stack([d.model_input for _, d in good]),
                                                 [d.colourfulness for _, d in good], [path for path, _ in good],
                                                 lung_attention=lung_attention)
                       if good else ())
    items = []
    for index, path, decoded in pending:
        if decoded.error is not None:
            items.append(BatchItem(index, path, error=decoded.error))
        else:
            prediction = next(predictions)
            if decoded.warnings:  # the file's cautions travel with its result (JSON, CSV, table)
                prediction.warnings = decoded.warnings
            items.append(BatchItem(index, path, prediction=prediction, thumbnail=decoded.thumbnail))
    return items


def predict_files(classifier, paths: Sequence[str | Path], *, lung_attention: bool = False,
                  **options) -> Iterator[object]:
    """The labelled loops' view of :func:`classify_stream` (evaluation, model comparison, tests):
    yields, in order, each file's Prediction or an ImageLoadError with the reason it failed.

    lung_attention: off by default, as scoring needs only the probabilities (the Grad-CAM costs a
        batch about 2 %); options: passed to :func:`classify_stream` (batch_size, workers, ...).
    """
    for items in classify_stream(classifier, paths, lung_attention=lung_attention, **options):
        for item in items:
            yield item.prediction if item.ok else ImageLoadError(item.path, item.error)


# -- CSV ---------------------------------------------------------------------------------------------
# The columns and cells come from covidgui.core.output.presentation (csv_header, csv_row), as the
# table, the terminal and the report read their words there; this module only writes them safely.

# A spreadsheet reads a cell that starts with one of these as a formula (=HYPERLINK(...), +cmd|...),
# and a file name can start with any of them: such cells get a leading apostrophe, which
# spreadsheets show as text (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(cell: str) -> str:
    """``cell`` as text a spreadsheet will not evaluate: an apostrophe before a formula start."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


class CsvResults:
    """Writes result rows to a CSV that appears only when complete.

    Rows go to a temporary file beside ``path``; :meth:`commit` moves it into place atomically,
    :meth:`discard` (or leaving a ``with`` block by an exception) removes it, so a cancelled or
    crashed run never leaves a half-written CSV under the user's chosen name.
    """

    def __init__(self, path: str | Path, card):
        self.path = Path(path)
        self.card = card
        try:
            self._tmp = temp_beside(self.path)
            # utf-8-sig so that Excel reads non-ASCII file names correctly; newline="" as csv requires.
            self._file = open(self._tmp, "w", newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise CovidGUIError(f"Cannot write the CSV file {self.path}: {exc.strerror or exc}") from exc
        self._writer = csv.writer(self._file)
        self._writer.writerow([neutralise_formula(c) for c in csv_header(card)])
        self.rows = 0

    def write(self, items: Iterable[BatchItem]) -> None:
        for item in items:
            self._writer.writerow([neutralise_formula(c) for c in csv_row(item.path, item.prediction, item.error, self.card)])
            self.rows += 1

    def commit(self) -> Path:
        self._file.close()
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "CsvResults":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
        elif not self._file.closed:
            self.commit()


def write_csv(path: str | Path, items: Iterable[BatchItem], card) -> Path:
    """Write all ``items`` to ``path`` atomically; returns the path."""
    with CsvResults(path, card) as out:
        out.write(items)
    return out.path
