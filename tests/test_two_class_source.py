"""A source that holds both classes (siim-covid): its split by study, its rows (AUC, sensitivity,
specificity), its hospital group, what is done with the PCR-labelled BIMCV films its radiologists
read as negative, and the calibration (temperature and logit offsets) fitted on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidgui.core.errors import DatasetError
from covidgui.core.inference.classifier import Prediction, softmax
from covidgui.core.scoring import sources
from covidgui.core.scoring.calibration import fit_temperature, fit_temperature_and_bias
from covidgui.core.scoring.evaluation import LabelledPredictions
from covidgui.core.data.dataset import LabelledFiles
from covidgui.core.training.train import TrainConfig, down_weight_sources, source_factors
from tests.conftest import chest_like


class Card:
    classes = ["Covid", "Normal"]
    positive_class = "Covid"


def two_class_predictions(covid_probs_of_covid, covid_probs_of_normal, group="siim-covid"):
    probs = [[p, 1 - p] for p in covid_probs_of_covid + covid_probs_of_normal]
    labels = [0] * len(covid_probs_of_covid) + [1] * len(covid_probs_of_normal)
    results = [Prediction("x", "x", Card.classes[int(np.argmax(p))], max(p), {}) for p in probs]
    return LabelledPredictions(np.array(labels), np.array(probs), results, [group] * len(labels))


def test_the_study_id_decides_a_siim_films_part_and_other_sources_keep_their_rule():
    stems = [f"{i:012x}" for i in range(300)]
    # A study keeps its part whatever its file is called or stored as.
    assert ([sources.split_role("siim-covid", Path(f"Covid/{s}.jpg")) for s in stems]
            == [sources.split_role("siim-covid", Path(f"Normal/{s}.png")) for s in stems])
    # One-class sources still hash the whole file name (the v2.0.0 split does not move).
    assert (sources.split_role("adult-normal", Path("a.jpg")) != sources.split_role("adult-normal", Path("a.png"))
            or sources.split_role("adult-normal", Path("b.jpg")) != sources.split_role("adult-normal", Path("b.png"))
            or sources.split_role("adult-normal", Path("c.jpg")) != sources.split_role("adult-normal", Path("c.png")))


def test_a_two_class_source_row_reports_auc_sensitivity_and_specificity():
    predicted = two_class_predictions([0.9, 0.8, 0.7, 0.4], [0.6, 0.3, 0.2, 0.1, 0.05])
    row = sources.rows_by_source(predicted, Card(), keep_probabilities=True)[0]
    assert row["class"] == "Covid+Normal" and row["n"] == 9
    assert row["sensitivity"] == 0.75 and row["specificity"] == 0.8
    assert row["auc"] == pytest.approx((3 * 5 + 4) / 20)  # 0.4 ranks below the normal at 0.6 only
    assert row["counts"] == {"Covid": 4, "Normal": 5}
    assert row["confusion"] == {"Covid": {"Covid": 3, "Normal": 1}, "Normal": {"Covid": 1, "Normal": 4}}
    low, high = row["sensitivity_ci95"]
    assert low < 0.75 < high and row["specificity_ci95"][0] < 0.8 < row["specificity_ci95"][1]
    assert row["correct"] == 7
    # A threshold judged on the row counts each image against its own class.
    assert sources.right_at(row, 0.5).sum() == 7
    assert sources.right_at(row, 0.35).sum() == 8  # the COVID-19 film at 0.4 now right
    assert sources.right_at(row, 0.65).sum() == 8  # the normal film at 0.6 now right
    assert sources.right_at(row, 0.85).sum() == 6  # two COVID-19 films lost
    assert "siim-covid (Covid+Normal" in sources.format_table([row]) and "AUC 0.950" in sources.format_table([row])


def test_one_class_rows_keep_their_mean_and_the_two_class_row_stays_out_of_it():
    one = {"source": "a", "class": "Normal", "n": 4, "correct": 2, "called": {"Covid": 2, "Normal": 2}, "ece": 0.1}
    both = {"source": "siim-covid", "class": "Covid+Normal", "n": 10, "correct": 10,
            "called": {"Covid": 5, "Normal": 5}, "ece": 0.1, "auc": 1.0, "sensitivity": 1.0, "specificity": 1.0}
    assert sources.single_class_mean([one, both]) == 0.5
    assert "mean over one-class sources 50.0%" in sources.format_table([one, both])


def make_bimcv(root: Path) -> None:
    folder = root / "multisource/bimcv-radiographydb/Covid"
    folder.mkdir(parents=True)
    for i in range(5):
        Image.fromarray(chest_like(32, seed=i)).save(folder / f"bimcv-COVID-{i}.jpg")
    (root / "siim-covid").mkdir()
    (root / sources.BIMCV_READ_BY_SIIM).write_text(
        "bimcv_radiographydb_file\tsiim_study_id\tsiim_study_label\n"
        "bimcv-COVID-0.jpg\ta\tNegative for Pneumonia\n"
        "bimcv-COVID-1.jpg\tb\tTypical Appearance\n"
        "bimcv-COVID-2.jpg\tc\tNegative for Pneumonia\n")


def test_the_bimcv_films_read_as_negative_can_be_kept_dropped_or_relabelled(tmp_path):
    make_bimcv(tmp_path)
    (tmp_path / "adult-normal").mkdir()
    Image.fromarray(chest_like(32)).save(tmp_path / "adult-normal" / "n.png")

    def bimcv(policy, classes=None):
        found = {s.name: s for s in sources.find_sources(tmp_path, classes=classes, bimcv=policy)}
        return found.get("bimcv-radiographydb")

    assert bimcv("keep").labels == ("Covid",) * 5
    assert sorted(p.name for p in bimcv("drop-read-negative").paths) == [f"bimcv-COVID-{i}.jpg" for i in (1, 3, 4)]
    relabelled = bimcv("relabel-read-negative")
    assert dict(zip((p.name for p in relabelled.paths), relabelled.labels))["bimcv-COVID-2.jpg"] == "Normal"
    assert relabelled.classes == ["Covid", "Normal"]
    assert bimcv("relabel-read-negative", classes=["Covid"]).labels == ("Covid",) * 3
    assert bimcv("drop-source") is None
    with pytest.raises(ValueError):
        sources.find_sources(tmp_path, bimcv="maybe")


def test_a_missing_reading_table_is_a_clear_error(tmp_path):
    make_bimcv(tmp_path)
    (tmp_path / sources.BIMCV_READ_BY_SIIM).unlink()
    with pytest.raises(DatasetError, match="reading of bimcv-radiographydb"):
        sources.find_sources(tmp_path, bimcv="drop-read-negative")


def test_select_caps_each_class_of_a_two_class_source():
    files = LabelledFiles(["Covid", "Normal"], [Path(f"s{i}") for i in range(100)], [0] * 70 + [1] * 30,
                          ["siim-covid"] * 100)
    capped = sources.select(files, lambda name: True, per_source=20, seed=1)
    assert capped.labels.count(0) == 20 and capped.labels.count(1) == 20


def test_a_share_of_a_source_keeps_its_class_ratio_and_the_other_sources_whole():
    files = LabelledFiles(["Covid", "Normal"], [Path(f"s{i}") for i in range(110)], [0] * 70 + [1] * 30 + [1] * 10,
                          ["siim-covid"] * 100 + ["other"] * 10)
    half = sources.share_of(files, "siim-covid", 0.5, seed=2)
    groups = half.group_names()
    assert [l for l, g in zip(half.labels, groups) if g == "siim-covid"].count(0) == 35
    assert [l for l, g in zip(half.labels, groups) if g == "siim-covid"].count(1) == 15
    assert groups.count("other") == 10
    quarter = sources.share_of(files, "siim-covid", 0.25, seed=2)
    assert set(quarter.paths) < set(half.paths)  # a learning curve's shares are nested
    assert sources.share_of(files, "siim-covid", 1.0).paths == files.paths
    with pytest.raises(ValueError):
        sources.share_of(files, "siim-covid", 0)
    with pytest.raises(ValueError, match="siim"):  # a misspelt source must not train on every film
        sources.share_of(files, "siim", 0.5)


def test_source_weights_weigh_a_source_inside_each_of_its_classes():
    config = TrainConfig(source_weights="siim-covid=3, other=0.5", noisy_sources="other", noisy_source_weight=0.5)
    assert source_factors(config) == {"other": 0.25, "siim-covid": 3.0}
    labels = [0, 0, 1, 1]
    groups = ["siim-covid", "a", "siim-covid", "b"]
    weights = down_weight_sources(np.ones(4), labels, groups, source_factors(TrainConfig(source_weights="siim-covid=3")))
    assert weights.tolist() == pytest.approx([1.5, 0.5, 1.5, 0.5])  # 3:1 inside each class, totals kept
    with pytest.raises(DatasetError, match="source=factor"):
        source_factors(TrainConfig(source_weights="siim-covid:3"))


def test_temperature_and_bias_move_the_threshold_to_where_the_films_put_it():
    rng = np.random.default_rng(0)
    # A model that says COVID-19 too readily: true log-odds plus 1.5, doubled in scale.
    truth = rng.normal(0, 2, 4000)
    labels = (rng.uniform(size=4000) > 1 / (1 + np.exp(-truth))).astype(int)  # 0 = Covid with p = sigmoid(truth)
    logits = np.stack([2 * (truth + 1.5), np.zeros(4000)], axis=1)
    temperature, bias = fit_temperature_and_bias(logits, labels)
    assert temperature == pytest.approx(2.0, rel=0.1) and bias[0] == 0.0 and bias[1] == pytest.approx(1.5, abs=0.2)
    fitted = softmax(logits, temperature, bias)
    np.testing.assert_allclose(fitted[:, 0], 1 / (1 + np.exp(-truth)), atol=0.1)
    # Temperature alone keeps every call: it cannot correct the threshold.
    alone = softmax(logits, fit_temperature(logits, labels))
    assert ((alone[:, 0] > 0.5) == (logits[:, 0] > 0)).all()
    assert ((fitted[:, 0] > 0.5) != (alone[:, 0] > 0.5)).sum() > 100


def test_recalibration_fits_on_the_chosen_source_and_the_band_on_every_calibration_film(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from covidgui.core.models.modelcard import ModelCard
    from covidgui.core.scoring import recalibrate as module

    class Eager:
        """A stand-in classifier whose COVID-19 logit is the input's first pixel, too eager by 2."""

        card = ModelCard("eager", "0", ["Covid", "Normal"], 8, positive_class="Covid")
        input_size, harmonises, masks_lungs = 8, False, False

        def logits(self, inputs):
            return np.stack([inputs[:, 0, 0] + 2.0, np.zeros(len(inputs))], axis=1)

        def calibrated(self, logits):
            return softmax(logits, self.card.temperature, self.card.logit_bias)

    rng = np.random.default_rng(0)
    truth = rng.normal(0, 2, 400)
    labels = (rng.uniform(size=400) > 1 / (1 + np.exp(-truth))).astype(int).tolist()
    files = LabelledFiles(["Covid", "Normal"], [tmp_path / f"{i}.png" for i in range(400)], labels,
                          ["siim-covid" if i < 300 else "other" for i in range(400)])
    inputs = {path: np.full((8, 8), t) for path, t in zip(files.paths, truth)}
    # The decode is the batch engine's own (tested elsewhere); here the inputs carry the true log-odds.
    monkeypatch.setattr(module, "load_prepared", lambda path, size, harmonise: (None, SimpleNamespace(input=inputs[path])))
    classifier = Eager()
    fitted = module.recalibrate(classifier, files, ["siim-covid"])
    assert fitted["n"] == 300 and fitted["fitted_on"] == ["siim-covid"]
    assert classifier.card.logit_bias[0] == 0.0 and classifier.card.logit_bias[1] == pytest.approx(2.0, abs=0.5)
    assert fitted["ece_after"] < fitted["ece_before"]
    assert tuple(fitted["indeterminate_band"]) == classifier.card.indeterminate_band
    with pytest.raises(ValueError, match="two classes"):
        module.recalibrate(classifier, files.subset([lab == 0 for lab in files.labels]), ["siim-covid"])


