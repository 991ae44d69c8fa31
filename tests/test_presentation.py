"""One presentation of a result: the words, flags, colours and CSV cells, for two and three classes,
and the same words in the terminal line, the CSV row, the PDF report's text and the result panel."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from covidgui.cli_batch import format_line
from covidgui.core.inference.classifier import Prediction
from covidgui.core.models.modelcard import ModelCard
from covidgui.core.output import presentation
from covidgui.core.output.presentation import (CAUTION_COLOUR, CLASSIFIED_ANYWAY_NOTE, INDETERMINATE_NOTE,
                                               LOW_ATTENTION_WARNING, NOT_XRAY_MESSAGE, OUTSIDE_LUNGS_WARNING,
                                               QUALIFIER_COLOUR, csv_header, csv_row, percent, present)
from covidgui.core.output.report import report_text

PNEUMONIA = "Pneumonia (not COVID-19)"
TWO = ModelCard(name="two", version="1", classes=["Covid", "Normal"], input_size=32,
                display_names={"Covid": "COVID-19", "Normal": "Normal"})
THREE = ModelCard(name="three", version="2", classes=["Covid", "Normal", "Pneumonia"], input_size=32,
                  display_names={"Covid": "COVID-19", "Normal": "Normal", "Pneumonia": PNEUMONIA})
PATH = Path("scans/chest 1.png")


def two_class(**changes) -> Prediction:
    p = Prediction(label="COVID-19", class_label="COVID-19", class_name="Covid", confidence=0.83,
                   probabilities={"COVID-19": 0.83, "Normal": 0.17}, lung_attention=0.812,
                   lung_only_label="COVID-19", lung_only_confidence=0.706, depends_on_outside_lungs=False)
    return replace(p, **changes)


def three_class(**changes) -> Prediction:
    p = Prediction(label=PNEUMONIA, class_label=PNEUMONIA, class_name="Pneumonia", confidence=0.6215,
                   probabilities={"COVID-19": 0.2475, "Normal": 0.131, PNEUMONIA: 0.6215},
                   lung_attention=0.497, lung_only_label="COVID-19", lung_only_confidence=0.55,
                   depends_on_outside_lungs=True, warnings=["lateral view"])
    return replace(p, **changes)


# -- the words themselves --------------------------------------------------------------------------------
def test_a_two_class_result_in_words():
    shown = present(two_class())
    assert shown.label == "COVID-19" and shown.colour == "#c62828"
    assert shown.headline == "COVID-19 — 83.0 %" and shown.confidence_line == "Confidence: 83.0 %"
    assert shown.probability_lines == ["COVID-19: 83.0 %", "Normal: 17.0 %"]
    assert shown.attention_line == "Attention on lungs: 81 %"
    assert shown.lungs_only_line == "Lungs only (outside blanked): COVID-19 71 %"
    assert shown.notes == () and shown.cautions == () and shown.flags == ()


def test_a_three_class_result_in_words():
    shown = present(three_class())
    assert shown.label == PNEUMONIA
    assert shown.colour == presentation.LABEL_COLOURS[PNEUMONIA]
    assert len(set(presentation.LABEL_COLOURS.values())) == len(presentation.LABEL_COLOURS)  # told apart
    # one line per class of the model, in the model's order
    assert shown.probability_lines == ["COVID-19: 24.8 %", "Normal: 13.1 %", f"{PNEUMONIA}: 62.2 %"]
    assert shown.attention_line == "Attention on lungs: 49 %"  # rounded down: under the threshold reads under 50
    assert shown.cautions == (LOW_ATTENTION_WARNING,
                              OUTSIDE_LUNGS_WARNING.format(lungs_only="COVID-19", shown=PNEUMONIA))
    assert shown.flags == ("looked mostly outside the lungs", "depends on what lies outside the lungs")
    assert shown.flags_text == "looked mostly outside the lungs, depends on what lies outside the lungs, lateral view"


def test_colours_of_the_other_labels():
    assert present(two_class(label="Normal")).colour == "#2e7d32"
    assert present(two_class(label="Indeterminate", indeterminate=True)).colour == "#ef6c00"
    assert present(two_class(label="Not a chest X-ray", not_xray=True)).colour == "#6d4c41"
    assert present(two_class(label="Tuberculosis")).colour == presentation.NEUTRAL_COLOUR  # a retrained model's class


def test_percentages_never_claim_certainty():
    assert percent(0.9996) == "> 99.9 %" and percent(0.0004) == "< 0.1 %" and percent(0.5) == "50.0 %"


def test_an_indeterminate_result_says_so():
    shown = present(three_class(label="Indeterminate", indeterminate=True))
    assert shown.notes == (INDETERMINATE_NOTE,)
    assert "indeterminate" in shown.flags


def test_an_indeterminate_result_gives_the_probabilities_and_no_confidence():
    """Issue 28: "Indeterminate — Confidence 83.7 %" claimed a confidence for a label the model
    did not give. The class probabilities say how it leans; no confidence anywhere."""
    prediction = two_class(label="Indeterminate", indeterminate=True, confidence=0.525,
                           probabilities={"COVID-19": 0.475, "Normal": 0.525})
    shown = present(prediction)
    assert shown.confidence is None and shown.confidence_line is None
    assert shown.headline == "Indeterminate"
    assert shown.probability_lines == ["COVID-19: 47.5 %", "Normal: 52.5 %"]
    line = format_line(PATH, prediction)
    assert "confidence" not in line and "Normal: 52.5 %" in line
    report = _report(prediction, TWO)
    assert "Confidence" not in report and "Normal: 52.5 %" in report
    assert csv_row(PATH, prediction, None, TWO)[2] == ""  # the CSV's confidence cell, as the table's
    record = prediction.to_dict()  # classify --json
    assert record["confidence"] is None and record["probabilities"] == {"COVID-19": 0.475, "Normal": 0.525}


def test_the_lungs_only_caution_says_what_it_means():
    """Issue 28: a green "Normal 96 %" above a red "answers differently with only the lungs" when the
    lungs-only answer was also Normal. The same answer, less surely, is a qualifier in its own
    words and colour; another answer is a warning in the caution colour."""
    same = present(two_class(label="Normal", class_label="Normal", class_name="Normal", confidence=0.96,
                             probabilities={"COVID-19": 0.04, "Normal": 0.96}, lung_only_label="Normal",
                             lung_only_confidence=0.65, depends_on_outside_lungs=True))
    (caution,) = same.caution_items
    assert "still answers Normal" in caution.text and "65 % instead of 96 %" in caution.text
    assert "differently" not in caution.text and "instead of Normal" not in caution.text
    assert not caution.warns and caution.colour == QUALIFIER_COLOUR != CAUTION_COLOUR
    assert same.flags == ("less sure with only the lungs",)
    other = present(two_class(label="Normal", class_label="Normal", class_name="Normal", confidence=0.96,
                              probabilities={"COVID-19": 0.04, "Normal": 0.96}, lung_only_label="COVID-19",
                              lung_only_confidence=0.65, depends_on_outside_lungs=True))
    (caution,) = other.caution_items
    assert "answers COVID-19 instead of Normal" in caution.text
    assert caution.warns and caution.colour == CAUTION_COLOUR
    assert other.flags == ("depends on what lies outside the lungs",)


def test_the_lungs_only_caution_reads_the_same_in_the_panel_and_the_report(qtbot):
    """The panel prints the qualifier plain in its colour, a warning bold in the caution colour; the
    report titles a lone qualifier as a note, not a caution."""
    prediction = two_class(label="Normal", class_label="Normal", class_name="Normal", confidence=0.96,
                           probabilities={"COVID-19": 0.04, "Normal": 0.96}, lung_only_label="Normal",
                           lung_only_confidence=0.65, depends_on_outside_lungs=True)
    _, panel = _panel_text(qtbot, prediction)
    html = panel.lung_warning.text()
    assert "still answers Normal" in html and QUALIFIER_COLOUR in html and CAUTION_COLOUR not in html
    assert "bold" not in html
    sections = report_text(prediction, TWO, "chest.png", when=dt.datetime(2026, 1, 1))
    assert "Cautions" not in sections and any("still answers Normal" in x for x in sections["Note on this result"])
    _, panel = _panel_text(qtbot, replace(prediction, lung_only_label="COVID-19"))
    html = panel.lung_warning.text()
    assert "answers COVID-19 instead of Normal" in html and CAUTION_COLOUR in html and "bold" in html


@pytest.mark.parametrize("label,words", [("COVID-19", "Pattern typical of COVID-19 pneumonia"),
                                         ("Normal", "does not rule out infection")])
def test_what_the_class_means_reaches_the_panel_and_the_report(qtbot, label, words):
    """Issue 24: the model reads the pneumonia pattern on the film, not the virus; the panel (a line
    under the label) and the report's Result section say so in a clinician's words."""
    name = {"COVID-19": "Covid", "Normal": "Normal"}[label]
    prediction = two_class(label=label, class_label=label, class_name=name)
    shown = present(prediction)
    assert words in shown.meaning
    _, panel = _panel_text(qtbot, prediction)
    assert panel.meaning.isVisible() and words in panel.meaning.text()
    assert panel.label.text() == label  # the short label stays
    assert words in _report(prediction, TWO)
    if label == "Normal":  # an infected patient with clear lungs is called Normal
        assert "COVID-19 whose lungs are still clear is called Normal" in shown.meaning
    else:
        assert "not a test for infection" in shown.meaning
    indeterminate = _report(two_class(label="Indeterminate", indeterminate=True), TWO)
    assert "COVID-19: pattern typical of COVID-19 pneumonia" in indeterminate  # each class explained


def test_a_withheld_image_shows_no_class_answer_of_any_kind():
    shown = present(three_class(label="Not a chest X-ray", not_xray=True, lungs_plausible=False))
    assert shown.withheld and shown.confidence is None and shown.probabilities == ()
    assert shown.attention_line is None and shown.lungs_only_line is None and shown.cautions == ()
    assert shown.attention is None  # read off the withheld heatmap: not in the table or the CSV either
    assert shown.notes == (f"{NOT_XRAY_MESSAGE} No plausible pair of lung fields was found.",)
    assert shown.flags == ("not a chest X-ray",) and shown.file_warnings == ("lateral view",)
    anyway = present(three_class(label="Not a chest X-ray", not_xray=True).classify_anyway())
    assert not anyway.withheld and anyway.notes == (CLASSIFIED_ANYWAY_NOTE,)
    assert anyway.flags[:2] == ("not a chest X-ray", "classified anyway") and len(anyway.probabilities) == 3


# -- CSV cells ----------------------------------------------------------------------------------------------
def test_csv_cells_for_two_and_three_classes():
    assert csv_header(THREE)[:6] == ["path", "label", "confidence", "probability COVID-19", "probability Normal",
                                     f"probability {PNEUMONIA}"]
    row = dict(zip(csv_header(THREE), csv_row(PATH, three_class(), None, THREE)))
    assert row == {"path": str(PATH), "label": PNEUMONIA, "confidence": "0.6215",
                   "probability COVID-19": "0.2475", "probability Normal": "0.1310",
                   f"probability {PNEUMONIA}": "0.6215", "lung attention": "0.4970",
                   "lung-only label": "COVID-19", "lung-only confidence": "0.5500", "depends on outside lungs": "yes",
                   "flags": "looked mostly outside the lungs;depends on what lies outside the lungs",
                   "warnings": "lateral view", "error": "", "model": "three 2"}
    row = dict(zip(csv_header(TWO), csv_row(PATH, two_class(), None, TWO)))
    assert (row["confidence"], row["probability COVID-19"], row["probability Normal"]) == ("0.8300", "0.8300", "0.1700")
    assert row["depends on outside lungs"] == "no" and row["flags"] == ""
    failed = dict(zip(csv_header(TWO), csv_row(PATH, None, "the file is empty", TWO)))
    assert failed["error"] == "the file is empty" and failed["label"] == "" and failed["model"] == "two 1"
    assert len(csv_row(PATH, None, "x", THREE)) == len(csv_header(THREE))


# -- the same words in every view ---------------------------------------------------------------------
def _report(prediction, card) -> str:
    sections = report_text(prediction, card, "chest.png", when=dt.datetime(2026, 1, 1))
    return "\n".join(line for body in sections.values() for line in body)


def _panel_text(qtbot, prediction) -> tuple[str, object]:
    from covidgui.gui.result_panel import ResultPanel

    panel = ResultPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_prediction(prediction, PATH.name, has_heatmap=False)
    layout = panel.probabilities_layout
    rows = [layout.itemAt(r, layout.ItemRole.LabelRole).widget().text() for r in range(layout.rowCount())]
    text = "\n".join([panel.label.text(), panel.confidence_text.text(), *rows, panel.lung_attention_text.text().replace("\u00a0", " "),
                      panel.lung_warning.text(), panel.message.text()])
    return text, panel


@pytest.mark.parametrize("prediction,card", [(two_class(), TWO), (three_class(), THREE),
                                             (three_class(label="Indeterminate", indeterminate=True), THREE)],
                         ids=["two classes", "three classes", "indeterminate"])
def test_every_view_shows_the_same_words(qtbot, prediction, card):
    shown = present(prediction)
    line = format_line(PATH, prediction)
    row = dict(zip(csv_header(card), csv_row(PATH, prediction, None, card)))
    report = _report(prediction, card)
    panel_text, panel = _panel_text(qtbot, prediction)

    for text in (line, report, panel_text):
        assert shown.label in text
        for probability in shown.probability_lines:  # "Normal: 13.1 %": same name, same rounding
            assert probability in text
        for sentence in shown.cautions + shown.notes:
            assert sentence.rstrip(".").lower() in text.lower()
        assert shown.attention_line.lower() in text.lower() and shown.lungs_only_line.lower() in text.lower()
    if shown.confidence_line is None:  # indeterminate: no confidence anywhere
        assert "confidence" not in report.lower() and "confidence" not in line
        assert panel.confidence_text.text() == "" and not panel.confidence_bar.isVisible()
    else:
        assert shown.confidence_line in report and shown.confidence_line == panel.confidence_text.text()
        assert f"confidence {shown.confidence}" in line
    assert shown.colour in panel.label.styleSheet()
    assert row["label"] == shown.label and row["flags"] == ";".join(shown.flags)
    assert [float(row[f"probability {card.display_name(c)}"]) for c in card.classes] == pytest.approx(
        [line.value for line in shown.probabilities], abs=1e-4)
    assert panel.probabilities_layout.rowCount() == len(card.classes)


def test_a_withheld_image_reads_the_same_everywhere(qtbot):
    prediction = two_class(label="Not a chest X-ray", not_xray=True, lung_attention=0.3, lungs_plausible=True)
    line = format_line(PATH, prediction)
    report = _report(prediction, TWO)
    panel_text, panel = _panel_text(qtbot, prediction)
    row = dict(zip(csv_header(TWO), csv_row(PATH, prediction, None, TWO)))
    for text in (line, report, panel_text):
        assert "Not a chest X-ray" in text and NOT_XRAY_MESSAGE in text
        assert "%" not in text and "outside the lungs" not in text  # no number, no caution: there is no result
    assert panel.anyway_button.isVisible() and "--classify-anyway" in line
    assert row["confidence"] == row["probability COVID-19"] == "" and row["flags"] == "not a chest X-ray"
    # The lung model's readings are withheld with the rest (issue 28): no attention, no "lungs found".
    assert row["lung attention"] == ""
    record = prediction.to_dict()
    assert record["lung_attention"] is None and record["lungs_found"] is None
    panel.anyway_button.click()
    assert CLASSIFIED_ANYWAY_NOTE in panel.message.text() and panel.label.text() == "COVID-19"
    assert "classified anyway: the input gate" in format_line(PATH, prediction.classify_anyway())
    assert CLASSIFIED_ANYWAY_NOTE in _report(prediction.classify_anyway(), TWO)


def test_the_result_panel_reads_at_a_glance(qtbot, tmp_path):
    _, panel = _panel_text(qtbot, three_class())
    panel.show_input_info(["Lateral view: the model was trained on frontal views."], None)
    panel.resize(320, 760)
    qtbot.wait(50)
    out = tmp_path / "panel.png"
    assert panel.grab().save(str(out)) and out.stat().st_size > 0


def test_the_about_box_and_readme_say_what_the_classes_mean():
    """Issue 24, where the app is explained: the pattern on the film, not the virus."""
    from covidgui.gui.resources import about_html
    from tests.conftest import REPO

    for text in (about_html(None), (REPO / "README.md").read_text(encoding="utf-8")):
        words = " ".join(text.split())
        assert "pattern typical of COVID-19 pneumonia" in words
        assert "not the virus" in words and "lungs are still clear will be called" in words


def test_the_headline_is_never_clipped_at_the_panels_narrowest(qtbot):
    """"Indeterminate" is one word: it cannot wrap, so it must fit the panel at its minimum width
    (at 30 px it read "ndeterminat" in a real window)."""
    from PySide6.QtGui import QFontMetrics

    from covidgui.gui.app import create_app

    create_app()  # the application's style sheet sizes the headline
    _, panel = _panel_text(qtbot, two_class(label="Indeterminate", indeterminate=True))
    panel.resize(panel.minimumWidth(), 700)
    qtbot.wait(50)
    room = panel.label.contentsRect().width() - 2 * panel.label.margin()
    for word in ("Indeterminate", "COVID-19", "Normal"):
        assert QFontMetrics(panel.label.font()).horizontalAdvance(word) <= room, word
