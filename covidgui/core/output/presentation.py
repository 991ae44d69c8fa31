"""What a result says and in which colour: the words, flags, colours and CSV cells every view shows.

The result panel, the Batch table, ``covidgui classify``, the CSV and the PDF report all read a
result through :func:`present` (and the CSV through :func:`csv_row`), so a sentence or a colour
changes here and nowhere else. Nothing here knows Qt: a test can check what a clinician will read
without a screen. Pictures of a result (heatmap, lung outline) are drawn by
:mod:`covidgui.core.output.overlay`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from covidgui.core.inference.classifier import INDETERMINATE, NOT_XRAY
from covidgui.core.inference.lungs import NO_LUNGS_REASON, low_attention

# -- colours: text is always there too, never colour alone ------------------------------------------
LABEL_COLOURS = {
    "COVID-19": "#c62828",                   # red
    "Normal": "#2e7d32",                     # green
    "Pneumonia (not COVID-19)": "#6a1b9a",   # purple: abnormal, but not the red of COVID-19
    INDETERMINATE: "#ef6c00",                # orange
    NOT_XRAY: "#6d4c41",                     # brown: no class result
}
NEUTRAL_COLOUR = "#424242"  # a label without a colour of its own (a class of a retrained model), "No image"
NO_RESULT_COLOUR = "#6d4c41"  # the panel's "No result" (the file could not be read)
FAILED_COLOUR = "#b71c1c"  # a Batch row that failed, and the counts of failures
CAUTION_COLOUR = "#bf360c"  # a caution about the result: the panel's, and a number that carries one in the Batch table
# A note that qualifies a result without contradicting it (the lungs-only check agrees, only less
# surely): the slate of an explanation, not the red-orange of a warning, and never bold.
QUALIFIER_COLOUR = "#455a64"

# -- words --------------------------------------------------------------------------------------------
FAILED_LABEL = "Failed"  # the Batch table's label of a file that could not be classified
NOT_XRAY_MESSAGE = "This does not look like a chest X-ray; no class probabilities are given."
CLASSIFIED_ANYWAY_NOTE = ("Classified anyway: the input gate judged this not to be a chest X-ray, and the model "
                          "was not trained on such images.")
INDETERMINATE_NOTE = ("Indeterminate: the model is not confident either way; "
                      "the probabilities are shown for reference.")
LOW_ATTENTION_WARNING = "The model looked mostly outside the lungs; treat this result with caution."
# The shortcut check, in the two things it can mean: with only the lung fields visible the model
# gives another answer (a warning), or the same answer less surely (a qualifier, not a warning).
OUTSIDE_LUNGS_WARNING = ("With only the lung fields visible the model answers {lungs_only} instead of {shown}: "
                         "this result depends on what lies outside the lungs. Treat it with caution.")
LESS_SURE_NOTE = ("With only the lung fields visible the model still answers {shown}, but less surely "
                  "({lungs_only} instead of {full}): part of its confidence depends on what lies outside the lungs.")
ATTENTION_HELP = "share of the heatmap inside the segmented lung fields"
LUNGS_ONLY_HELP = ("the answer when everything outside the lung fields is blanked "
                   "(a check for shortcuts outside the lungs)")

# What a class means, in a clinician's words: the model reads the pattern on the film, not the
# virus (issue 24). The short label stays where space is tight (the Batch table, the CSV); the
# meaning goes where a result is explained (under the panel's label, the report's Result section).
CLASS_MEANINGS = {
    "COVID-19": ("Pattern typical of COVID-19 pneumonia on this film. The model reads the lungs, not the virus: "
                 "it is not a test for infection."),
    "Normal": ("No pneumonia pattern found on this film. This does not rule out infection: a patient with "
               "COVID-19 whose lungs are still clear is called Normal."),
    "Pneumonia (not COVID-19)": "Pneumonia pattern on this film, not typical of COVID-19.",
}
# The same, in a few words, where every class is listed (an indeterminate result's probabilities).
CLASS_SHORT_MEANINGS = {
    "COVID-19": "pattern typical of COVID-19 pneumonia",
    "Normal": "no pneumonia pattern (does not rule out infection)",
    "Pneumonia (not COVID-19)": "pneumonia pattern not typical of COVID-19",
}

# Short words for the Batch table's Flags column and the CSV's "flags" cell.
FLAG_NOT_XRAY = "not a chest X-ray"
FLAG_CLASSIFIED_ANYWAY = "classified anyway"
FLAG_INDETERMINATE = "indeterminate"
FLAG_LOW_ATTENTION = "looked mostly outside the lungs"
FLAG_OUTSIDE_LUNGS = "depends on what lies outside the lungs"
FLAG_LESS_SURE = "less sure with only the lungs"


def percent(p: float) -> str:
    """A probability 0..1 as shown everywhere: one decimal, and never "100.0 %" or "0.0 %", which
    would claim a certainty no model has ("> 99.9 %", "< 0.1 %")."""
    if p > 0.999:
        return "> 99.9 %"
    if p < 0.001:
        return "< 0.1 %"
    return f"{p * 100:.1f} %"


def attention_percent(attention: float) -> str:
    """Attention on lungs 0..1 as shown everywhere ("49 %"): rounded down, so that a share under the
    warning threshold never reads as 50 %."""
    return f"{math.floor(attention * 100)} %"


def model_line(card) -> str:
    """The model that gave a result, as the result panel names it ("Model: covid-cnn v2.0.0")."""
    return f"Model: {card.name} v{card.version}"


def label_colour(label: str, default: str | None = NEUTRAL_COLOUR) -> str | None:
    """The hex colour of a label ("#c62828" for COVID-19); ``default`` for a label without one."""
    return LABEL_COLOURS.get(label, default)


def class_meaning(label: str) -> str | None:
    """What a class label means on the film, in a clinician's words (None for a label without one:
    Indeterminate, Not a chest X-ray, a class of a retrained model)."""
    return CLASS_MEANINGS.get(label)


@dataclass(frozen=True)
class Caution:
    """One caution about a result: its sentence, its colour, and whether it warns (bold, the caution
    colour) or only qualifies the result (plain, the qualifier colour)."""

    text: str
    colour: str
    warns: bool = True


@dataclass(frozen=True)
class ProbabilityLine:
    """One class's probability: its display name, the value 0..1, and the text ("Normal: 17.0 %")."""

    name: str
    value: float
    text: str


