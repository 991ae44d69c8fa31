"""A model on disk is a set of files, written and read as one unit.

    name.keras       the network (Keras 3, loaded in safe mode, weights stored in float16: see
                     covidgui.core.models.half_weights): what training continues from
    name.tflite      its inference graph, the network the app runs (LiteRT, no TensorFlow; see
                     covidgui.core.inference.runtime)
    name.gate.npz    its input gate (optional; see covidgui.core.inference.gate)
    name.json        its model card, which records the SHA-256 of every other file of the set

The card binds the set together. Loading checks each file against the digest the card records,
so a file that is not the one the card names (a crash between two renames, a gate copied from
another model, a model saved without its gate) is refused with a message that says so, never used
silently. Writing puts every file beside its target under a temporary name first, then renames the
companions, then the network, and the card last: until the card is renamed a reader sees the old
card, whose digests the new files fail; afterwards it sees the new set whole.

Cards written before digests were recorded have no ``files`` entry; such a model loads as before
(its gate, when present, is checked for shape only). A model saved before inference graphs were
written has none; its graph is exported from the ``.keras`` when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
import importlib.resources

from covidgui.core.errors import ModelError
from covidgui.core.io.atomic import temp_beside, write_atomic
from covidgui.core.models.half_weights import save_keras_half
from covidgui.core.models.modelcard import card_path

# Files that travel with a model: role -> suffix that replaces ".keras". The network itself is
# role "model". Another sidecar (say, a reference-data file) is one more entry here.
COMPANION_SUFFIXES: dict[str, str] = {"gate": ".gate.npz", "graph": ".tflite"}
ROLE_NAMES = {"model": "model file", "gate": "input gate", "graph": "inference graph"}
# What a missing companion costs, for its message.
MISSING_MEANS = {"gate": "Without it the app cannot check that an image is a chest X-ray",
                 "graph": "Without it the app cannot run the model"}
# Companions used even when an older card records no digests (the gate predates them; a graph
# with no digest may be stale, and is made again from the .keras instead).
UNCHECKED_ROLES = {"gate"}


BUNDLED_MODEL_NAME = "covid_classifier.keras"


def bundled_model_path() -> Path:
    """The read-only model shipped with the app (``models/covid_classifier.keras``)."""
    return Path(str(importlib.resources.files("covidgui.models") / BUNDLED_MODEL_NAME))


def companion_path(model_path: str | Path, role: str) -> Path:
    """Where the file of ``role`` lives beside ``name.keras``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + COMPANION_SUFFIXES[role])


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_files(card) -> dict:
    """Role -> SHA-256 the card records ({} for an older card); ``card`` is a ModelCard or, for
    the lung model, the card's dict."""
    return (card.get("files") if isinstance(card, dict) else getattr(card, "files", None)) or {}


def verified_companions(model_path: str | Path, card) -> dict[str, Path | None]:
    """Check a model's files against its card; returns role -> the companion's path (or None
    when the model has none). Raises ModelError when a file the card names is missing or is not
    the one the card names."""
    model_path = Path(model_path)
    recorded = recorded_files(card)
    if not recorded:  # an older card: no digests to check against
        return {role: p if role in UNCHECKED_ROLES and (p := companion_path(model_path, role)).is_file() else None
                for role in COMPANION_SUFFIXES}
    if file_digest(model_path) != recorded.get("model"):
        raise ModelError(f"{model_path.name} is not the model its card {card_path(model_path).name} describes "
                         "(a save that did not finish, or files mixed from two models). Save or copy the model "
                         "again with all its files.")
    found: dict[str, Path | None] = {}
    for role in COMPANION_SUFFIXES:
        path = companion_path(model_path, role)
        expected = recorded.get(role)
        if not expected:
            found[role] = None  # the model has none; a stray file of that name is not its own
            continue
        if not path.is_file():
            raise ModelError(f"The {ROLE_NAMES.get(role, role)} {path.name} is missing beside {model_path.name}. "
                             f"{MISSING_MEANS.get(role, 'The model is incomplete')}; copy the model "
                             "with all its files.")
        if file_digest(path) != expected:
            raise ModelError(f"The {ROLE_NAMES.get(role, role)} {path.name} does not belong to {model_path.name} "
                             "(its card records another file). Save or copy the model again with all its files.")
        found[role] = path
    return found


