"""The environment TensorFlow and Keras must see before their first import."""

from __future__ import annotations

import os


def quiet_tensorflow() -> None:
    """Call before importing Keras: the TensorFlow backend, without TensorFlow's C++ start-up chatter
    (kept when the user set TF_CPP_MIN_LOG_LEVEL or KERAS_BACKEND themselves)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
