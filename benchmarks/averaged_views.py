"""Would averaging the network over mirrored or slightly zoomed copies of a film rank SIIM's films
better (issue 24, "Read the film")? Test-time augmentation, measured before it is built.

    python benchmarks/averaged_views.py [--model models/covid_classifier.keras] [--data ../shared/data] [--json out.json]

Scores the Keras network (raw logits, every readable film; no input gate, no temperature: AUC
does not depend on either) on SIIM's calibration part and its locked test (Covid = Typical,
Normal = Negative), for the plain film, its mirror image, a 90 % centre crop zoomed back, and
the crop mirrored; prints the AUC of the averaged logits of each combination. The choice is read
on the calibration part; the locked test is printed for every combination for the record.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from covidgui.core.inference.runtime import load_keras  # noqa: E402
from covidgui.core.scoring.sources import find_sources, locked_split  # noqa: E402
from covidgui.core.training.sequence import make_sequence  # noqa: E402

CLASSES = ["Covid", "Normal"]
COMBINATIONS = {"plain": ["plain"], "plain + mirror": ["plain", "mirror"], "plain + zoom": ["plain", "zoom"],
                "all four": ["plain", "mirror", "zoom", "zoom mirror"]}


def views(x):
    """The four views of a batch (B, S, S, 1)."""
    import tensorflow as tf

    size = x.shape[1]
    crop = int(round(size * 0.9))
    offset = (size - crop) // 2
    zoom = tf.image.resize(x[:, offset:offset + crop, offset:offset + crop, :], (size, size))
    return {"plain": x, "mirror": x[:, :, ::-1, :], "zoom": zoom, "zoom mirror": zoom[:, :, ::-1, :]}


def logits_of_views(network, files, size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    sequence = make_sequence(files.paths, files.labels, size, 32, False, 0)
    out, labels = {}, []
    for x, y, _ in sequence.readable_batches():
        labels.append(y)
        for name, view in views(x[..., :1]).items():
            out.setdefault(name, []).append(np.asarray(network(view, training=False)))
    return {k: np.concatenate(v) for k, v in out.items()}, np.concatenate(labels)


def auc_of(logits: dict, labels: np.ndarray, names: list[str]) -> float:
    from sklearn.metrics import roc_auc_score

    mean = np.mean([logits[n] for n in names], axis=0)
    return float(roc_auc_score(labels == CLASSES.index("Covid"), mean[:, 0] - mean[:, 1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "covid_classifier.keras")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    network = load_keras(args.model)
    size = int(network.input_shape[1])
    split = locked_split(find_sources(args.data, names=["siim-covid"], classes=CLASSES), CLASSES)
    result = {"model": str(args.model)}
    for part, files in (("calibration", split.calibration), ("locked_test", split.test)):
        logits, labels = logits_of_views(network, files, size)
        result[part] = {"n": int(len(labels)), **{name: round(auc_of(logits, labels, names), 4)
                                                  for name, names in COMBINATIONS.items()}}
        print(part, result[part], flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
