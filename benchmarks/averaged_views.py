"""Which test-time views rank SIIM's films best (issue 24, "Read the film")? Measured before a
view is put in a model's card.

    python benchmarks/averaged_views.py [--model models/covid_classifier.keras] [--data ../shared/data]
                                        [--combinations "" scaled80 mirrored,zoom90,zoom95 ...] [--json out.json]

Scores the Keras network of --model (raw logits, every readable film; no input gate, no temperature:
AUC depends on neither) on SIIM's calibration part and its locked test (Covid = Typical, Normal =
Negative), averaging its logits over the film and each combination of views
(covidgui.core.inference.views: the same function the inference graph and training use, so a
combination scores here what it would in the app), with the GFLOP a film would cost. The network's
own card views are ignored: every combination starts from the film alone. Choose on the
calibration part; the locked test is printed for every combination for the record.

The views table of benchmarks/results/siim-summary.md ("Within the 1.5 GFLOP") was made with a
scratch script before this one read the product's views; its rows with views this module knows
(the film alone, film + mirrored, the four views of v4.1.0, film + scaled80) are what the
defaults give again. Its crops at the film's own scale (central 208-216 px) are not views the app
knows and are not here.
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
from covidgui.core.inference.views import averaged_logits, parse_views, smaller_view_reader  # noqa: E402
from covidgui.core.scoring.sources import find_sources, locked_split  # noqa: E402
from covidgui.core.training.network import film_flops  # noqa: E402
from covidgui.core.training.sequence import make_sequence  # noqa: E402

CLASSES = ["Covid", "Normal"]
# "" is the film alone; each other entry a comma-separated list of views averaged with the film.
DEFAULT_COMBINATIONS = ["", "mirrored", "mirrored,zoom90,zoom95", "scaled80"]


def label_of(views: tuple[str, ...]) -> str:
    return "film + " + " + ".join(views) if views else "the film alone"


def combination_logits(network, files, size: int, combinations: list[tuple[str, ...]]):
    """({combination: logits (N, C)}, labels (N,)) of the readable files, prepared as training's
    clean batches are (the preprocessing every CovidGUI model shares at this size)."""
    readers = {views: smaller_view_reader(network, views) for views in combinations}
    sequence = make_sequence(files.paths, files.labels, size, 32, False, 0)
    out, labels = {views: [] for views in combinations}, []
    for x, y, _ in sequence.readable_batches():
        labels.append(y)
        for views, reader in readers.items():
            logits, _ = averaged_logits(lambda batch: network(batch, training=False), x[..., :1], views, reader)
            out[views].append(np.asarray(logits))
    return {views: np.concatenate(rows) for views, rows in out.items()}, np.concatenate(labels)


def auc_of(logits: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    covid = CLASSES.index("Covid")
    return float(roc_auc_score(labels == covid, logits[:, covid] - logits[:, 1 - covid]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "covid_classifier.keras")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--combinations", nargs="+", default=DEFAULT_COMBINATIONS,
                        help='each a comma-separated list of views averaged with the film ("" = the film alone)')
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    combinations = [parse_views(c, where="--combinations") for c in args.combinations]
    started = time.perf_counter()
    network = load_keras(args.model)
    size = int(network.input_shape[1])
    split = locked_split(find_sources(args.data, names=["siim-covid"], classes=CLASSES), CLASSES)
    rows = {label_of(views): {"views": list(views), "gflop": round(film_flops(network, views) / 1e9, 2)}
            for views in combinations}
    films = {}
    for part, files in (("calibration", split.calibration), ("locked_test", split.test)):
        logits, labels = combination_logits(network, files, size, combinations)
        films[part] = int(len(labels))
        for views in combinations:
            rows[label_of(views)][part] = round(auc_of(logits[views], labels), 4)
    print(f"{'views averaged':45s} {'GFLOP':>6s} {'calibration':>12s} {'locked test':>12s}")
    for name, row in rows.items():
        print(f"{name:45s} {row['gflop']:6.2f} {row['calibration']:12.4f} {row['locked_test']:12.4f}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "films": films, "rows": rows,
                                         "seconds": round(time.perf_counter() - started, 1)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
