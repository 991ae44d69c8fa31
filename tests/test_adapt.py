"""Adapting a model to a site's films (issue 25): honest out-of-fold figures, refused mismatches,
the command line's JSON, and a cancel that writes nothing. Tiny 32-px models on generated films."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np
import pytest

from covidgui.core.data.dataset import scan_class_folders
from covidgui.core.errors import DatasetError, ModelError
from covidgui.core.training import adapt as adapt_module
from covidgui.core.training import sequence as sequence_module
from covidgui.core.training.adapt import (adapt, adaptation_config, cross_validate, fold_indices, match_model_classes,
                                          patient_groups, resolve_start)
from covidgui.core.training.train import TrainConfig, train
from covidgui.core.models.model_files import save_model
from covidgui.core.models.modelcard import read_card
from covidgui.core.scoring.metrics import auc_interval
from tests.test_cli import run_cli
from tests.tiny_data import make_class_folders

# One epoch, no augmentation or lung guidance: these tests check what is judged by what, not accuracy.
QUICK = dict(epochs=1, batch_size=8, augment=False, lung_guidance=0.0)


@pytest.fixture(scope="module")
def start_model(tmp_path_factory):
    """A tiny 32-px Covid/Normal model saved with its card, as a site would start from."""
    root = tmp_path_factory.mktemp("start")
    files = scan_class_folders(make_class_folders(root / "data", {"Covid": 10, "Normal": 10}, size=32))
    result = train(files, files, TrainConfig(input_size=32, patience=0, **QUICK), name="tiny-start", version="1.0",
                   positive_class="Covid")
    return save_model(result.classifier, root / "start.keras")


@pytest.fixture
def site(tmp_path):
    """The site's films: 12 per class, the classes in lower case (matched to the model's)."""
    return make_class_folders(tmp_path / "site", {"covid": 12, "normal": 12}, size=32)


def test_out_of_fold_films_are_never_judged_by_a_model_that_trained_on_them(start_model, site, monkeypatch):
    # The folds share one compiled network (CompiledFit), so a fold's model is told by when it was
    # scored: right after its training, before the next one changes it.
    trained_on = []  # per training, in order: (network, paths fitted or calibrated on, their counts)
    judged, start_judged = {}, []  # training index -> [(paths it scored, counts)]; the starting model's

    decoded = []
    real_load = sequence_module.load_prepared
    monkeypatch.setattr(sequence_module, "load_prepared", lambda path, *a, **k: decoded.append(str(path))
                        or real_load(path, *a, **k))

    def recording_train(fit, calibration, config, *args, **kwargs):
        decoded.clear()
        result = train(fit, calibration, config, *args, **kwargs)
        assert result.classifier is None and kwargs["measure"] is False  # a fold's model is only scored
        assert result.history["loss"] and not any(k.startswith("val_") for k in result.history)  # nor validated,
        assert not set(decoded) & {str(p) for p in calibration.paths}  # so its held-apart films are not even read
        trained_on.append((result.network, [str(p) for p in fit.paths + calibration.paths],
                           [fit.counts(), calibration.counts()]))
        return result

    def fold_scoring(real):
        def score(model, files, *args):
            assert trained_on and model is trained_on[-1][0]  # the network just trained
            judged.setdefault(len(trained_on) - 1, []).append(([str(p) for p in files.paths], files.counts()))
            return real(model, files, *args)
        return score

    def start_scoring(real):
        def score(model, files, *args):
            start_judged.append([str(p) for p in files.paths])
            return real(model, files, *args)
        return score

    monkeypatch.setattr(adapt_module, "train", recording_train)
    monkeypatch.setattr(adapt_module, "score_files", start_scoring(adapt_module.score_files))  # the starting model
    monkeypatch.setattr(adapt_module, "network_logits", fold_scoring(adapt_module.network_logits))  # fold models
    files = scan_class_folders(site)
    config = adaptation_config(start_model, TrainConfig(**QUICK))
    out = cross_validate(files, start_model, config, folds=3, seed=0)

    assert len(trained_on) == 3
    every_film = sorted(map(str, files.paths))
    out_of_fold = []
    for k, (_, paths, counts) in enumerate(trained_on):
        assert all(n > 0 for part in counts for n in part.values())  # both classes fitted and calibrated on
        (scored, held_counts), = judged[k]  # each fold model judges once: its own fold
        assert not set(scored) & set(paths), "a film was judged by a model that trained on it"
        assert sorted(scored + paths) == every_film
        assert set(held_counts.values()) == {4}  # stratified: each fold holds both classes, 4 of each
        out_of_fold += scored
    assert sorted(out_of_fold) == every_film  # every film predicted exactly once
    assert len(start_judged) == 1 and sorted(start_judged[0]) == every_film  # the starting model: same films
    for key in ("starting", "adapted"):
        figures = out[key]
        assert figures["n"] == 24 and np.array(figures["confusion_matrix"]).sum() == 24
        assert figures["classes"] == ["Covid", "Normal"]
        for name in ("auc", "sensitivity", "specificity"):
            lo, hi = figures[f"{name}_ci95"]
            assert lo <= figures[name] <= hi
    assert out["folds"] == 3


def test_folds_are_stratified_and_keep_a_patients_films_together(tmp_path):
    root = make_class_folders(tmp_path / "site", {"Covid": 10, "Normal": 10}, size=32)
    files = scan_class_folders(root)
    rows = ["file,patient"] + [f"{p.relative_to(root).as_posix()},{p.parent.name}-{i // 2}"
                               for i, p in enumerate(files.paths)]
    (root / "patients.csv").write_text("\n".join(rows) + "\n")
    groups = patient_groups(root, files)
    assert len(set(groups)) == 10
    for train_idx, test_idx in fold_indices(files.labels, 5, 0, groups):
        assert {groups[i] for i in train_idx}.isdisjoint(groups[i] for i in test_idx)
        assert {files.labels[i] for i in test_idx} == {0, 1}
    assert patient_groups(tmp_path, files) is None  # no patients.csv: no grouping
    with pytest.raises(DatasetError, match="at least 11 films of each class"):
        fold_indices(files.labels, 11, 0)


def test_the_training_tabs_adaptation_groups_by_the_folders_patients_file(start_model, tmp_path, monkeypatch):
    """The Training tab's path (run_adaptation, given the training folder) keeps a patient's films
    in one fold as the command line does: the groups reach adapt() from the folder's patients.csv."""
    from covidgui.core.training.adapt import run_adaptation

    root = make_class_folders(tmp_path / "site", {"Covid": 6, "Normal": 6}, size=32)
    files = scan_class_folders(root)
    rows = ["file,patient"] + [f"{p.relative_to(root).as_posix()},{p.parent.name}-{i // 2}"
                               for i, p in enumerate(files.paths)]
    (root / "patients.csv").write_text("\n".join(rows) + "\n")
    seen = []
    monkeypatch.setattr(adapt_module, "adapt", lambda files, *a, groups=None, **k: seen.append(groups))
    run_adaptation(files, None, TrainConfig(**QUICK), start_model, lambda event: None, folds=2, data_root=root)
    assert seen and len(seen[0]) == len(files) and len(set(seen[0])) == 6


