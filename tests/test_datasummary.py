"""What a user is told about their folders before training: counts, unreadable files, warnings."""

from __future__ import annotations

from covidgui.core.data.datasummary import summarize_training_data
from tests.tiny_data import make_class_folders


def test_two_good_classes_are_ready_with_a_stratified_seeded_split(tmp_path):
    make_class_folders(tmp_path / "train", {"Covid": 40, "Normal": 40})
    summary = summarize_training_data(tmp_path / "train", val_share=0.25, seed=3)
    assert summary.ok, summary.problems
    assert summary.classes == ["Covid", "Normal"]
    assert summary.train_counts == {"Covid": 30, "Normal": 30}
    assert summary.val_counts == {"Covid": 10, "Normal": 10}
    assert summary.warnings == [] and summary.unreadable == {}
    again = summarize_training_data(tmp_path / "train", val_share=0.25, seed=3)
    assert again.val.paths == summary.val.paths
    assert not set(summary.val.paths) & set(summary.train.paths)


def test_one_class_folder_cannot_train(tmp_path):
    make_class_folders(tmp_path, {"Covid": 25})
    summary = summarize_training_data(tmp_path)
    assert not summary.ok
    assert any("at least two classes" in p for p in summary.problems)


def test_empty_folder_cannot_train(tmp_path):
    summary = summarize_training_data(tmp_path)
    assert not summary.ok
    assert "no class subfolders" in summary.problems[0]
    (tmp_path / "Covid").mkdir()
    (tmp_path / "Normal").mkdir()
    summary = summarize_training_data(tmp_path)
    assert not summary.ok
    assert any("holds no images" in p for p in summary.problems)


def test_missing_folder_is_named(tmp_path):
    summary = summarize_training_data(tmp_path / "nowhere")
    assert not summary.ok and "does not exist" in summary.problems[0]


def test_mismatched_class_names_are_named(tmp_path):
    make_class_folders(tmp_path / "train", {"Covid": 20, "Normal": 20})
    make_class_folders(tmp_path / "val", {"Covid": 5, "Pneumonia": 5})
    summary = summarize_training_data(tmp_path / "train", tmp_path / "val")
    assert not summary.ok
    assert "do not match" in summary.problems[0]
    assert "Pneumonia" in summary.problems[0] and "Normal" in summary.problems[0]


def test_validation_folder_matches_class_names_whatever_their_case(tmp_path):
    make_class_folders(tmp_path / "train", {"Covid": 20, "Normal": 20})
    make_class_folders(tmp_path / "val", {"covid": 4, "NORMAL": 6})
    summary = summarize_training_data(tmp_path / "train", tmp_path / "val")
    assert summary.ok, summary.problems
    assert summary.val_counts == {"Covid": 4, "Normal": 6}


def test_unreadable_files_are_listed_with_the_reason_and_left_out(tmp_path):
    make_class_folders(tmp_path, {"Covid": 20, "Normal": 20})
    (tmp_path / "Covid" / "empty.png").write_bytes(b"")
    (tmp_path / "Normal" / "notes.jpg").write_text("this is a text file")
    summary = summarize_training_data(tmp_path, val_share=0.2)
    assert summary.ok
    assert set(summary.unreadable) == {str(tmp_path / "Covid" / "empty.png"), str(tmp_path / "Normal" / "notes.jpg")}
    assert "empty" in summary.unreadable[str(tmp_path / "Covid" / "empty.png")]
    assert "not an image" in summary.unreadable[str(tmp_path / "Normal" / "notes.jpg")]
    assert sum(summary.train_counts.values()) + sum(summary.val_counts.values()) == 40
    assert any("cannot be read" in w for w in summary.warnings)


def test_a_class_of_only_unreadable_files_cannot_train(tmp_path):
    make_class_folders(tmp_path, {"Covid": 20})
    (tmp_path / "Normal").mkdir()
    for i in range(3):
        (tmp_path / "Normal" / f"{i}.png").write_bytes(b"\x89PNG broken")
    summary = summarize_training_data(tmp_path)
    assert not summary.ok
    assert any("Normal has no readable images" in p for p in summary.problems)


def test_imbalance_and_small_classes_are_warned_about(tmp_path):
    make_class_folders(tmp_path, {"Covid": 10, "Normal": 50})
    summary = summarize_training_data(tmp_path, val_share=0.2)
    assert summary.ok
    text = " ".join(summary.warnings)
    assert "imbalanced" in text and "Normal has 40" in text and "Covid only 8" in text
    assert "Fewer than 20 training images in Covid (8)" in text
    assert "PROBLEM" not in summary.text() and "imbalanced" in summary.text()