@dataclass(frozen=True)
class Presentation:
    """Everything a view shows of one result, in words (see :func:`present`).

    label, colour: the headline word(s) and their hex colour.
    meaning: what the label means on the film ("Pattern typical of COVID-19 pneumonia …"), or None.
    withheld: the input gate rejected the image: no confidence, probabilities, attention or
        lungs-only answer are shown (they belong to an image the model should not judge).
    confidence: "83.0 %" (None when withheld, and when indeterminate: there is no label to be
        confident in, the class probabilities say it); confidence_line: "Confidence: 83.0 %".
    probabilities: one line per class of the model, in the model card's order (empty when withheld).
    notes: sentences about the result itself, in display order (not an X-ray; classified anyway;
        indeterminate).
    attention: the measurement, "49 %", or None (not measured, or withheld): the Batch table's
        column, as the CSV's; attention_line: "Attention on lungs: 49 %" in the result, or None
        (and then no caution either: there is no result to doubt).
    lungs_only_line: "Lungs only (outside blanked): COVID-19 71 %", the shortcut check, or None.
    caution_items: cautions about the result, in display order (low attention, the lungs-only
        check), each with its colour; ``cautions`` gives their sentences.
    flags: short words for the Batch table and the CSV.
    file_warnings: short notes about the input file (multi-frame, modality, body part, lateral view).
    """

    label: str
    colour: str
    meaning: str | None
    withheld: bool
    low_attention: bool
    confidence: str | None
    confidence_line: str | None
    probabilities: tuple[ProbabilityLine, ...]
    notes: tuple[str, ...]
    attention: str | None
    attention_line: str | None
    lungs_only_line: str | None
    caution_items: tuple[Caution, ...]
    flags: tuple[str, ...]
    file_warnings: tuple[str, ...]

    @property
    def cautions(self) -> tuple[str, ...]:
        """The cautions' sentences, in display order."""
        return tuple(c.text for c in self.caution_items)

    @property
    def headline(self) -> str:
        """The label with its confidence ("COVID-19 — 83.0 %"), or the label alone (withheld,
        indeterminate)."""
        return self.label if self.confidence is None else f"{self.label} — {self.confidence}"

    @property
    def probability_lines(self) -> list[str]:
        return [line.text for line in self.probabilities]

    @property
    def flags_text(self) -> str:
        """The Batch table's Flags cell: the result's flags, then the file's own cautions."""
        return ", ".join(self.flags + self.file_warnings)


