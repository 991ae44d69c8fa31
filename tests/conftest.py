"""Shared fixtures: generated images, the shared data folder, and a headless Qt platform."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pytest-qt calls processEvents around every test: guard PySide6 6.12.0's leak on None before it
# does (covidgui/gui/qt_compat.py), as the app does at start-up.
from covidgui.gui.qt_compat import guard_none_refcount  # noqa: E402

guard_none_refcount()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("COVIDGUI_SHARED_DATA", REPO.parent / "shared" / "data"))
COVID_VAL = SHARED_DATA / "covid-xray" / "Val"


@pytest.fixture(scope="session")
def covid_val() -> Path:
    """covid-xray/Val from ../shared/data, or skip with the reason."""
    if not (COVID_VAL / "Covid").is_dir():
        pytest.skip(f"shared data not found at {COVID_VAL} (set COVIDGUI_SHARED_DATA to its folder)")
    return COVID_VAL


def chest_like(size: int = 256, seed: int = 0) -> np.ndarray:
    """A synthetic radiograph-like greyscale image (two dark lung fields in a bright body), 0..255."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    body = 0.75 - 0.3 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    lungs = np.exp(-(((x - 0.3) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2)) + \
        np.exp(-(((x - 0.7) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2))
    img = body - 0.45 * lungs + rng.normal(0, 0.03, (size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def chest_png(tmp_path) -> Path:
    path = tmp_path / "chest.png"
    Image.fromarray(chest_like()).save(path)
    return path


@pytest.fixture(scope="session")
def bundled_classifier():
    """The bundled model, loaded once per session (TensorFlow import is slow)."""
    from covidgui.core.inference.classifier import Classifier

    return Classifier.load()


@pytest.fixture(autouse=True)
def user_data_dir(tmp_path_factory, monkeypatch) -> Path:
    """Each test gets its own empty user data directory (model versions, active model), never the
    real one; subprocesses inherit it through the environment."""
    folder = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("COVIDGUI_DATA_DIR", str(folder))
    monkeypatch.setenv("COVIDGUI_LOG_DIR", str(folder / "logs"))  # the crash log, never the real one
    return folder


@pytest.fixture(scope="session", autouse=True)
def one_export_per_network():
    """Export a network's inference graph once per session, not once per test that builds it.

    An export writes a SavedModel and converts it (about 2 s, even for a tiny network), and many
    tests build the same stand-in network again (same architecture, same seed, so the same weights).
    The graph is a function of the architecture and the weights alone, so a network equal in both
    gets the bytes its first export gave; every other network is exported as the app does.
    """
    import hashlib

    from covidgui.core.inference import classifier

    export = classifier.classifier_graph
    graphs: dict[str, bytes] = {}

    def exported_once(keras_model, views=()) -> bytes:
        # Keras numbers each new layer's name (conv2d_7), so the same network built twice differs
        # only in its names: replace each by its place in the network.
        config = keras_model.to_json()
        for place, layer in enumerate([keras_model, *keras_model.layers]):
            config = config.replace(f'"{layer.name}"', f'"#{place}"')
        digest = hashlib.sha256((config + repr(tuple(views))).encode())
        for weight in keras_model.weights:
            digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
        key = digest.hexdigest()
        if key not in graphs:
            graphs[key] = export(keras_model, views)
        return graphs[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(classifier, "classifier_graph", exported_once)
        yield
