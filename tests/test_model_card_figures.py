"""The bundled model card carries per-source figures, and they are what the model really does."""

from __future__ import annotations

import json

import pytest

from covidgui.core.scoring import sources
from covidgui.core.models.model_files import bundled_model_path
from tests.conftest import SHARED_DATA

ROW_KEYS = {"source", "class", "n", "correct"}


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(bundled_model_path().with_suffix(".json").read_text())


def card_sources(card) -> set[str]:
    """The reference sources of the card's classes (a two-class card has no pneumonia rows)."""
    trained = {r["source"] for r in card["test"]["per_source"]}
    return {name for name, folders in sources.SOURCE_FOLDERS.items()
            if set(folders) & set(card["classes"]) and name in trained}


def test_the_card_has_a_row_per_source_for_the_locked_test_and_leave_one_source_out(card):
    for rows in (card["test"]["per_source"], card["leave_one_source_out"]):
        assert {r["source"] for r in rows} == card_sources(card)
        for row in rows:
            assert ROW_KEYS <= set(row)
            assert row["class"].split("+")[0] in sources.SOURCE_FOLDERS[row["source"]]
            assert 0 <= row["correct"] <= row["n"] and row["n"] > 0
            if "+" in row["class"]:  # a source of both classes: the figures a threshold is judged by
                assert {"auc", "sensitivity", "specificity"} <= set(row)


def test_the_card_records_the_split_it_was_tested_on(card):
    split = card["training"]["split"]
    assert split["test"]["n"] == sum(r["n"] for r in card["test"]["per_source"])
    assert "sha256" in split["rule"]


# Films per source the model classifies again (a seeded draw): enough that a card scored with
# another model, or figures counted wrongly, fails; few enough for the suite's time.
SAMPLE_PER_SOURCE = 20


@pytest.mark.skipif(not (SHARED_DATA / "multisource").is_dir(),
                    reason=f"shared data not found at {SHARED_DATA / 'multisource'} (set COVIDGUI_SHARED_DATA)")
def test_the_locked_test_figures_are_what_the_model_does_today(card, bundled_classifier):
    """The card's per-source counts are its per-film calls counted, on the split it names, and a
    sample of those calls is what the model calls today."""
    import numpy as np

    from covidgui.core.analysis.batch import predict_files

    names = [r["source"] for r in card["test"]["per_source"]]
    split = sources.locked_split(sources.find_sources(SHARED_DATA, names=names, classes=card["classes"],
                                                      bimcv=card["training"].get("bimcv_read_negative", "keep")),
                                 card["classes"])
    assert sources.manifest_hash(split.test) == card["training"]["split"]["test"]["sha256"]
    calls = card["test"]["calls"]
    truth: dict[str, dict] = {}
    for path, label, group in zip(split.test.paths, split.test.labels, split.test.group_names()):
        truth.setdefault(group, {})[path.name] = (path, split.test.classes[label])
    for row in card["test"]["per_source"]:
        films = calls[row["source"]]
        assert len(films) == row["n"] and set(films) <= set(truth[row["source"]]), row["source"]
        assert sum(films[name] == truth[row["source"]][name][1] for name in films) == row["correct"], row["source"]
    rng = np.random.default_rng(0)
    sample = [(source, str(name)) for source in sorted(calls)
              for name in rng.choice(sorted(calls[source]), min(SAMPLE_PER_SOURCE, len(calls[source])), replace=False)]
    paths = [truth[source][name][0] for source, name in sample]
    today = [p.class_name for p in predict_files(bundled_classifier, paths)]
    differ = [name for (source, name), call in zip(sample, today) if call != calls[source][name]]
    # Same weights, same films: a film at the decision boundary may fall the other way on another
    # machine (float differences), not more.
    assert len(differ) <= 1, differ