def test_other_classes_and_input_sizes_are_refused_with_their_names(start_model, tmp_path):
    other = scan_class_folders(make_class_folders(tmp_path / "o", {"Covid": 3, "Pneumonia": 3}, size=32))
    with pytest.raises(DatasetError, match="knows Covid, Normal; the folder has Covid, Pneumonia"):
        match_model_classes(other, read_card(start_model))
    config = adaptation_config(start_model, TrainConfig(input_size=224))
    assert config.input_size == 32 and config.start_from == str(start_model)  # the model's size, not the base's
    assert config.epochs == 10 and config.learning_rate == 5e-4 and config.freeze_before == ""  # measured best
    site = scan_class_folders(make_class_folders(tmp_path / "s", {"Covid": 6, "Normal": 6}, size=32))
    with pytest.raises(DatasetError, match=r"takes 32 x 32 px .* needs 48 px"):
        train(site, site, replace(config, input_size=48, **QUICK))
    with pytest.raises(ModelError, match="nothing.keras"):
        resolve_start(tmp_path / "nothing.keras")
    assert resolve_start("bundled").name == "covid_classifier.keras"
    # EfficientNet-Lite0 (the bundled network) adapts with its stages at 1/2 to 1/8 of the film frozen.
    assert adaptation_config(resolve_start("bundled")).freeze_before == "scale:16"


