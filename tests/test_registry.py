"""The user's model versions: saved atomically beside the bundled model, one active, choice kept."""

from __future__ import annotations

import json

import pytest

from covidgui.core.models import registry
from covidgui.core.errors import ModelError
from covidgui.core.models.model_files import bundled_model_path, companion_path
from covidgui.core.models.modelcard import ModelCard, card_path


@pytest.fixture(scope="module")
def untrained():
    """A small untrained classifier with a card (saving needs no training)."""
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.training.train import build_classifier

    def make():
        card = ModelCard(name="x", version="0", classes=["Covid", "Normal"], input_size=32,
                         metrics={"validation": {"accuracy": 0.9, "n": 20, "correct": 18}})
        return Classifier(build_classifier(32, 2), card)

    return make


def test_the_bundled_model_is_listed_and_active_by_default(user_data_dir):
    versions = registry.list_versions()
    assert [v.id for v in versions] == ["bundled"]
    assert versions[0].bundled and versions[0].path == bundled_model_path()
    assert registry.active_model_path() == bundled_model_path()
    assert "(bundled)" in versions[0].label
    # The bundled card's locked test: n, sensitivity, specificity, AUC (not its validation accuracy).
    test = versions[0].card.test
    assert (f"locked test n={test['n']}: sensitivity {test['sensitivity']:.1%}, specificity "
            f"{test['specificity']:.1%}, AUC {test['auc']:.3f}") in versions[0].label
    assert "validation" not in versions[0].label


def test_data_dir_follows_the_environment(user_data_dir):
    assert registry.data_dir() == user_data_dir
    assert registry.models_dir() == user_data_dir / "models"


def test_save_switch_and_delete_versions(user_data_dir, untrained):
    first = registry.save_version(untrained(), "Hospital A", "trained on ward 3")
    second = registry.save_version(untrained(), "Hospital A")
    assert (first.card.name, first.card.version, first.card.notes) == ("Hospital A", "1", "trained on ward 3")
    assert second.card.version == "2" and second.id != first.id
    assert first.path.parent == user_data_dir / "models" and card_path(first.path).is_file()
    assert json.loads(card_path(first.path).read_text())["notes"] == "trained on ward 3"
    assert [v.id for v in registry.list_versions()] == ["bundled", first.id, second.id]
    # A validation accuracy on 20 images never ranks a model: the list shows locked-test figures or says there are none.
    label = registry.list_versions()[1].label
    assert "no locked-test figures" in label and "90.0%" not in label and "validation" not in label
    # No temporary files are left behind by the atomic saves.
    assert sorted(p.name for p in registry.models_dir().iterdir()) == sorted(
        p.name for v in (first, second) for p in (v.path, card_path(v.path), companion_path(v.path, "graph")))

    registry.set_active(first.id)
    assert registry.active_model_path() == first.path
    assert json.loads((user_data_dir / "active.json").read_text()) == {"model": first.id}

    registry.delete_version(first.id)
    assert not first.path.exists() and not card_path(first.path).exists()
    assert registry.active_model_path() == bundled_model_path()
    assert [v.id for v in registry.list_versions()] == ["bundled", second.id]


def test_the_bundled_model_cannot_be_deleted(user_data_dir):
    before = bundled_model_path().read_bytes()
    with pytest.raises(ModelError, match="cannot be deleted"):
        registry.delete_version("bundled")
    assert bundled_model_path().read_bytes() == before


def test_a_vanished_active_model_falls_back_to_the_bundled_one(user_data_dir, untrained):
    version = registry.save_version(untrained(), "Gone soon")
    registry.set_active(version.id)
    version.path.unlink()
    assert registry.active_model_path() == bundled_model_path()
    assert version.id not in [v.id for v in registry.list_versions()]  # a card alone is not a model
    (user_data_dir / "active.json").write_text("{broken")
    assert registry.active_model_path() == bundled_model_path()


def test_a_model_without_a_card_is_not_listed(user_data_dir, untrained):
    version = registry.save_version(untrained(), "Half written")
    card_path(version.path).unlink()
    assert [v.id for v in registry.list_versions()] == ["bundled"]


def test_a_name_is_needed(user_data_dir, untrained):
    with pytest.raises(ModelError, match="name"):
        registry.save_version(untrained(), "   ")
    assert not registry.models_dir().exists() or not any(registry.models_dir().iterdir())
