"""The batches of a whole ``fit`` as one ``tf.data`` stream (:class:`FitStream`).

Why not hand ``fit`` the sequence itself: Keras then starts a new ``tf.data`` iterator over it for
every epoch (two, in fact), and an epoch's first step often waited 0.7-1 s with the process idle
while the old one was deleted (the wait is tf.data's autotuning thread: see the options below;
measured: benchmarks/results/adapt-siim.md, fifth and sixth rounds). The stream holds
exactly the batches Keras read, in the same order, so a model trained either way has the same
weights (tests/test_stream.py checks it).
"""

from __future__ import annotations

import math
import random
import threading

# Most training steps Keras runs per call of its compiled loop (compile's steps_per_execution).
# Between calls Python runs the callbacks and launches the next step while the cores wait; 9 steps
# a call made the default training 1-10 % faster (median 5 % over three pairs) with the same
# weights to the bit (benchmarks/results/training-profile.md). Progress and a cancel are then
# seen every call (about 1.5 s), not every step.
MOST_STEPS_PER_CALL = 9


def steps_per_call(*steps_per_epoch: int, most: int = MOST_STEPS_PER_CALL) -> int:
    """The most steps (<= ``most``) per call of Keras' loop that divides each of ``steps_per_epoch``
    (the training stream's, and the validation stream's when fit validates): with a count that does
    not divide the validation steps, Keras reads past the validation stream's epoch and reports other
    validation figures, which early stopping reads (tests/test_stream.py)."""
    common = math.gcd(*steps_per_epoch)
    return max(d for d in range(1, most + 1) if common % d == 0)


class FitStream:
    """``sequence``'s batches (a :func:`covidgui.core.training.sequence.make_sequence`) for
    ``epochs`` epochs, read one batch ahead in a background thread: ``model.fit(stream.dataset,
    steps_per_epoch=stream.steps, ...)``, or with ``shuffle`` False as ``validation_data`` (with
    ``validation_steps``): every epoch's batches in order, as Keras evaluates, and Python's
    ``random`` untouched (the training order draws from it).

    As Keras reads a ``PyDataset`` in ``fit``: the sequence's epoch ends once before the first
    epoch (Keras' ``EpochIterator.reset``) and once before each next one, and each epoch's batches
    come in an order shuffled by Python's ``random`` (``fit(shuffle=True)``). Call :meth:`close`
    when ``fit`` returns: the stream has read ahead, and may still be reading when early stopping
    or a cancel ended ``fit`` before its last epoch.
    """

    def __init__(self, sequence, epochs: int, shuffle: bool = True):
        import tensorflow as tf

        self.sequence, self.steps = sequence, len(sequence)
        self._epochs, self._shuffle = epochs, shuffle
        self._lock, self._closed = threading.Lock(), False
        first = sequence[0]  # its shapes and types; reading a batch changes nothing in the sequence
        signature = tf.nest.map_structure(lambda a: tf.TensorSpec((None,) + a.shape[1:], tf.as_dtype(a.dtype)),
                                          first)
        # Without tf.data's autotuning: its model thread sleeps between passes for up to a minute
        # once a stream has run a while, and ending fit (deleting its iterator) waited for that
        # sleep, idle, 16-20 s in some adaptation runs (benchmarks/results/adapt-siim.md, sixth
        # round). A one-batch prefetch of one generator has nothing to tune.
        options = tf.data.Options()
        options.autotune.enabled = False
        self.dataset = (tf.data.Dataset.from_generator(self._batches, output_signature=signature).prefetch(1)
                        .with_options(options))

    def _batches(self):
        for _ in range(self._epochs):
            with self._lock:  # everything that changes shared state, only while the stream is open
                if self._closed:
                    return
                self.sequence.on_epoch_end()
                order = list(range(self.steps))
                if self._shuffle:
                    random.shuffle(order)
            for i in order:
                with self._lock:
                    if self._closed:
                        return
                    batch = self.sequence[i]
                yield batch

    def close(self, epochs_run: int) -> None:
        """Stop reading and put the sequence where Keras would have left it after ``epochs_run``
        epochs (its epoch ended ``epochs_run + 1`` times), so what reads its clean batches next
        (BatchNorm re-estimation, the gate) reads them in the same order."""
        with self._lock:
            self._closed = True
            self.sequence.set_epoch(epochs_run + 1)
