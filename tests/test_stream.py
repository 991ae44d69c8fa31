"""The training stream (covidgui.core.training.stream): one tf.data stream for a whole fit gives
exactly what fitting on the sequence itself gave, and leaves the sequence where Keras left it."""

from __future__ import annotations

import numpy as np
import pytest

from covidgui.core.training.sequence import make_sequence
from covidgui.core.training.stream import FitStream, steps_per_call
from tests.test_training_core import make_dataset

EPOCHS = 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("stream"), per_class=10, size=48)


def _sequence(files):
    # Augmented, shuffled, 5 batches of 4 with the last one short: every epoch's draws and order matter.
    return make_sequence(files.paths, files.labels, 32, 4, True, 7, acquisition_augment=True, amplitude_mix=0.5)


def _fit(files, through_stream: bool, validation=None, steps_per_execution: int = 1):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 1))
    hidden = keras.layers.Conv2D(4, 3, strides=2)(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(hidden))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    sequence = _sequence(files)
    val = make_sequence(validation.paths, validation.labels, 32, 4, False, 7) if validation is not None else None
    if through_stream:
        stream = FitStream(sequence, EPOCHS)
        val_stream = FitStream(val, EPOCHS, shuffle=False) if val is not None else None
        history = model.fit(stream.dataset, steps_per_epoch=stream.steps,
                            validation_data=val_stream.dataset if val_stream else None,
                            validation_steps=val_stream.steps if val_stream else None,
                            epochs=EPOCHS, verbose=0, shuffle=False)
        stream.close(len(history.history["loss"]))
    else:
        history = model.fit(sequence, validation_data=val, epochs=EPOCHS, verbose=0)
    return model.get_weights(), history.history, sequence


def test_fitting_from_the_stream_is_fitting_on_the_sequence(files):
    weights, history, sequence = _fit(files, through_stream=False)
    stream_weights, stream_history, stream_sequence = _fit(files, through_stream=True)
    assert stream_history == history
    for a, b in zip(weights, stream_weights):
        np.testing.assert_array_equal(a, b)
    # After fit, the clean batches (BatchNorm re-estimation, the gate) are read in the same order.
    assert stream_sequence._epoch == sequence._epoch == EPOCHS + 1
    np.testing.assert_array_equal(stream_sequence._order, sequence._order)


def test_validating_from_a_stream_is_validating_on_the_sequence(files, tmp_path):
    """Every epoch's validation figures (what early stopping reads) are the same, and validating
    draws nothing from Python's ``random``: the training batches come in the same order."""
    validation = make_dataset(tmp_path / "val", per_class=5, size=48)
    weights, history, _ = _fit(files, through_stream=False, validation=validation)
    stream_weights, stream_history, _ = _fit(files, through_stream=True, validation=validation)
    assert len(history["val_loss"]) == EPOCHS and stream_history == history
    for a, b in zip(weights, stream_weights):
        np.testing.assert_array_equal(a, b)


def test_several_steps_per_call_train_and_validate_the_same(files, tmp_path):
    """fit_loop lets Keras run steps_per_call steps per call of its compiled loop: the same batches
    in the same order, so the same weights and the same epoch figures. A count that does not divide
    the validation steps makes Keras read past the validation stream's epoch (it runs out of data),
    and early stopping would read other figures: which is why steps_per_call divides both."""
    validation = make_dataset(tmp_path / "val", per_class=10, size=48)  # 5 batches, as training
    weights, history, _ = _fit(files, through_stream=True, validation=validation)
    steps = len(_sequence(files))
    assert steps_per_call(steps, steps) == 5
    several, several_history, _ = _fit(files, through_stream=True, validation=validation,
                                       steps_per_execution=steps_per_call(steps, steps))
    assert several_history == history
    for a, b in zip(weights, several):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="ran out of data"):
        _, straddling_history, _ = _fit(files, through_stream=True, validation=validation, steps_per_execution=2)
    assert straddling_history["val_loss"] != history["val_loss"]


def test_steps_per_call_divides_every_epoch():
    assert steps_per_call(27, 9) == 9  # the default training: 27 training and 9 validation steps
    assert steps_per_call(27, 10) == 1 and steps_per_call(29) == 1 and steps_per_call(4) == 4
    assert steps_per_call(100) == 5 and steps_per_call(27, 18, most=3) == 3
    for train in range(1, 60):
        for val in (None, 3, 9, 12):
            k = steps_per_call(train, *([val] if val else []))
            assert 1 <= k <= 9 and train % k == 0 and (val is None or val % k == 0)


def test_set_epoch_undoes_reading_ahead(files):
    ahead, fresh = _sequence(files), _sequence(files)
    for _ in range(5):
        ahead.on_epoch_end()
    ahead.set_epoch(2)
    for _ in range(2):
        fresh.on_epoch_end()
    for i in range(len(fresh)):
        for a, b in zip(ahead[i], fresh[i]):
            np.testing.assert_array_equal(a, b)


def test_a_closed_stream_stops_reading_ahead(files):
    """Early stopping or a cancel ends fit while the stream is reading the next epoch: once closed,
    it changes the sequence no more, so re-estimation reads the batches Keras would have left."""
    sequence, expected = _sequence(files), _sequence(files)
    stream = FitStream(sequence, EPOCHS)
    batches = iter(stream.dataset)
    for _ in range(stream.steps + 1):  # one batch into the second epoch
        next(batches)
    stream.close(1)
    # At most the batch the prefetch was reading when close() came; no epoch of the sequence ends.
    assert len(list(batches)) <= 1
    expected.set_epoch(2)
    assert sequence._epoch == expected._epoch == 2
    np.testing.assert_array_equal(sequence._order, expected._order)


def test_the_stream_does_not_autotune(files):
    """tf.data's autotuning thread sleeps up to a minute between passes once a stream has run a
    while, and deleting the iterator at the end of fit waited for it, idle (16-20 s at the end of
    some adaptation runs). A one-batch prefetch of one generator has nothing to tune."""
    for shuffle in (True, False):
        assert FitStream(_sequence(files), EPOCHS, shuffle=shuffle).dataset.options().autotune.enabled is False