def write_model_set(model_path: str | Path, write_model: Callable[[Path], None], companions: dict[str, bytes | None],
                    card) -> Path:
    """Write a model's files as one unit; returns the model path.

    write_model(tmp): writes the network to the temporary path it is given.
    companions: role -> the file's bytes, or None when the model has none (an old file of that
        role at the target is then removed). card: the ModelCard, or the lung model's card dict;
        its ``files`` is filled in here.
    """
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    temps: dict[str, Path] = {}
    try:
        temps["model"] = temp_beside(model_path, suffix=model_path.suffix)  # Keras wants .keras
        write_model(temps["model"])
        files = {"model": file_digest(temps["model"])}
        for role, data in companions.items():
            if data is None:
                files[role] = None
                continue
            temps[role] = temp_beside(companion_path(model_path, role))
            temps[role].write_bytes(data)
            files[role] = file_digest(temps[role])
        if isinstance(card, dict):
            card["files"] = files
            card_text = json.dumps(card, indent=2) + "\n"
        else:
            card.files = files
            card_text = card.to_json()
        for role in companions:
            if role in temps:
                os.replace(temps[role], companion_path(model_path, role))
                del temps[role]
        os.replace(temps["model"], model_path)
        del temps["model"]
        write_atomic(card_path(model_path), card_text)  # the set is complete from here on
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    for role, data in companions.items():
        if data is None:
            companion_path(model_path, role).unlink(missing_ok=True)
    return model_path


def copy_model_set(source: str | Path, target: str | Path, card) -> Path:
    """Copy a model and its companions (checked against the source card) to ``target`` as one unit,
    with ``card`` (the source's, possibly renamed) as its card."""
    source = Path(source)
    companions = verified_companions(source, card)
    return write_model_set(target, lambda tmp: shutil.copyfile(source, tmp),
                           {role: (p.read_bytes() if p is not None else None) for role, p in companions.items()},
                           card)


def remove_model_set(model_path: str | Path) -> None:
    """Delete a model, its card and its companions (the card first: without it the set is gone)."""
    model_path = Path(model_path)
    card_path(model_path).unlink(missing_ok=True)
    model_path.unlink(missing_ok=True)
    for role in COMPANION_SUFFIXES:
        companion_path(model_path, role).unlink(missing_ok=True)


def save_model(classifier, out_path: str | Path) -> Path:
    """Write a trained or loaded Classifier to ``out_path`` (.keras), its inference graph, its
    input gate and its model card as one unit; returns the model path (every file is written
    under a temporary name and the card, which records the others' digests, is renamed last, so a
    crash never leaves a model with a stranger's gate or a half-written file where a good one was).
    """
    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        out_path = out_path.with_suffix(".keras")
    gate_bytes = classifier.gate.to_bytes() if classifier.gate is not None else None
    write_model_set(out_path, lambda tmp: save_keras_half(classifier.keras_model, tmp),
                    {"gate": gate_bytes, "graph": classifier.graph.flatbuffer}, classifier.card)
    classifier.path = out_path
    return out_path


def add_graph(model_path: str | Path, flatbuffer: bytes, card) -> Path:
    """Give a saved model (checked against its card) its inference graph: the model's files are
    written again as one unit with the graph added; returns the graph's path. For models saved
    before graphs were (scripts/export_graphs.py)."""
    model_path = Path(model_path)
    companions = verified_companions(model_path, card)
    data = {role: (p.read_bytes() if p is not None else None) for role, p in companions.items()}
    data["graph"] = bytes(flatbuffer)
    keras_bytes = model_path.read_bytes()
    write_model_set(model_path, lambda tmp: tmp.write_bytes(keras_bytes), data, card)
    return companion_path(model_path, "graph")
