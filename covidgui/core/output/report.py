"""The PDF report of one result.

It shows the image with heatmap and lung outline, the label and what it means, probabilities,
attention on lungs, cautions, the model and the disclaimer.

matplotlib's object API (a ``Figure`` per page printed through the PDF backend), never pyplot's
global state, so it is safe from any thread and needs no display. The text is laid out as a flow
(:class:`_Pages`): beside the image on the first page, then across the page below it, then onto
further A4 pages, each line measured in the font it is printed in, so that no combination of
cautions, DICOM fields and model figures can print over the footer or fall off the page. Patient
identifiers appear only when the caller asks for them. The file is written beside its destination
and moved into place, so an interrupted export never leaves half a PDF under the user's chosen name.
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from pathlib import Path

import numpy as np

from covidgui import DISCLAIMER, __version__
from covidgui.core.io.atomic import write_with
from covidgui.core.output.overlay import compose_overlay, overlay_with_outline
from covidgui.core.output.presentation import (ATTENTION_HELP, CAUTION_COLOUR, CLASS_SHORT_MEANINGS, LUNGS_ONLY_HELP,
                                               present)

A4_INCHES = (8.27, 11.69)
# File names often carry the patient's name (SMITH_JOHN_CXR.png): printed only with patient details.
FILE_NAME_WITHHELD = "image file name withheld"
FOOTER = f"{DISCLAIMER} The result must not be used on its own to diagnose or treat a patient."

# The page, in figure units (0..1 from the bottom left).
LEFT, RIGHT = 0.05, 0.95
SIDE_LEFT = 0.61           # the column beside the image on the first page
BODY_BOTTOM = 0.06         # no body line reaches below this: the footer's band
FOOTER_Y = 0.025
CONTINUED_TOP = 0.95       # where the text resumes on a further page, under its running head
IMAGE_HEIGHT = 0.45
BODY_SIZE, TITLE_SIZE = 8.5, 10
LINE_STEP, TITLE_STEP, SECTION_GAP = 0.0165, 0.021, 0.006
HANG = 12.0                # points: a wrapped line's continuation is indented by this much


@lru_cache(maxsize=4096)
def _text_width(text: str, size: float, weight: str = "normal") -> float:
    """Width in points of ``text`` printed in matplotlib's default font at ``size`` points."""
    from matplotlib.font_manager import FontProperties

    width, _, _ = _renderer().get_text_width_height_descent(text, FontProperties(size=size, weight=weight),
                                                            ismath=False)
    return width


@lru_cache(maxsize=1)
def _renderer():
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(10, 10, 72)  # 72 dpi: one pixel is one point