def test_cancelling_writes_nothing(start_model, site, tmp_path):
    files = scan_class_folders(site)
    config = adaptation_config(start_model, TrainConfig(**QUICK))
    for moment in ("Fold 2", "Adapting the final model"):  # during cross-validation, during the final model
        stop, out = threading.Event(), tmp_path / f"cancelled-{moment[:4]}.keras"

        def on_event(event, moment=moment, stop=stop):
            if event.kind == "phase" and event.text.startswith(moment):
                stop.set()

        assert adapt(files, start_model, config, folds=2, on_event=on_event, stop=stop, save_to=out) is None
        assert not list(tmp_path.glob("cancelled-*"))


def test_cli_json_gives_both_figures_and_the_card_says_where_it_started(start_model, site, tmp_path):
    out = tmp_path / "adapted.keras"
    done = run_cli("train", site, "--start-from", start_model, "--folds", "2", "--epochs", "1", "--no-augment",
                   "--lung-guidance", "0", "--batch-size", "8", "--json", "--out", out)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # exactly one JSON object on stdout
    for key in ("starting", "adapted"):
        assert {"n", "auc", "sensitivity", "specificity"} <= set(printed[key]) and printed[key]["n"] == 24
    assert printed["model"] == str(out) and out.is_file() and printed["folds"] == 2
    assert "Fold 2 of 2" in done.stderr
    training = json.loads(out.with_suffix(".json").read_text())["training"]
    from covidgui.core.models.model_files import file_digest

    assert training["started_from"]["sha256"] == file_digest(start_model)
    assert training["adaptation"]["adapted"]["n"] == 24 and training["config"]["epochs"] == 1
    from covidgui.core.training.adapt import GENTLE_LEARNING_RATE

    assert training["config"]["learning_rate"] == pytest.approx(GENTLE_LEARNING_RATE)  # gentle unless asked otherwise
    assert "held out of fitting" in training["calibration"]
    # The starting model's input gate, fitted on all its training X-rays, is kept (one refitted on
    # a few dozen films withheld many of the site's own films).
    from covidgui.core.inference.gate import InputGate, gate_path

    kept, started = InputGate.load(gate_path(out)), InputGate.load(gate_path(start_model))
    for field in ("pca_components", "thresholds", "feature_references"):
        np.testing.assert_array_equal(getattr(kept, field), getattr(started, field))
    assert "input gate kept from tiny-start v1.0" in training["calibration"]
    assert read_card(out).metrics["gate"]["kept_from"] == "tiny-start v1.0"
    # The final model's operating point is the one fitted on the out-of-fold logits of all 24 films.
    point, card = printed["operating_point"], read_card(out)
    assert point["films"] == 24 and "out-of-fold logits of 24 films" in training["calibration"]
    assert card.temperature == pytest.approx(point["temperature"])
    assert card.logit_bias == pytest.approx(point["logit_bias"])
    assert list(card.indeterminate_band) == pytest.approx(point["indeterminate_band"])
    # What the About box and reports show are the out-of-fold figures, not the held-out fifth's.
    assert card.metrics["validation"]["n"] == 24 and "judged by a model adapted without it" in card.summary()
    assert card.metrics["validation"]["auc"] == pytest.approx(printed["adapted"]["auc"])


