"""Sources, the locked test split, leave-one-source-out, and the training pieces they rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidgui.core.scoring import sources
from covidgui.core.training.augment import acquisition_augment
from covidgui.core.scoring.calibration import fit_indeterminate_band
from covidgui.core.data.dataset import LabelledFiles, split_off
from covidgui.core.inference.preprocess import crop_and_resize, equalize_histogram, prepare
from covidgui.core.training.train import balanced_sample_weight
from tests.conftest import SHARED_DATA, chest_like


def make_data_root(root: Path, per_source: int = 6) -> Path:
    """A folder laid out like ../shared/data, with generated films in every known source."""
    for index, (name, class_folders) in enumerate(sources.SOURCE_FOLDERS.items()):
        folders = [f for fs in class_folders.values() for f in fs]
        for folder in folders:
            target = root / folder
            target.mkdir(parents=True, exist_ok=True)
            for i in range(per_source // len(folders)):
                Image.fromarray(chest_like(64, seed=100 * index + i)).save(target / f"{name}-{folder.replace('/', '_')}-{i}.png")
    (root / "adult-normal" / "masks").mkdir()
    Image.fromarray(chest_like(64)).save(root / "adult-normal" / "masks" / "not-a-film.png")
    return root


def test_sources_are_found_with_their_class_and_the_masks_left_out(tmp_path):
    found = {s.name: s for s in sources.find_sources(make_data_root(tmp_path))}
    assert set(found) == set(sources.SOURCE_FOLDERS)
    assert found["covid-xray-children"].class_name == "Normal"
    assert found["bimcv-radiographydb"].class_name == "Covid"
    siim = found["siim-covid"]  # three class folders (Atypical = Pneumonia), each its own label
    assert siim.classes == ["Covid", "Normal", "Pneumonia"] and siim.class_name == "Covid+Normal+Pneumonia"
    assert siim.labels.count("Normal") == siim.labels.count("Pneumonia") == 2
    assert all(p.parent.name == "Atypical" for p, c in zip(siim.paths, siim.labels) if c == "Pneumonia")
    two = {s.name: s for s in sources.find_sources(tmp_path, classes=["Covid", "Normal"])}["siim-covid"]
    assert two.classes == ["Covid", "Normal"]  # a two-class model's sources keep its classes' films
    assert len(found["covid-xray-covid"].paths) == 6  # Train and Val together
    assert all("masks" not in p.parts for p in found["adult-normal"].paths)


def test_no_sources_is_a_clear_error(tmp_path):
    with pytest.raises(sources.DatasetError, match="No known image sources"):
        sources.find_sources(tmp_path)


def test_the_split_depends_on_the_file_alone():
    paths = [Path(f"/a/img{i}.png") for i in range(2000)]
    roles = [sources.split_role("src", p) for p in paths]
    # The same file gets the same role wherever it lives and whatever else is in the folder.
    assert roles == [sources.split_role("src", Path("/elsewhere") / p.name) for p in paths]
    shares = {r: roles.count(r) / len(roles) for r in ("test", "calibration", "train")}
    assert shares["test"] == pytest.approx(sources.TEST_SHARE, abs=0.03)
    assert shares["calibration"] == pytest.approx(sources.CALIBRATION_SHARE, abs=0.03)


def test_locked_split_parts_are_disjoint_and_name_their_sources(tmp_path):
    found = sources.find_sources(make_data_root(tmp_path, per_source=40))
    split = sources.locked_split(found)
    parts = (split.train, split.calibration, split.test)
    assert sum(len(p) for p in parts) == sum(len(s.paths) for s in found)
    assert not (set(split.train.paths) & set(split.test.paths))
    assert not (set(split.calibration.paths) & set(split.test.paths))
    for part in parts:
        for path, label, group in zip(part.paths, part.labels, part.groups):
            assert part.classes[label] in sources.SOURCE_FOLDERS[group]
    manifest = split.manifest()
    assert manifest["test"]["n"] == len(split.test) and len(manifest["test"]["sha256"]) == 64


def test_leave_one_source_out_never_trains_on_the_left_out_source_or_the_test_part(tmp_path):
    found = sources.find_sources(make_data_root(tmp_path, per_source=20))
    split = sources.locked_split(found)
    seen = []

    class Majority:
        """A stand-in classifier: calls everything COVID-19."""

        class card:
            classes = ["Covid", "Normal", "Pneumonia"]
            positive_class = "Covid"

            @staticmethod
            def display_name(c):
                return {"Covid": "COVID-19"}.get(c, c)

        input_size = 16  # the batch engine decodes the files for a 16-px input
        harmonises = False  # the batch engine's preprocessing switch (Classifier.harmonises)

        def predict_inputs(self, inputs, colourfulness=None, paths=None, lung_attention=False):
            from covidgui.core.inference.classifier import Prediction

            return [Prediction("COVID-19", "COVID-19", "Covid", 0.8,
                               {"COVID-19": 0.8, "Normal": 0.1, "Pneumonia": 0.1}, path=path)
                    for path in paths]

    def train_fn(train, calibration):
        seen.append((set(train.groups), set(train.paths) | set(calibration.paths)))
        return Majority()

    rows = sources.leave_one_source_out(found, train_fn, per_source=5)
    assert sorted(r["source"] for r in rows) == sorted(s.name for s in found)
    # One fold per group of hospitals: siim-covid and bimcv-radiographydb are left out together.
    assert len(seen) == len(found) - 1
    folds = iter(seen)
    for source in found:
        if source.name == "siim-covid":
            continue  # tested in bimcv-radiographydb's fold
        groups, used = next(folds)
        assert source.name not in groups
        assert not used & set(split.test.paths)
        if source.name == "bimcv-radiographydb":
            assert "siim-covid" not in groups
    by_name = {r["source"]: r for r in rows}
    for source in found:
        row = by_name[source.name]
        expected_n = sum(1 for p in source.paths if sources.split_role(source.name, p) != "test")
        assert row["n"] == expected_n
        covid_n = sum(1 for p, c in zip(source.paths, source.labels)
                      if c == "Covid" and sources.split_role(source.name, p) != "test")
        assert row["correct"] == covid_n
        assert row["abnormal"] == expected_n and row["called"]["Covid"] == expected_n
    siim = by_name["siim-covid"]
    assert siim["class"] == "Covid+Normal+Pneumonia" and siim["left_out_with"] == ["bimcv-radiographydb"]
    assert siim["sensitivity"] == 1.0 and siim["specificity"] == 0.0 and siim["auc"] == 0.5
    assert siim["auc_one_vs_rest"] == {"Covid": 0.5, "Normal": 0.5, "Pneumonia": 0.5}
    assert siim["covid_vs_normal"]["specificity"] == 0.0 and set(siim["covid_vs_normal"]["counts"]) == {"Covid", "Normal"}
    table = sources.format_table(rows)
    assert "worst: " in table and "covid-xray-children" in table


def test_select_caps_each_source_with_the_same_sample_every_time():
    files = LabelledFiles(["Covid", "Normal"], [Path(f"{g}{i}") for g in "ab" for i in range(50)],
                          [0] * 50 + [1] * 50, ["a"] * 50 + ["b"] * 50)
    first = sources.select(files, lambda name: True, per_source=10, seed=3)
    assert first.groups.count("a") == first.groups.count("b") == 10
    assert first.paths == sources.select(files, lambda name: True, per_source=10, seed=3).paths
    only_b = sources.select(files, lambda name: name == "b")
    assert set(only_b.groups) == {"b"} and len(only_b) == 50


def test_split_off_keeps_each_files_source():
    files = LabelledFiles(["A"], [Path(f"f{i}") for i in range(10)], [0] * 10, [f"s{i % 2}" for i in range(10)])
    kept, held = split_off(files, 0.3, seed=1)
    for part in (kept, held):
        assert all(g == f"s{int(p.name[1:]) % 2}" for p, g in zip(part.paths, part.groups))


def test_each_class_and_each_source_within_it_weigh_the_same():
    labels = [0] * 90 + [0] * 10 + [1] * 30
    groups = ["big"] * 90 + ["small"] * 10 + ["n"] * 30
    w = balanced_sample_weight(labels, groups, 2)
    labels, groups = np.array(labels), np.array(groups)
    assert w[groups == "big"].sum() == pytest.approx(w[groups == "small"].sum())
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())
    assert w.sum() == pytest.approx(len(labels))
    plain = balanced_sample_weight(labels, None, 2)
    assert plain[groups == "big"].sum() == pytest.approx(0.9 * plain[labels == 0].sum())


def test_acquisition_augmentation_degrades_but_keeps_shape_range_and_reproducibility():
    image = chest_like(224).astype(np.float32) / 255
    outs = [acquisition_augment(image, np.random.default_rng(seed)) for seed in range(20)]
    assert all(o.shape == image.shape and o.dtype == np.float32 and 0 <= o.min() and o.max() <= 1 for o in outs)
    assert any(not np.allclose(o, image) for o in outs)
    assert np.array_equal(acquisition_augment(image, np.random.default_rng(7)),
                          acquisition_augment(image, np.random.default_rng(7)))


def test_prepare_is_crop_and_resize_then_equalisation():
    pixels = np.pad(chest_like(300).astype(np.float32) / 255, 20)  # a black frame to crop
    small, box = crop_and_resize(pixels, 96)
    prepared = prepare(pixels, 96)
    assert box == prepared.crop_box and box[0] > 0
    assert np.array_equal(equalize_histogram(small), prepared.input)


def test_the_indeterminate_band_widens_when_confident_results_are_often_wrong():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 2000)
    probs = np.stack([confidence, 1 - confidence], axis=1)
    labels_good = np.zeros(2000, int)  # always right: the minimum band
    assert fit_indeterminate_band(probs, labels_good) == (0.35, 0.65)
    # Right only as often as the confidence says: results need >= ~0.95 to be right 95 % of the time.
    labels_calibrated = (rng.uniform(size=2000) > confidence).astype(int)
    low, high = fit_indeterminate_band(probs, labels_calibrated)
    assert high >= 0.85 and low == pytest.approx(1 - high)


@pytest.mark.skipif(not (SHARED_DATA / "multisource").is_dir(),
                    reason=f"shared data not found at {SHARED_DATA / 'multisource'} (set COVIDGUI_SHARED_DATA)")
def test_the_real_sources_and_their_locked_test_split():
    found = sources.find_sources(SHARED_DATA)
    assert len(found) == 9
    assert len(sources.find_sources(SHARED_DATA, classes=["Covid", "Normal"])) == 7
    split = sources.locked_split(found)
    for source in found:
        n_test = split.test.groups.count(source.name)
        assert 0.12 < n_test / len(source.paths) < 0.28, source.name


def test_a_subfolder_of_a_class_folder_is_a_source(tmp_path):
    from covidgui.core.data.dataset import scan_class_folders

    for rel in ("Covid/hospital-a/1.png", "Covid/hospital-b/deep/2.png", "Covid/3.png", "Normal/4.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(chest_like(32)).save(tmp_path / rel)
    files = scan_class_folders(tmp_path)
    assert dict(zip((p.name for p in files.paths), files.groups)) == {
        "3.png": "Covid", "1.png": "Covid/hospital-a", "2.png": "Covid/hospital-b", "4.png": "Normal"}


def test_amplitude_mix_keeps_the_phase_and_moves_the_amplitude():
    from covidgui.core.training.augment import amplitude_mix

    rng = np.random.default_rng(0)
    image = chest_like(64).astype(np.float32) / 255
    other = rng.random((64, 64)).astype(np.float32)
    np.testing.assert_allclose(amplitude_mix(image, other, 0.0), image, atol=1e-5)
    half = amplitude_mix(image, other, 0.5)
    spectrum = np.fft.fft2(half)
    # Where the mix stayed inside 0..1 (no clipping), the phase is the image's own.
    centre = np.angle(np.fft.fft2(image))[1:6, 1:6]
    np.testing.assert_allclose(np.angle(spectrum)[1:6, 1:6], centre, atol=0.2)
    assert not np.allclose(half, image, atol=0.01)


def test_amplitude_mix_from_half_spectra_is_the_full_transforms_mix():
    """The mixing reads the real images' half spectra (rfft2); odd and even sizes and a flat band
    (zero amplitude, no phase) give what the full transform's formula gives."""
    from covidgui.core.training.augment import amplitude_mix

    rng = np.random.default_rng(1)
    for size in (32, 33):
        image, other = rng.random((2, size, size)).astype(np.float32)
        image[:5] = 0.0
        full, borrowed = np.fft.fft2(image.astype(np.float64)), np.fft.fft2(other.astype(np.float64))
        amplitude = 0.7 * np.abs(full) + 0.3 * np.abs(borrowed)
        expected = np.clip(np.fft.ifft2(amplitude * np.exp(1j * np.angle(full))).real, 0, 1)
        np.testing.assert_allclose(amplitude_mix(image, other, 0.3), expected, atol=1e-6)


