"""The batches a training run reads (:func:`make_sequence`, a Keras ``PyDataset``).

It decodes in a thread pool, keeps small sets in memory (each film decoded, resized, equalised and
segmented once per run) and streams large ones.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from covidgui.core.errors import ImageLoadError
from covidgui.core.inference.lungs import blank_outside
from covidgui.core.inference.preprocess import equalize_histogram, load_prepared
from covidgui.core.training.augment import acquisition_augment_changed as augment_acquisition
from covidgui.core.training.augment import amplitude_mix_spectra as augment_amplitude_mix
from covidgui.core.training.augment import fourier_spectra as batch_spectra
from covidgui.core.training.lung_guidance import training_masks


# Keep the decoded training set in memory when it fits in this many bytes; stream it otherwise.
CACHE_LIMIT_BYTES = 1_500_000_000
# Films decoded (in the thread pool) and segmented (one pass of the lung model) together.
WARM_CHUNK = 32


def _finish(equalised: np.ndarray, mask: np.ndarray | None, lung_mask: bool) -> np.ndarray:
    """The model input from an equalised image (S, S): blanked outside the lungs for a
    lung-fields-only model (``lung_mask``), and (S, S, 2) with the mask as the second channel when
    there is a mask."""
    x = blank_outside(equalised, mask) if mask is not None and lung_mask else equalised
    return x if mask is None else np.stack([x, mask], axis=-1)


def make_sequence(paths: list[Path], labels: list[int], size: int, batch_size: int, shuffle: bool, seed: int,
                  sample_weight=None, cache: bool | None = None, pool=None,
                  lungs=None, acquisition_augment: bool = False, amplitude_mix: float = 0.0,
                  lung_mask: bool = False, source_ids=None, one_hot: int = 0, harmonise: bool = False):
    """A ``keras.utils.PyDataset`` yielding (x (B, S, S, 1), y (B,), sample_weight (B,)).

    Files that fail to decode get weight 0 (they neither train nor count) and are recorded in
    ``.unreadable``; the batch is never stopped by one bad file.
    sample_weight: (N,) weight of each file in the loss (see :func:`balanced_sample_weight`); None: 1.
    lungs: a :class:`covidgui.core.inference.lungs.LungSegmenter`; then x is (B, S, S, 2), the image and its
        lung mask (:func:`covidgui.core.training.lung_guidance.training_mask`).
    acquisition_augment: blur, noise, lost resolution, re-compression (:mod:`covidgui.core.training.augment`)
        before equalisation; and
    amplitude_mix: share of images whose amplitude spectrum is mixed with that of an image of
        another class in the same batch (strength 0.2-0.6). Both only in ``seq[i]`` (what ``fit``
        reads); ``seq.clean(i)`` gives the batch without them.
    lung_mask: every image blanked outside its lung mask, in every batch (a lung-fields-only model).
    harmonise: every image decoded through :func:`covidgui.core.inference.preprocess.harmonise_storage`
        first, as inference does for such a model.
    source_ids: (N,) int source index of each file, for the source adversary: then ``seq[i]`` gives
        ((x, source (B,)), y, w); ``seq.clean(i)`` always gives x alone.
    one_hot: when > 0, ``seq[i]`` gives y as (B, one_hot) one-hot rows (for a categorical loss with
        label smoothing); ``seq.clean(i)`` always gives class indices.
    """
    import keras

    n_classes = max(labels) + 1 if labels else 0
    if cache is None:
        cache = len(paths) * size * size * 4 <= CACHE_LIMIT_BYTES
    pool = pool or ThreadPoolExecutor(max_workers=os.cpu_count() or 2)

    class _Sequence(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.unreadable: dict[str, str] = {}
            self.colourfulness = np.zeros(len(paths))  # of each source, for the input gate
            self._cache: dict[int, tuple | None] = {}  # index -> loaded item (see _item), None: unreadable
            self._lock = threading.Lock()
            self.set_epoch(0)

        def __len__(self):
            return math.ceil(len(paths) / batch_size)

        def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
            """(image (S, S) resized but not yet equalised, its equalised model input), or None."""
            try:
                # Inference's own decode and preprocessing; augmentation later starts from the
                # resized pixels before equalisation (see _input).
                xray, prepared = load_prepared(paths[index], size, harmonise=harmonise)
            except ImageLoadError as exc:
                with self._lock:
                    self.unreadable[str(paths[index])] = exc.reason
                return None
            self.colourfulness[index] = xray.metadata.get("colourfulness", 0.0)
            return prepared.resized, prepared.input

        def _load_many(self, indices) -> list[tuple | None]:
            """The loaded item of each index (see _item), from the cache or decoded in the pool, the
            lung masks of the new ones from one pass of the segmenter."""
            missing = [j for j in dict.fromkeys(int(j) for j in indices) if not (cache and j in self._cache)]
            decoded = dict(zip(missing, pool.map(self._decode, missing)))
            readable = [j for j in missing if decoded[j] is not None]
            masks = (training_masks(lungs, np.stack([decoded[j][1] for j in readable]))
                     if lungs is not None and readable else [None] * len(readable))
            loaded = {j: None for j in missing}
            for j, mask in zip(readable, masks):
                loaded[j] = self._item(*decoded[j], mask)
            if cache:
                self._cache.update(loaded)
            return [loaded[j] if j in loaded else self._cache[j] for j in (int(j) for j in indices)]

        def _load(self, index: int):
            return self._load_many([index])[0]

        @staticmethod
        def _item(small: np.ndarray, equalised: np.ndarray, mask: np.ndarray | None):
            """(resized image, lung mask or None, its clean model input, whether an augmentation
            that changed nothing leaves exactly the clean input): the clean input (equalised,
            blanked, mask channel) is made once per film, not once per batch that reads it."""
            in_range = small.dtype == np.float32 and small.min() >= 0.0 and small.max() <= 1.0
            return small, mask, _finish(equalised, mask, lung_mask), in_range

        def _input(self, item, epoch_rng) -> np.ndarray:
            """The model input of one loaded item: equalised, augmented when ``epoch_rng`` is given."""
            small, mask, clean, in_range = item
            if epoch_rng is None or not acquisition_augment:
                if clean is not None:
                    return clean
            else:
                small, changed = augment_acquisition(small, epoch_rng)
                if not changed and clean is not None and in_range:
                    return clean
            return _finish(equalize_histogram(small), mask, lung_mask)

        def batch(self, i: int, augmented: bool):
            idx = self.batch_indices(i)
            items = self._load_many(idx)
            # One generator per (epoch, batch): reproducible whatever order the batches are read in.
            rng = np.random.default_rng([seed, self._epoch, i]) if augmented else None
            if rng is not None and amplitude_mix > 0:
                items = self._mix_amplitudes(items, [labels[j] for j in idx], rng)
            blank = np.zeros((size, size) if lungs is None else (size, size, 2), np.float32)
            x = np.stack([self._input(item, rng) if item is not None else blank for item in items])
            x = x[..., None] if lungs is None else x
            y = np.asarray([labels[j] for j in idx], dtype=np.int32)
            w = np.asarray([0.0 if item is None else (1.0 if sample_weight is None else sample_weight[j])
                            for item, j in zip(items, idx)], dtype=np.float32)
            return x, y, w

        @staticmethod
        def _mix_amplitudes(items, batch_labels, rng):
            """Give a share of the batch the amplitude spectrum of an image of another class."""
            readable = [k for k, item in enumerate(items) if item is not None]
            out = list(items)
            spectra = {}  # batch position -> Fourier spectrum, all of them in one call when first needed
            for k in readable:
                others = [o for o in readable if batch_labels[o] != batch_labels[k]]
                if others and rng.random() < amplitude_mix:
                    if not spectra:
                        spectra = dict(zip(readable, batch_spectra(np.stack([items[o][0] for o in readable]))))
                    other = others[int(rng.integers(len(others)))]
                    mixed = augment_amplitude_mix(spectra[k], spectra[other], rng.uniform(0.2, 0.6))
                    # No clean input: the mixed image is equalised afresh.
                    out[k] = (mixed, items[k][1], None, False)
            return out

        def __getitem__(self, i):
            x, y, w = self.batch(i, augmented=acquisition_augment or amplitude_mix > 0)
            if one_hot:
                y = np.eye(one_hot, dtype=np.float32)[y]
            if source_ids is None:
                return x, y, w
            return (x, source_ids[self.batch_indices(i)]), y, w

        def clean(self, i):
            """Batch ``i`` without augmentation (BatchNorm re-estimation, gate, calibration)."""
            return self.batch(i, augmented=False)

        def readable_batches(self, batches: int | None = None):
            """The clean batches' readable films, batch by batch: (x (b, S, S, C), y (b,), file indices (b,)),
            for the first ``batches`` batches (all: None); a batch with no readable film is skipped."""
            for i in range(len(self) if batches is None else min(batches, len(self))):
                x, y, w = self.clean(i)
                keep = w > 0
                if keep.any():
                    yield x[keep], y[keep], self.batch_indices(i)[keep]

        def batch_indices(self, i: int) -> np.ndarray:
            return self._order[i * batch_size:(i + 1) * batch_size]

        def on_epoch_end(self):
            self._epoch += 1
            if shuffle:
                self._rng.shuffle(self._order)

        def set_epoch(self, epoch: int) -> None:
            """Where ``epoch`` calls of :meth:`on_epoch_end` leave the sequence (its order and its
            augmentation draws), however far a reader ran ahead: the order is drawn again from the seed."""
            self._rng = np.random.default_rng(seed)
            self._order = np.arange(len(paths))
            self._epoch = 0
            if shuffle:
                self._rng.shuffle(self._order)
            for _ in range(epoch):
                self.on_epoch_end()

        def warm(self) -> None:
            """Decode everything once (fills the cache, finds unreadable files)."""
            for start in range(0, len(paths), WARM_CHUNK):
                self._load_many(range(start, min(start + WARM_CHUNK, len(paths))))

    seq = _Sequence()
    seq.n_classes = n_classes
    seq.paths_for_warm, seq.pool_for_warm = paths, pool
    return seq


def unguided_count(sequence) -> int:
    """How many cached training images had no plausible lungs (an all-ones mask: no guidance)."""
    return sum(1 for item in sequence._cache.values()
               if item is not None and item[1] is not None and item[1].min() >= 1.0)


def warm_unless_stopped(seq, listener, chunk: int = WARM_CHUNK) -> None:
    """Decode a sequence's files in chunks (filling its cache), stopping early on a cancel."""
    for start in range(0, len(seq.paths_for_warm), chunk):
        if listener.should_stop():
            return
        seq._load_many(range(start, min(start + chunk, len(seq.paths_for_warm))))
