"""The training batches of a whole ``fit`` as one ``tf.data`` stream (:func:`fit_stream`).

Why not hand ``fit`` the sequence itself: Keras then starts a new ``tf.data`` iterator over it for
every epoch (two, in fact), and an epoch's first step often waited 0.7-1 s with the process idle
(timed by batch events on an adaptation fold: 64 films, 4 steps of 0.4 s an epoch). In a pair of
whole runs of such a fold (10 epochs, 3 each, in turn) one stream took 0.93 of the time (median
ratio; 0.74-0.99); in a whole adaptation (six such runs in one process) no gain showed (198 s
against 192 s, one pair): see benchmarks/results/adapt-siim.md, fifth round.
The stream holds exactly the batches Keras read, in the same order, so a model trained either way
has the same weights (tests/test_stream.py checks it).
"""

from __future__ import annotations

import random


def fit_stream(sequence, epochs: int, shuffle: bool = True):
    """(dataset, steps per epoch) for ``model.fit(dataset, steps_per_epoch=..., epochs=epochs)``:
    ``sequence``'s batches (a :func:`covidgui.core.training.sequence.make_sequence`) for ``epochs``
    epochs, read one batch ahead in one background thread. With ``shuffle`` False, the stream for
    ``fit``'s ``validation_data`` (with ``validation_steps``): every epoch's batches in order, as
    Keras evaluates, and Python's ``random`` untouched (the training order draws from it).

    As Keras reads a ``PyDataset`` in ``fit``: the sequence's epoch ends once before the first
    epoch (Keras' ``EpochIterator.reset``) and once before each next one, and each epoch's batches
    come in an order shuffled by Python's ``random`` (``fit(shuffle=True)``). The stream reads
    ahead, so after ``fit`` put the sequence where Keras would have left it:
    ``sequence.set_epoch(epochs_run + 1)``.
    """
    import tensorflow as tf

    first = sequence[0]  # its shapes and types; reading a batch changes nothing in the sequence
    signature = tf.nest.map_structure(lambda a: tf.TensorSpec((None,) + a.shape[1:], tf.as_dtype(a.dtype)), first)

    def batches():
        for _ in range(epochs):
            sequence.on_epoch_end()
            order = list(range(len(sequence)))
            if shuffle:
                random.shuffle(order)
            for i in order:
                yield sequence[i]

    return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(1), len(sequence)
