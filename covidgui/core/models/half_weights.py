"""A ``.keras`` file whose weights are stored in float16: half the bytes, loaded as float32.

Why: a pretrained network's 3.4 M float32 weights make a 14 MB file (models/ keeps every file
under 10 MB, and each retrained version is a copy on the user's disk). Rounding a trained
network's weights to float16 moves its outputs by about a thousandth of their size, far below
what the model card's figures can resolve, and the inference graph stores its weights the same
way (covidgui.core.inference.runtime.export_graph).

The file stays a plain Keras archive: only the datasets of ``model.weights.h5`` change type, and
Keras casts each to its variable's dtype (float32) when it loads, so ``load_model`` in safe mode
reads it with no code of ours. Training continues in float32 from the rounded weights.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

WEIGHTS_MEMBER = "model.weights.h5"  # where Keras 3 keeps a .keras archive's variables


def save_keras_half(keras_model, path: str | Path) -> None:
    """Save ``keras_model`` to ``path`` (.keras) with its float32 weights stored as float16
    (integers, such as a seed generator's state, unchanged) and the archive deflated."""
    import keras

    path = Path(path)
    keras.saving.save_model(keras_model, path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[WEIGHTS_MEMBER] = _halved(members[WEIGHTS_MEMBER])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _halved(h5_bytes: bytes) -> bytes:
    """The HDF5 weights file with every float32 dataset as float16, groups and attributes kept."""
    import h5py

    out = io.BytesIO()
    with h5py.File(io.BytesIO(h5_bytes), "r") as source, h5py.File(out, "w") as target:
        target.attrs.update(source.attrs)

        def copy(name, item):
            if isinstance(item, h5py.Group):
                target.require_group(name).attrs.update(item.attrs)
                return
            data = item[()]
            if data.dtype == np.float32:
                data = data.astype(np.float16)
            target.create_dataset(name, data=data).attrs.update(item.attrs)

        source.visititems(copy)
    return out.getvalue()
