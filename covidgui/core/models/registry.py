"""The user's model versions and which model is active, kept in the user data directory.

Layout (``data_dir()``, from platformdirs; ``COVIDGUI_DATA_DIR`` overrides it, e.g. in tests)::

    models/<version id>.keras      a retrained model  (written with its companions as one unit,
    models/<version id>.gate.npz   its input gate      covidgui.core.models.model_files)
    models/<version id>.json       its model card (records the digests of the other two)
    active.json                    {"model": "<version id>"} or {"model": "bundled"}

The bundled model (``models/covid_classifier.keras`` inside the package) is always listed, is
read-only here, and is what :func:`active_model_path` falls back to when the chosen file is gone.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from covidgui.core.errors import ModelError
from covidgui.core.io.atomic import write_atomic
from covidgui.core.models.model_files import COMPANION_SUFFIXES, bundled_model_path, copy_model_set, remove_model_set, save_model, verified_companions
from covidgui.core.models.modelcard import ModelCard, card_path, read_card

BUNDLED_ID = "bundled"
DATA_DIR_ENV = "COVIDGUI_DATA_DIR"
_ACTIVE_FILE = "active.json"


def data_dir() -> Path:
    """The per-user folder for models and settings (not created here)."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("CovidGUI", "CovidGUI"))


def models_dir() -> Path:
    return data_dir() / "models"


@dataclass
class ModelVersion:
    """One model the user can choose. ``id`` is the file stem, or ``"bundled"``."""

    id: str
    path: Path
    card: ModelCard
    bundled: bool = False

    @property
    def label(self) -> str:
        """How the Models list names it: name, version, and its locked-test figures, or that it
        has none. Never its validation accuracy: those images chose its temperature, gate and
        band (and, for a user's model, its early stop), so the figure flatters it, and a model
        measured on eight images would read better than one measured on five hundred."""
        origin = " (bundled)" if self.bundled else ""
        return f"{self.card.name} v{self.card.version}{origin} — {self.card.locked_test_line()}"


def bundled_version() -> ModelVersion:
    path = bundled_model_path()
    return ModelVersion(BUNDLED_ID, path, read_card(path), bundled=True)


def list_versions() -> list[ModelVersion]:
    """The bundled model first, then the user's versions, oldest first.

    A user model whose card is missing or unreadable (say, a crash between writing the two) is
    skipped, as Classifier.load would refuse it anyway.
    """
    versions = []
    try:
        versions.append(bundled_version())
    except ModelError:
        pass  # a damaged installation; the user's versions are still usable
    folder = models_dir()
    if folder.is_dir():
        user = []
        for path in folder.glob("*.keras"):
            if path.name.startswith("."):
                continue  # a temporary file of a save in progress
            try:
                user.append(ModelVersion(path.stem, path, read_card(path)))
            except ModelError:
                continue
        user.sort(key=lambda v: (v.card.created, v.id))
        versions.extend(user)
    return versions


def get_version(version_id: str) -> ModelVersion:
    for version in list_versions():
        if version.id == version_id:
            return version
    raise ModelError(f"There is no model version {version_id!r}.")


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return slug[:40] or "model"


def _new_version(card: ModelCard, name: str, notes: str) -> Path:
    """Name, number and annotate ``card`` as a new user version; returns its free model path.

    The version number is one more than the highest user version of the same name; the file is
    ``<slug>-<UTC timestamp>.keras`` in :func:`models_dir`.
    """
    name = name.strip()
    if not name:
        raise ModelError("Give the model a name before saving it.")
    same_name = [v for v in list_versions() if not v.bundled and v.card.name == name]
    numbers = [int(v.card.version) for v in same_name if str(v.card.version).isdigit()]
    card.name = name
    card.version = str(max(numbers, default=0) + 1)
    card.notes = notes.strip()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem, n = f"{_slug(name)}-{stamp}", 1
    while (folder / f"{stem}.keras").exists() or card_path(folder / f"{stem}.keras").exists():
        n += 1
        stem = f"{_slug(name)}-{stamp}-{n}"
    return folder / f"{stem}.keras"


def save_version(classifier, name: str, notes: str = "") -> ModelVersion:
    """Store a trained classifier as a new user version (never overwriting one); returns it."""
    path = save_model(classifier, _new_version(classifier.card, name, notes))
    return ModelVersion(path.stem, path, classifier.card)


def save_version_file(model_path: str | Path, name: str, notes: str = "") -> ModelVersion:
    """Store a ``.keras`` file with its card and companions (its input gate; e.g. a model a
    training process wrote to a temporary folder) as a new user version, without loading it.

    The files are checked against the card first and written as one unit
    (covidgui.core.models.model_files), so the new version is whole or absent.
    """
    model_path = Path(model_path)
    card = read_card(model_path)
    verified_companions(model_path, card)  # refuse a damaged set before naming a version after it
    target = copy_model_set(model_path, _new_version(card, name, notes), card)
    return ModelVersion(target.stem, target, card)


def check_free_model_path(out_path: str | Path) -> Path:
    """Refuse a path where writing a model would replace the bundled model (or anything in the
    application's models folder) or a version in the user's models folder; returns the ``.keras``
    path that would be written. ``covidgui train --out`` calls this before training."""
    out = Path(out_path)
    out = (out if out.suffix == ".keras" else out.with_suffix(".keras")).resolve()
    # Every file a save writes: the model, its card and its companions.
    written = [out, card_path(out)] + [out.with_name(out.stem + s) for s in COMPANION_SUFFIXES.values()]
    bundled_folder = bundled_model_path().parent.resolve()
    user_folder = models_dir().resolve()
    for path in written:
        if path.parent == bundled_folder:
            raise ModelError(f"{out} is in the application's own models folder; the bundled model is read-only. "
                             "Choose another --out path.")
        if path.parent == user_folder and path.exists():
            raise ModelError(f"{out} would overwrite a saved model version ({path.name}). Choose another --out "
                             "path, or keep new versions from the Training tab.")
    return out


def active_id() -> str:
    """The chosen version's id (``"bundled"`` when none was chosen or the choice is unreadable)."""
    try:
        data = json.loads((data_dir() / _ACTIVE_FILE).read_text(encoding="utf-8"))
        return str(data.get("model") or BUNDLED_ID)
    except (OSError, ValueError, AttributeError):
        return BUNDLED_ID


def active_model_path() -> Path:
    """The model the app classifies with: the chosen user version if its files are still there,
    else the bundled model."""
    chosen = active_id()
    if chosen != BUNDLED_ID:
        path = models_dir() / f"{chosen}.keras"
        if path.is_file() and card_path(path).is_file():
            return path
    return bundled_model_path()


def set_active(version_id: str) -> ModelVersion:
    """Make a version the active one (persisted atomically); returns it."""
    version = get_version(version_id)
    write_atomic(data_dir() / _ACTIVE_FILE, json.dumps({"model": version.id}) + "\n")
    return version


def delete_version(version_id: str) -> None:
    """Remove a user version's model and card. The bundled model cannot be deleted; deleting the
    active version makes the bundled model active again."""
    if version_id == BUNDLED_ID:
        raise ModelError("The bundled model is part of the application and cannot be deleted.")
    version = get_version(version_id)
    if active_id() == version_id:
        write_atomic(data_dir() / _ACTIVE_FILE, json.dumps({"model": BUNDLED_ID}) + "\n")
    remove_model_set(version.path)