def test_the_threshold_is_chosen_for_the_mean_over_sources():
    rows = [{"class": "Covid", "positive_probabilities": [0.99, 0.97, 0.95, 0.9]},
            {"class": "Normal", "positive_probabilities": [0.9, 0.85, 0.2, 0.1]},
            {"class": "Normal", "positive_probabilities": [0.3, 0.2, 0.1, 0.1]}]
    threshold, mean = sources.choose_threshold(rows)
    # 0.5 gets 4/4, 2/4, 4/4 (mean 10/12); (0.85, 0.9] gets 4/4, 3/4, 4/4 (11/12), and so does
    # (0.9, 0.95] with 3/4, 4/4, 4/4: the tie goes to the threshold nearest 0.5.
    assert threshold == 0.86 and mean == pytest.approx(11 / 12)
    assert sources.choose_threshold(rows[:1] + rows[2:])[0] == 0.5  # nothing to gain: stay at 0.5


def test_each_source_is_judged_by_a_threshold_chosen_without_it():
    rows = [{"source": "c", "class": "Covid", "n": 4, "correct": 4, "positive_probabilities": [0.99, 0.97, 0.95, 0.9]},
            {"source": "n1", "class": "Normal", "n": 4, "correct": 2, "positive_probabilities": [0.9, 0.85, 0.2, 0.1]},
            {"source": "n2", "class": "Normal", "n": 4, "correct": 4, "positive_probabilities": [0.3, 0.2, 0.1, 0.1]}]
    out = {r["source"]: r for r in sources.with_threshold(rows)}
    # Without n1 nothing argues for moving: n1 is judged at 0.5 and keeps its 2/4.
    assert out["n1"]["threshold"] == 0.5 and out["n1"]["correct"] == 2
    # Without c, n1 pulls the threshold above 0.9, which c then pays for.
    assert out["c"]["threshold"] > 0.9 and out["c"]["correct"] < 4


