"""The PDF report of one result.

It shows the image with heatmap and lung outline, the label, probabilities, attention on lungs,
the model and the disclaimer.

matplotlib's object API (a ``Figure`` printed through the PDF backend), never pyplot's global
state, so it is safe from any thread and needs no display. Patient identifiers appear only when
the caller asks for them. The file is written beside its destination and moved into place, so an
interrupted export never leaves half a PDF under the user's chosen name.
"""

from __future__ import annotations

import datetime as _dt
import textwrap
from pathlib import Path

import numpy as np

from covidgui import DISCLAIMER, __version__
from covidgui.core.io.atomic import write_with
from covidgui.core.output.overlay import compose_overlay, overlay_with_outline
from covidgui.core.output.presentation import ATTENTION_HELP, LUNGS_ONLY_HELP, present

A4_INCHES = (8.27, 11.69)
# File names often carry the patient's name (SMITH_JOHN_CXR.png): printed only with patient details.
FILE_NAME_WITHHELD = "image file name withheld"


def _flow(fig, x: float, y: float, sections: dict[str, list[str]], wrap: int) -> float:
    """Print titled sections downwards from (x, y) in figure units; returns where it stopped."""
    for title, body in sections.items():
        fig.text(x, y, title, fontsize=10, weight="bold", va="top")
        y -= 0.021
        for line in body:
            for i, part in enumerate(textwrap.wrap(line, wrap, subsequent_indent="    ") or [""]):
                fig.text(x, y, part, fontsize=8.5, va="top")
                y -= 0.0165
        y -= 0.006
    return y


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


def report_text(prediction, card, source_name: str, metadata: dict | None = None,
                include_patient: bool = False, when: _dt.datetime | None = None) -> dict[str, list[str]]:
    """The report's text, section by section (what the PDF prints; tests read it too)."""
    metadata = metadata or {}
    when = when or _dt.datetime.now().astimezone()
    shown = present(prediction)
    result = [f"Result: {shown.label}"] + list(shown.notes)
    if not shown.withheld:  # the numbers of an image the model should not judge are not printed
        result.append(shown.confidence_line)
        result += [f"  {line}" for line in shown.probability_lines]
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
        sections["Cautions"] = warnings
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
    """Write a one-page A4 PDF of one result and return its path.

    pixels: greyscale (H, W) 0..1 as decoded (core.images.load_xray).
    prediction: core.model.Prediction; card: core.modelcard.ModelCard (its metrics are printed).
        Its attention on lungs is printed and its lung mask outlined, when it has them.
    heatmap: float (h, w) 0..1 (prediction.heatmap), blended over the image when given.
    metadata: XRay.metadata (warnings, DICOM fields, PatientIdentity); identifiers, and the file
        name (in the body and the PDF's Title), are printed only when ``include_patient`` is True.
    """
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    sections = report_text(prediction, card, source_name, metadata, include_patient, when)
    fig = Figure(figsize=A4_INCHES)
    fig.text(0.05, 0.972, "CovidGUI — chest X-ray second opinion", fontsize=16, weight="bold", va="top")
    fig.text(0.05, 0.943, DISCLAIMER, fontsize=10, color="#b71c1c", va="top")
    shown = present(prediction)
    fig.text(0.05, 0.915, shown.headline, fontsize=15, weight="bold", color=shown.colour, va="top")

    # The image on the left, the short sections beside it, the long ones (cautions, model) below.
    ax = fig.add_axes((0.05, 0.40, 0.52, 0.47))
    lung_mask = prediction.lung_mask
    if lung_mask is not None:  # the segmented lung fields, outlined, so the reader can judge the heatmap
        image = overlay_with_outline(pixels, heatmap, lung_mask, overlay_opacity)
    else:
        image = compose_overlay(pixels, heatmap, overlay_opacity)
    ax.imshow(image, interpolation="antialiased")
    ax.set_axis_off()
    title = ["Heatmap: the regions that drove the result"] if heatmap is not None else []
    title += ["cyan line: segmented lung fields"] if lung_mask is not None else []
    if title:
        ax.set_title("; ".join(title), fontsize=8, color="#455a64")
    side = {k: v for k, v in sections.items() if k in ("Image", "Result", "DICOM", "Patient")}
    below = {k: v for k, v in sections.items() if k not in side}
    _flow(fig, 0.61, 0.87, side, wrap=42)
    _flow(fig, 0.05, 0.37, below, wrap=105)
    fig.text(0.05, 0.02, f"{DISCLAIMER} The result must not be used on its own to diagnose or treat a patient.",
             fontsize=8, color="#6d4c41")

    def write(tmp: str) -> None:
        with PdfPages(tmp, metadata={"Title": f"CovidGUI report: {source_name}" if include_patient else "CovidGUI report", "Creator": f"CovidGUI {__version__}"}) as pdf:
            pdf.savefig(fig)

    return write_with(Path(out_path), write)