def wrap_to_width(text: str, width: float, size: float = BODY_SIZE, weight: str = "normal",
                  hang: float = HANG) -> list[str]:
    """``text`` broken between words into lines no wider than ``width`` points (the first line),
    ``width - hang`` (the others); a word longer than a line is broken where it must be."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        room = width - (hang if lines else 0.0)
        candidate = f"{current} {word}" if current else word
        if _text_width(candidate, size, weight) <= room:
            current = candidate
            continue
        if current:
            lines.append(current)
            room = width - hang
        current = word
        while _text_width(current, size, weight) > room and len(current) > 1:  # one long word (a path)
            cut = len(current)
            while cut > 1 and _text_width(current[:cut], size, weight) > room:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    lines.append(current)
    return lines


class _Pages:
    """Text flowing down A4 pages: beside the image on the first page (``side_until``: the height
    below which the first page is full width), then across, then onto a new page whenever the next
    line would reach the footer's band. ``figures`` are the pages, in order."""

    def __init__(self, side_until: float = 1.0):
        from matplotlib.figure import Figure

        self._figure = Figure
        self.figures = [Figure(figsize=A4_INCHES)]
        self.y = 1.0
        self.side_until = side_until
        self._page_points = A4_INCHES[0] * 72

    @property
    def fig(self):
        return self.figures[-1]

    def _left(self) -> float:
        beside_image = len(self.figures) == 1 and self.y > self.side_until
        return SIDE_LEFT if beside_image else LEFT

    def _room(self, step: float) -> None:
        if self.y - step < BODY_BOTTOM:
            self.figures.append(self._figure(figsize=A4_INCHES))
            self.fig.text(LEFT, 0.975, "CovidGUI — chest X-ray second opinion (continued)", fontsize=9,
                          color="#455a64", va="top")
            self.y = CONTINUED_TOP

    def paragraph(self, text: str, size: float = BODY_SIZE, colour: str = "black", weight: str = "normal",
                  indent: float = 0.0, step: float = LINE_STEP) -> None:
        """Print ``text`` wrapped to the column it starts in, ``indent`` points in; it stays in that
        column (a new page takes it to the same place on the page)."""
        self._room(step)
        left = self._left()
        width = (RIGHT - left) * self._page_points - indent
        for i, line in enumerate(wrap_to_width(text, width, size, weight)):
            self._room(step)
            x = left + (indent + (HANG if i else 0.0)) / self._page_points
            self.fig.text(x, self.y, line, fontsize=size, color=colour, weight=weight, va="top")
            self.y -= step

    def section(self, title: str, lines, colours: dict[str, str] | None = None) -> None:
        """A titled section; ``lines`` are strings (a leading run of spaces indents them) printed
        black, or in ``colours[line]``. The title never stays alone at the foot of a page."""
        self._room(TITLE_STEP + LINE_STEP)
        self.fig.text(self._left(), self.y, title, fontsize=TITLE_SIZE, weight="bold", va="top")
        self.y -= TITLE_STEP
        for line in lines:
            stripped = line.lstrip(" ")
            colour = (colours or {}).get(line, "black")
            self.paragraph(stripped, colour=colour, indent=2.5 * (len(line) - len(stripped)))
        self.y -= SECTION_GAP

    def finish(self) -> None:
        """The disclaimer and the page number at the foot of every page."""
        n = len(self.figures)
        for i, fig in enumerate(self.figures, 1):
            fig.text(LEFT, FOOTER_Y, FOOTER, fontsize=8, color="#6d4c41", va="bottom")
            if n > 1:
                fig.text(RIGHT, FOOTER_Y, f"Page {i} of {n}", fontsize=8, color="#6d4c41", va="bottom", ha="right")


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Float RGB (H, W, 3) 0..1 or grey (H, W) -> an 8-bit PNG, written atomically."""
    from PIL import Image

    arr = (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    path = Path(path)
    return write_with(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))


def _percent(value) -> str:
    """A measured figure (accuracy, sensitivity: counted, so 100.0 % can be true); a result's
    probabilities are shown with presentation.percent."""
    return "n/a" if value is None else f"{value * 100:.1f} %"


def validation_lines(card) -> list[str]:
    """The model's measured figures: per source on the locked test split and on sources never
    trained on, when the card has them; otherwise one line per validation set (n, accuracy,
    sensitivity, specificity, AUC)."""
    if getattr(card, "test", None) or getattr(card, "leave_one_source_out", None):
        return card.source_lines()
    lines = []
    for name, m in (card.metrics or {}).items():
        if not isinstance(m, dict) or "n" not in m:
            continue
        auc = m.get("auc")
        lines.append(f"{m.get('dataset', name)}: n = {m['n']}, accuracy {_percent(m.get('accuracy'))}, "
                     f"sensitivity {_percent(m.get('sensitivity'))}, specificity {_percent(m.get('specificity'))}, "
                     f"AUC {'n/a' if auc is None else f'{auc:.3f}'}")
    return lines or ["No validation figures in the model card."]


def cautions_title(prediction, metadata: dict | None = None) -> str:
    """The title of the report's cautions: "Cautions" when any of them warns (the file's own, low
    attention, another answer with only the lungs), "Note on this result" when the only one
    qualifies the result (the same answer, less surely, with only the lungs)."""
    shown = present(prediction)
    warns = bool((metadata or {}).get("warnings")) or any(c.warns for c in shown.caution_items)
    return "Cautions" if warns else "Note on this result"


def report_text(prediction, card, source_name: str, metadata: dict | None = None,
                include_patient: bool = False, when: _dt.datetime | None = None) -> dict[str, list[str]]:
    """The report's text, section by section (what the PDF prints; tests read it too). A line
    starting with spaces is printed indented."""
    metadata = metadata or {}
    when = when or _dt.datetime.now().astimezone()
    shown = present(prediction)
    result = [f"Result: {shown.label}"]
    if shown.meaning:
        result.append(f"What it means: {shown.meaning}")
    result += list(shown.notes)
    if not shown.withheld:  # the numbers of an image the model should not judge are not printed
        if shown.confidence_line:  # none when indeterminate: the probabilities say it
            result.append(shown.confidence_line)
        result.append("Probability of each class:")
        result += [f"  {line}" for line in shown.probability_lines]
        if not shown.meaning:  # no label of its own to explain: say what each class means
            result += [f"  ({line.name}: {CLASS_SHORT_MEANINGS[line.name]})" for line in shown.probabilities
                       if line.name in CLASS_SHORT_MEANINGS]
    if shown.attention_line:
        result.append(f"{shown.attention_line} ({ATTENTION_HELP})")
    if shown.lungs_only_line:
        result.append(f"{shown.lungs_only_line} — {LUNGS_ONLY_HELP}")
    sections = {
        "Image": [f"File: {source_name if include_patient else FILE_NAME_WITHHELD}", f"Report created: {when.strftime('%Y-%m-%d %H:%M %Z').strip()}"],
        "Result": result,
    }
    warnings = list(metadata.get("warnings") or []) + list(shown.cautions)
    if warnings:
        sections[cautions_title(prediction, metadata)] = warnings
    dicom = metadata.get("dicom")
    if dicom:
        rows = [("Modality", "modality"), ("View position", "view_position"), ("Study date", "study_date"),
                ("Body part", "body_part"), ("Manufacturer", "manufacturer")]
        sections["DICOM"] = [f"{label}: {dicom.get(key) or '—'}" for label, key in rows]
    patient = metadata.get("patient")
    if include_patient and patient is not None and not patient.is_empty():
        sections["Patient"] = [f"{label}: {value or '—'}" for label, value in patient.as_rows()]
    sections["Model"] = [f"{card.name} version {card.version} (CovidGUI {__version__})",
                         "Validation:"] + [f"  {line}" for line in validation_lines(card)]
    return sections


def write_report(out_path: str | Path, pixels: np.ndarray, prediction, card, source_name: str,
                 metadata: dict | None = None, heatmap: np.ndarray | None = None, include_patient: bool = False,
                 overlay_opacity: float = 0.45, when: _dt.datetime | None = None) -> Path:
    """Write an A4 PDF of one result (one page, more when its text needs them) and return its path.

    pixels: greyscale (H, W) 0..1 as decoded (core.images.load_xray).
    prediction: core.model.Prediction; card: the core.modelcard.ModelCard of the model that made
        ``prediction`` (its name, version and figures are printed).
        Its attention on lungs is printed and its lung mask outlined, when it has them.
    heatmap: float (h, w) 0..1 (prediction.heatmap), blended over the image when given.
        An image the input gate withheld is printed as decoded: no heatmap and no lung outline,
        whatever is passed (nothing model-derived is drawn for an image the model should not judge).
    metadata: XRay.metadata (warnings, DICOM fields, PatientIdentity); identifiers, and the file
        name (in the body and the PDF's Title), are printed only when ``include_patient`` is True.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    sections = report_text(prediction, card, source_name, metadata, include_patient, when)
    shown = present(prediction)
    pages = _Pages()
    fig = pages.fig
    fig.text(LEFT, 0.972, "CovidGUI — chest X-ray second opinion", fontsize=16, weight="bold", va="top")
    fig.text(LEFT, 0.943, DISCLAIMER, fontsize=10, color="#b71c1c", va="top")
    fig.text(LEFT, 0.915, shown.headline, fontsize=15, weight="bold", color=shown.colour, va="top")

    # The image on the left, the text flowing beside it (the Result section first after the file's,
    # with what the label means) and then across the page below it.
    top = 0.87
    ax = fig.add_axes((LEFT, top - IMAGE_HEIGHT, 0.52, IMAGE_HEIGHT))
    pages.y, pages.side_until = top, top - IMAGE_HEIGHT - 0.01
    heat = None if shown.withheld else heatmap
    lung_mask = None if shown.withheld else prediction.lung_mask
    if lung_mask is not None:  # the segmented lung fields, outlined, so the reader can judge the heatmap
        image = overlay_with_outline(pixels, heat, lung_mask, overlay_opacity)
    else:
        image = compose_overlay(pixels, heat, overlay_opacity)
    ax.imshow(image, interpolation="antialiased")
    ax.set_axis_off()
    title = ["Heatmap: the regions that drove the result"] if heat is not None else []
    title += ["cyan line: segmented lung fields"] if lung_mask is not None else []
    if title:
        ax.set_title("; ".join(title), fontsize=8, color="#455a64")

    # A caution is printed in its own colour: a warning in the caution colour, a qualifier not.
    colours = {c.text: c.colour for c in shown.caution_items}
    for name, body in sections.items():
        if name in ("Cautions", "Note on this result"):
            pages.section(name, body, {line: colours.get(line, CAUTION_COLOUR) for line in body})
        else:
            pages.section(name, body)
    pages.finish()

    def write(tmp: str) -> None:
        with PdfPages(tmp, metadata={"Title": f"CovidGUI report: {source_name}" if include_patient else "CovidGUI report", "Creator": f"CovidGUI {__version__}"}) as pdf:
            for page in pages.figures:
                pdf.savefig(page)

    return write_with(Path(out_path), write)