def test_no_film_sets_the_threshold_that_judges_it_out_of_fold():
    """Cross-fitted calibration: a fold's probabilities come from parameters fitted on the other
    folds, so changing that fold's labels leaves them as they were; the final model's parameters,
    fitted on every film, move."""
    from covidgui.core.training.adapt import out_of_fold_calibration

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 30)
    logits = np.stack([rng.normal(0, 1, 60) + 1.5 * (labels == 0), rng.normal(0, 1, 60)], axis=1)
    fold_of = np.tile(np.arange(3), 20)
    before = out_of_fold_calibration(logits, labels, fold_of)
    flipped = labels.copy()
    flipped[fold_of == 0] = 1 - flipped[fold_of == 0]
    after = out_of_fold_calibration(logits, flipped, fold_of)
    assert after["probs"][fold_of == 0] == pytest.approx(before["probs"][fold_of == 0])
    assert not np.allclose(after["probs"][fold_of == 1], before["probs"][fold_of == 1])
    assert after["logit_bias"][1] != pytest.approx(before["logit_bias"][1], abs=1e-3)
    assert before["films"] == 60 and before["probs"].sum(axis=1) == pytest.approx(np.ones(60))


def test_cli_refuses_a_folder_whose_classes_the_bundled_model_does_not_have(tmp_path):
    site = make_class_folders(tmp_path / "site", {"Covid": 3, "Normal": 3, "Pneumonia": 3}, size=32)
    out = tmp_path / "m.keras"
    done = run_cli("train", site, "--start-from", "bundled", "--json", "--out", out)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "knows Covid, Normal; the folder has Covid, Normal, Pneumonia" in done.stderr
    assert done.stdout == "" and not out.exists()


def test_auc_interval_holds_the_auc_and_narrows_with_more_films():
    small, large = auc_interval(0.8, 20, 20), auc_interval(0.8, 200, 200)
    assert small[0] < large[0] < 0.8 < large[1] < small[1]
    assert auc_interval(1.0, 10, 10) == (1.0, 1.0) and auc_interval(0.7, 0, 5) == (0.0, 1.0)