def test_the_card_words_a_two_class_row_by_its_figures():
    from covidgui.core.models.modelcard import ModelCard

    card = ModelCard("m", "3", ["Covid", "Normal"], 224, display_names={"Covid": "COVID-19"},
                     test={"per_source": [{"source": "siim-covid", "class": "Covid+Normal", "n": 10, "correct": 8,
                                           "counts": {"Covid": 6, "Normal": 4}, "sensitivity": 0.8333,
                                           "specificity": 0.75, "auc": 0.9}]})
    assert "siim-covid (both classes: 6 COVID-19, 4 Normal): sensitivity 0.83, specificity 0.75, AUC 0.90" in card.summary()


def test_films_of_neither_class_are_counted_by_how_the_model_calls_them(tmp_path):
    from covidgui.core.scoring.evaluation import calls_on_unlabelled

    class Unsure:
        """A stand-in classifier: COVID-19 at 0.6 for every film, inside its indeterminate band."""

        class card:
            classes = ["Covid", "Normal"]
            positive_class = "Covid"

            @staticmethod
            def display_name(c):
                return {"Covid": "COVID-19"}.get(c, c)

        input_size, harmonises = 16, False

        def predict_inputs(self, inputs, colourfulness=None, paths=None, lung_attention=False):
            return [Prediction("Indeterminate", "Indeterminate", "Covid", 0.6, {"COVID-19": 0.6, "Normal": 0.4},
                               indeterminate=True, path=path) for path in paths]

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(chest_like(32, seed=i)).save(paths[-1])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    calls = calls_on_unlabelled(Unsure(), paths + [tmp_path / "broken.png"])
    assert calls == {"n": 4, "called_positive": 4, "indeterminate": 4, "rejected": 0,
                     "share_called_positive": 1.0, "share_indeterminate": 1.0}
