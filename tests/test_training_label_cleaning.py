"""Label cleaning with an out-of-source first pass (TrainConfig.clean_noisy_sources)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from covidgui.core.data.dataset import scan_class_folders
from covidgui.core.training import label_cleaning as cleaning_module
from covidgui.core.training.train import TrainConfig, clean_noisy_labels, train
from tests.conftest import chest_like

# class -> {source: films}; "nih" (group "Pneumonia/nih") is the noisy Pneumonia source.
LAYOUT = {"Covid": {"c": 6}, "Normal": {"n": 6}, "Pneumonia": {"nih": 6, "web": 4}}


def make_sources(root: Path, layout=LAYOUT, size: int = 32) -> None:
    """Tiny generated films, one subfolder per source inside each class folder."""
    for k, (label, per_source) in enumerate(layout.items()):
        for s, (source, n) in enumerate(per_source.items()):
            (root / label / source).mkdir(parents=True)
            for i in range(n):
                img = chest_like(size, seed=i + 10 * s + 100 * k)
                Image.fromarray(img.astype(np.uint8)).save(root / label / source / f"{source}{i}.png")


def test_cleaning_drops_the_noisy_films_the_first_pass_calls_normal_and_keeps_the_others(tmp_path, monkeypatch):
    make_sources(tmp_path / "train")
    make_sources(tmp_path / "val", {"Covid": {"c": 2}, "Normal": {"n": 2}, "Pneumonia": {"nih": 2, "web": 2}})
    files, val = scan_class_folders(tmp_path / "train"), scan_class_folders(tmp_path / "val")
    seen = {}
    # The first pass calls nih0, nih2 and nih4 Normal (0.5 counts: >= the threshold).
    normal_p = {"nih0": 0.9, "nih1": 0.2, "nih2": 0.5, "nih3": 0.49, "nih4": 0.7, "nih5": np.nan}

    def first_pass(first_train, first_val, to_score, config, listener=None):
        seen.update(train=first_train, val=first_val, score=to_score, config=config)
        return np.array([normal_p[p.stem] for p in to_score.paths])

    monkeypatch.setattr(cleaning_module, "first_pass_normal_probability", first_pass)
    config = TrainConfig(noisy_sources="Pneumonia/nih", clean_noisy_sources=True, clean_threshold=0.5)
    kept, info = clean_noisy_labels(files, val, config)

    # The first pass never saw the noisy source, in training or calibration, and scored only it.
    assert "Pneumonia/nih" not in seen["train"].group_names() + seen["val"].group_names()
    assert seen["train"].classes == ["Covid", "Normal", "Pneumonia"] and len(seen["train"]) == 16
    assert {p.stem for p in seen["score"].paths} == set(normal_p)
    assert sorted(p.stem for p in kept.paths if "nih" in p.stem) == ["nih1", "nih3", "nih5"]  # NaN: unreadable, kept
    assert len(kept) == len(files) - 3 and kept.classes == files.classes
    assert [kept.classes[lab] for lab in kept.labels] == [files.classes[files.labels[files.paths.index(p)]]
                                                          for p in kept.paths]
    assert info["scored"] == {"Pneumonia/nih": 6} and info["dropped"] == {"Pneumonia/nih": 3}
    assert info["dropped_files"] == {"Pneumonia/nih": ["nih0.png", "nih2.png", "nih4.png"]}


def test_cleaning_learns_the_first_pass_from_the_other_classes_when_the_noisy_source_is_its_class_alone(
        tmp_path, monkeypatch):
    layout = {"Covid": {"c": 4}, "Normal": {"n": 4}, "Pneumonia": {"nih": 4}}
    make_sources(tmp_path / "train", layout)
    make_sources(tmp_path / "val", layout)
    files, val = scan_class_folders(tmp_path / "train"), scan_class_folders(tmp_path / "val")
    monkeypatch.setattr(cleaning_module, "first_pass_normal_probability",
                        lambda first_train, first_val, to_score, config, listener=None:
                        np.array([0.8, 0.1, 0.1, 0.1]))
    kept, info = clean_noisy_labels(files, val, TrainConfig(noisy_sources="Pneumonia/nih", clean_noisy_sources=True))
    assert info["first_pass_classes"] == ["Covid", "Normal"] and info["dropped"] == {"Pneumonia/nih": 1}
    assert len(kept) == 11
    # No noisy source among the training files (it is the left-out source): nothing to clean.
    kept, info = clean_noisy_labels(files, val, TrainConfig(noisy_sources="other", clean_noisy_sources=True))
    assert kept is files and "skipped" in info


def test_a_model_trains_with_label_cleaning_and_its_card_records_the_dropped_films(tmp_path):
    make_sources(tmp_path / "train")
    make_sources(tmp_path / "val", {"Covid": {"c": 2}, "Normal": {"n": 2}, "Pneumonia": {"nih": 2, "web": 2}})
    files, val = scan_class_folders(tmp_path / "train"), scan_class_folders(tmp_path / "val")
    config = TrainConfig(epochs=1, batch_size=8, input_size=32, patience=0, lung_guidance=0.0,
                         noisy_sources="Pneumonia/nih", clean_noisy_sources=True, clean_threshold=0.0)
    result = train(files, val, config)
    cleaning = result.classifier.card.training["label_cleaning"]
    # Threshold 0: every readable nih film is dropped, so the model trains on the other 16.
    assert cleaning["dropped"] == {"Pneumonia/nih": 6} and cleaning["first_pass_epochs"] == 1
    assert result.classifier.card.training["train_sources"] == {"Covid/c": 6, "Normal/n": 6, "Pneumonia/web": 4}
    assert result.classifier.card.classes == ["Covid", "Normal", "Pneumonia"]
