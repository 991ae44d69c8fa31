"""Give saved models their inference graph (``name.tflite``), recorded in their card.

    python scripts/export_graphs.py [MODEL.keras ...]     (default: the bundled models in models/)

The app runs models as LiteRT graphs (covidgui.core.inference.runtime); a model saved before graphs
were written gets its graph exported on every load, which needs TensorFlow. This writes it once,
beside the model, as one unit with the model's other files (covidgui.core.models.model_files).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidgui.core.inference.classifier import Classifier  # noqa: E402
from covidgui.core.inference.lungs import LungSegmenter, bundled_segmenter_path  # noqa: E402
from covidgui.core.models.model_files import add_graph, bundled_model_path  # noqa: E402
from covidgui.core.models.modelcard import card_path  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    args = parser.parse_args()
    for path in args.models or [bundled_model_path(), bundled_segmenter_path()]:
        card = json.loads(card_path(path).read_text(encoding="utf-8"))
        if "classes" in card:  # a classifier's card
            classifier = Classifier.load(path, lungs=False)
            written = add_graph(path, classifier.graph.flatbuffer, classifier.card)
        else:  # the lung model's card, a plain dict
            written = add_graph(path, LungSegmenter.load(path).graph.flatbuffer, card)
        print(f"{written}: {written.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