def test_a_three_class_source_has_each_class_against_the_rest_and_covid_against_normal_alone():
    labels = np.array([0] * 4 + [1] * 4 + [2] * 4)  # Covid, Normal, Pneumonia
    probs = np.array([[0.9, 0.05, 0.05]] * 3 + [[0.2, 0.7, 0.1]]  # one Covid called Normal
                     + [[0.1, 0.8, 0.1]] * 4
                     + [[0.6, 0.0, 0.4]] * 2 + [[0.1, 0.1, 0.8]] * 2)  # two Pneumonia called Covid
    row = sources.two_class_figures(labels, probs, ["Covid", "Normal", "Pneumonia"], 0)
    assert row["counts"] == {"Covid": 4, "Normal": 4, "Pneumonia": 4}
    assert row["specificity"] == pytest.approx(6 / 8)  # Covid against the rest: the two Pneumonia count
    versus = row["covid_vs_normal"]  # the Pneumonia films left out
    assert versus["counts"] == {"Covid": 4, "Normal": 4}
    assert versus["sensitivity"] == 0.75 and versus["specificity"] == 1.0 and versus["auc"] == 1.0
    assert row["auc_one_vs_rest"]["Pneumonia"] == 1.0 and row["auc_one_vs_rest"]["Covid"] < 1.0
    assert "auc_one_vs_rest" not in sources.two_class_figures(labels[:8], probs[:8], ["Covid", "Normal", "Pneumonia"], 0)