def present(prediction) -> Presentation:
    """A core.inference.classifier.Prediction (any number of classes) as the words every view shows."""
    p = prediction
    withheld = p.withheld
    notes: list[str] = []
    if withheld:
        notes.append(NOT_XRAY_MESSAGE + (f" {NO_LUNGS_REASON[:1].upper()}{NO_LUNGS_REASON[1:]}."
                                         if p.lungs_plausible is False else ""))
    else:
        if p.classified_anyway:
            notes.append(CLASSIFIED_ANYWAY_NOTE)
        if p.indeterminate:
            notes.append(INDETERMINATE_NOTE)
    # An indeterminate result gives no label, so no confidence in one: the probabilities say it.
    confidence = None if withheld or p.indeterminate else percent(p.confidence)
    probabilities = () if withheld else tuple(ProbabilityLine(name, value, f"{name}: {percent(value)}")
                                              for name, value in p.probabilities.items())
    # Attention is read off the heatmap, which is withheld with the rest (nothing model-derived for
    # an image the model should not judge: issue 28).
    attention = None if withheld or p.lung_attention is None else attention_percent(p.lung_attention)
    low = not withheld and low_attention(p.lung_attention)
    checked = not withheld and p.lung_only_label is not None  # the shortcut check is a class answer too
    outside = checked and bool(p.depends_on_outside_lungs)
    lungs_only = (f"Lungs only (outside blanked): {p.lung_only_label} {p.lung_only_confidence * 100:.0f} %"
                  if checked else None)
    cautions = [Caution(LOW_ATTENTION_WARNING, CAUTION_COLOUR)] if low else []
    flags = (([FLAG_NOT_XRAY] if p.not_xray else [])
             + ([FLAG_CLASSIFIED_ANYWAY] if p.classified_anyway else [])
             + ([FLAG_INDETERMINATE] if p.indeterminate else [])
             + ([FLAG_LOW_ATTENTION] if low else []))
    if outside:
        caution, flag = _lungs_only_caution(p)
        cautions.append(caution)
        flags.append(flag)
    return Presentation(
        label=p.label, colour=label_colour(p.label), meaning=class_meaning(p.label), withheld=withheld,
        low_attention=low,
        confidence=confidence, confidence_line=None if confidence is None else f"Confidence: {confidence}",
        probabilities=probabilities, notes=tuple(notes),
        attention=attention, attention_line=None if attention is None else f"Attention on lungs: {attention}",
        lungs_only_line=lungs_only, caution_items=tuple(cautions), flags=tuple(flags),
        file_warnings=tuple(getattr(p, "warnings", None) or ()))


def _lungs_only_caution(p) -> tuple[Caution, str]:
    """The shortcut check fired: a warning when the lungs-only answer is another class, a qualifier
    when it is the same class given less surely. Compared with the class the model leans to (its
    highest probability), which an indeterminate result has too."""
    leaning = max(p.probabilities, key=p.probabilities.get)
    if p.lung_only_label != leaning:
        text = OUTSIDE_LUNGS_WARNING.format(lungs_only=p.lung_only_label, shown=leaning)
        return Caution(text, CAUTION_COLOUR), FLAG_OUTSIDE_LUNGS
    text = LESS_SURE_NOTE.format(shown=leaning, lungs_only=f"{p.lung_only_confidence * 100:.0f} %",
                                 full=f"{p.probabilities[leaning] * 100:.0f} %")
    return Caution(text, QUALIFIER_COLOUR, warns=False), FLAG_LESS_SURE


# -- CSV cells ------------------------------------------------------------------------------------------
def csv_header(card) -> list[str]:
    """The CSV columns for a model card: one probability column per class, in the card's order."""
    return (["path", "label", "confidence"]
            + [f"probability {card.display_name(c)}" for c in card.classes]
            + ["lung attention", "lung-only label", "lung-only confidence", "depends on outside lungs",
               "flags", "warnings", "error", "model"])


def csv_row(path: str | Path, prediction, error: str | None, card) -> list[str]:
    """One CSV row (strings, the columns of :func:`csv_header`) for a file's result or its error.

    Probabilities, confidence and lung attention as 0..1 with 4 decimals (machine-readable, unlike
    the views' percentages). Lung attention is empty without the lung model or when the heatmap is
    empty; the lung-only columns (the shortcut check) are empty without the lung model or plausible
    lungs. An image the input gate withheld has no confidence, class probabilities or lung-only
    answer, unless it was classified anyway; an indeterminate result has no confidence (its
    probabilities are there). ``flags`` and ``warnings`` (the file's cautions:
    multi-frame, modality, body part, lateral view) are separated by ";". Cells are not yet guarded
    against spreadsheet formulas: the writer does that.
    """
    model = f"{card.name} {card.version}"
    p = prediction
    if p is None:
        return [str(path), "", ""] + ["" for _ in card.classes] + ["", "", "", "", "", "", error or "", model]
    shown = present(p)
    withheld = shown.withheld
    probs = ["" if withheld else f"{p.probabilities[card.display_name(c)]:.4f}" for c in card.classes]
    confidence = "" if shown.confidence is None else f"{p.confidence:.4f}"  # as the views: none when indeterminate
    attention = "" if shown.attention is None else f"{p.lung_attention:.4f}"  # withheld with the rest
    lung_only = ([p.lung_only_label, f"{p.lung_only_confidence:.4f}", "yes" if p.depends_on_outside_lungs else "no"]
                 if shown.lungs_only_line is not None else ["", "", ""])  # the check as the views show it
    return ([str(path), p.label, confidence] + probs + [attention] + lung_only
            + [";".join(shown.flags), ";".join(shown.file_warnings), "", model])