def test_cli_with_a_val_folder_scores_both_models_there_without_cross_validating(start_model, site, tmp_path):
    val = make_class_folders(tmp_path / "val", {"Covid": 4, "Normal": 4}, size=32)
    out = tmp_path / "adapted.keras"
    done = run_cli("train", site, "--val", val, "--start-from", start_model, "--epochs", "1", "--no-augment",
                   "--lung-guidance", "0", "--batch-size", "8", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "Fold" not in done.stderr  # --val: no cross-validation unless --folds asks
    assert f"measured on: {val}" in done.stdout and "starting (tiny-start 1.0)" in done.stdout
    assert out.is_file()


def test_the_text_says_plainly_when_the_adapted_model_is_not_better():
    from covidgui.cli_adapt import format_comparison, verdict_sentence

    def figures(auc, ci):
        return {"n": 100, "auc": auc, "auc_ci95": ci, "sensitivity": 0.8, "sensitivity_ci95": (0.7, 0.9),
                "specificity": 0.7, "specificity_ci95": (0.6, 0.8)}

    start = figures(0.80, (0.72, 0.88))
    assert "scored lower" in verdict_sentence(start, figures(0.78, (0.69, 0.87)))
    assert "not clearly better" in verdict_sentence(start, figures(0.84, (0.76, 0.92)))
    assert verdict_sentence(figures(0.70, (0.60, 0.80)), figures(0.95, (0.91, 0.99))) == ""
    text = format_comparison({"starting": start, "adapted": figures(0.84, (0.76, 0.92)), "model": "m.keras",
                              "started_from": {"name": "covid-cnn", "version": "3"}})
    assert "0.800 (0.720-0.880)" in text and "0.840" in text and "not clearly better" in text


def test_batchnorm_adaptation_moves_only_the_statistics_to_the_sites_films(start_model, site):
    """AdaBN: every weight stays the starting model's, the BatchNorm means become those of the
    site's films (here darker than the ones it was trained on), and the gate and card stay."""
    from PIL import Image

    from covidgui.core.inference.runtime import load_keras
    from covidgui.core.training.adabn import adapt_batch_norm
    from covidgui.core.training.fit_loop import _all_layers

    paths = sorted(site.rglob("*.png"))
    for path in paths:  # the new hospital's look: a darker, flatter exposure
        Image.fromarray((np.asarray(Image.open(path).convert("L"), float) * 0.4).astype(np.uint8)).save(path)
    start = load_keras(start_model)
    adapted = adapt_batch_norm(start_model, paths + [site / "missing.png"])

    def norms(model):
        return [layer for layer in _all_layers(model) if layer.__class__.__name__ == "BatchNormalization"]

    before, after = norms(start), norms(adapted._keras_model)
    assert before and len(before) == len(after)
    assert any(not np.allclose(a.moving_mean, b.moving_mean) for a, b in zip(after, before))
    for a, b in zip(after, before):
        assert np.allclose(a.gamma, b.gamma) and np.allclose(a.beta, b.beta)
    assert adapted.card.classes == read_card(start_model).classes
    assert adapted.card.training["batchnorm_adaptation"]["films"] == len(paths)
    assert adapted.gate is not None and adapted.predict_file(paths[0]).label
    with pytest.raises(DatasetError, match="could be read"):
        adapt_batch_norm(start_model, [site / "missing.png"])


def test_an_adaptation_outcome_holds_both_models_on_the_same_films_and_crosses_as_plain_data(start_model, site,
                                                                                               tmp_path):
    """What the Training tab gets from its child: both models' out-of-fold Scores, the figures with
    AUC intervals and the verdict, through JSON + npz (read back without pickle)."""
    from covidgui.core.training.adapt import adaptation_verdict, run_adaptation
    from covidgui.core.training.job import read_outcome, write_outcome

    files = scan_class_folders(site)
    phases = []
    outcome = run_adaptation(files, None, TrainConfig(**QUICK), start_model,
                             lambda e: phases.append((e.text, e.part, e.parts)) if e.kind == "phase" else None,
                             folds=2, save_to=tmp_path / "adapted.keras")
    assert [p[1:] for p in phases if p[2]] == [(0, 3), (1, 3), (2, 3)]  # fold 1, fold 2, the final model
    assert outcome.new_scores.model == "Adapted (out of fold)" and outcome.active_scores.model == "Starting: tiny-start v1.0"
    assert np.array_equal(outcome.new_scores.labels, outcome.active_scores.labels) and len(outcome.new_scores.labels) == 24
    figures = outcome.adaptation
    assert figures["adapted"]["n"] == figures["starting"]["n"] == 24 and figures["folds"] == 2
    assert figures["verdict"].startswith(adaptation_verdict(figures)[1]) and figures["better"] in (True, False)
    assert (tmp_path / "adapted.keras").is_file() and outcome.model_path == str(tmp_path / "adapted.keras")

    write_outcome(tmp_path, outcome.plain_fields())
    back = read_outcome(tmp_path)
    for key in ("new_scores", "active_scores"):
        assert np.allclose(back[key].probs, getattr(outcome, key).probs) and back[key].model == getattr(outcome, key).model
    assert back["adaptation"]["adapted"]["auc_ci95"] == list(figures["adapted"]["auc_ci95"])
    assert back["adaptation"]["verdict"] == figures["verdict"]
    assert set(back["new_curves"]) == {"Covid"}


def test_the_verdict_is_better_only_beyond_both_intervals():
    from covidgui.core.training.adapt import adaptation_verdict

    def figures(auc, ci):
        return {"auc": auc, "auc_ci95": ci}

    assert adaptation_verdict({"starting": figures(0.70, (0.60, 0.80)), "adapted": figures(0.95, (0.91, 0.99))})[0]
    better, text = adaptation_verdict({"starting": figures(0.86, (0.8, 0.92)), "adapted": figures(0.81, (0.75, 0.87))})
    assert not better and "scored lower" in text and "0.810 against 0.860" in text and "Keep using the starting model" in text


def test_too_few_films_to_hold_a_fifth_apart_says_so_in_the_users_terms(start_model, tmp_path):
    from covidgui.core.training.adapt import split_for_calibration

    files = scan_class_folders(make_class_folders(tmp_path / "few", {"Covid": 3, "Normal": 8}, size=32))
    with pytest.raises(DatasetError, match="at least 5 films of each class; one here has 3"):
        split_for_calibration(files, 0)


def test_a_fold_networks_logits_are_those_its_inference_graph_would_give(start_model, site):
    """Fold models are scored straight from the Keras network (no graph exported): the same
    calibrated probabilities as the app's engine gives for a kept model, film by film."""
    from covidgui.core.inference.classifier import softmax
    from covidgui.core.scoring.comparison import score_files
    from covidgui.core.training.fit_loop import network_logits

    files = scan_class_folders(site)
    config = adaptation_config(start_model, TrainConfig(**QUICK))
    kept = train(files, files, config)
    logits = network_logits(kept.network, files, config)
    card = kept.classifier.card
    engine = score_files(kept.classifier, files)
    assert len(logits) == len(files) == len(engine.probs)
    for path, probs in zip(files.paths, engine.probs):
        assert softmax(logits[str(path)][None], card.temperature, card.logit_bias)[0] == pytest.approx(probs, abs=1e-4)


def test_frozen_layers_keep_the_starting_weights_and_the_saved_model_trains_whole_later(start_model, site, tmp_path):
    """freeze_before "scale:N" holds the layers before the first one at 1/N of the input's side at
    the starting model's weights; the saved model carries no freeze into its next fine-tune."""
    from covidgui.core.inference.runtime import load_keras
    from covidgui.core.training.fit_loop import _first_at_scale

    start = load_keras(start_model)
    first = _first_at_scale(start, "scale:4")
    files = scan_class_folders(site)
    config = replace(adaptation_config(start_model, TrainConfig(**QUICK)), freeze_before="scale:4", epochs=2)
    result = train(files, files, config, name="frozen", version="1")
    network = result.classifier.keras_model
    for before, after in zip(start.layers[:first], network.layers[:first]):
        for a, b in zip(before.get_weights(), after.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for before, after in zip(start.layers[first:], network.layers[first:])
               for a, b in zip(before.get_weights(), after.get_weights()))
    saved = load_keras(save_model(result.classifier, tmp_path / "frozen.keras"))
    assert all(layer.trainable for layer in saved.layers)


def test_a_fold_trained_on_the_kept_compiled_model_gets_the_weights_a_new_one_gets(start_model, tmp_path,
                                                                                   monkeypatch):
    """Folds share one traced training step (CompiledFit): everything the first fold changed (the
    weights, the optimizer's moments and step count, the moving average, the random generators)
    is put back, so the second fold's network is the one a freshly built model trains to. And
    TensorFlow's seed is not set again: that clears its kernel cache, and the kept step was then
    optimised again at its first call (3.5 s a fold)."""
    import tensorflow as tf

    from covidgui.core.training.compiled_fit import CompiledFit

    first = scan_class_folders(make_class_folders(tmp_path / "a", {"Covid": 8, "Normal": 8}, size=32))
    # The same counts, so the same step count; the patch marks the other class here: other films.
    second = scan_class_folders(make_class_folders(tmp_path / "b", {"Normal": 8, "Covid": 8}, size=32))
    config = replace(adaptation_config(start_model, TrainConfig(**{**QUICK, "augment": True})), epochs=2,
                     freeze_before="scale:4")

    def weights(files, reuse=None):
        network = train(files, files, config, measure=False, reuse=reuse).network
        return [w.copy() for w in network.get_weights()]

    fresh = weights(second)
    compiled = CompiledFit()
    after_first = weights(first, compiled)
    trace = compiled._models[1].train_function
    seeded = []
    monkeypatch.setattr(tf.random, "set_seed", seeded.append)
    reused = weights(second, compiled)
    assert seeded == []
    assert compiled._models[1].train_function is trace  # the step was not traced again
    assert any(not np.array_equal(a, b) for a, b in zip(after_first, reused))
    for a, b in zip(fresh, reused):
        np.testing.assert_array_equal(a, b)
