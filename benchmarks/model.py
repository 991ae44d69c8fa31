"""The bundled model's figures, measured in one run (the model issue's targets).

    python benchmarks/model.py [--model models/covid_classifier.keras] [--data ../shared/data]

Prints: per-source results on the locked test split (covidgui.core.scoring.sources), overall sensitivity,
specificity and calibration error there, how often the outside-lungs check fires on right and
wrong calls, parameters and FLOPs, warm forward-pass latency (one image; per image in a batch of
32; for a model with test-time views, against the same network on the film alone), heatmap
latency, and the input gate's rejection rates on non-X-rays
(benchmarks/non_xrays.py) and on the real X-rays of the test split.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.non_xrays import write_non_xrays  # noqa: E402
from covidgui.core.errors import ImageLoadError  # noqa: E402
from covidgui.core.scoring.metrics import classification_report, expected_calibration_error  # noqa: E402
from covidgui.core.inference.classifier import Classifier, softmax  # noqa: E402
from covidgui.core.scoring.evaluation import predict_labelled  # noqa: E402
from covidgui.core.scoring.sources import find_sources, format_table, locked_split, rows_by_source  # noqa: E402
from covidgui.core.analysis.batch import predict_files  # noqa: E402


def median_ms(fn, runs: int = 30) -> float:
    """Median wall time of ``fn`` in ms over ``runs`` calls, after one warm-up call."""
    fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def views_cost(classifier, one: np.ndarray, batch: np.ndarray, rounds: int = 5) -> str:
    """The model's graph against the same network's graph on the film alone (exported here, with
    TensorFlow), timed in alternating rounds of the same run: medians and their ratio."""
    from covidgui.core.inference.classifier import classifier_graph
    from covidgui.core.inference.runtime import Graph

    alone = Graph(classifier_graph(classifier.keras_model), "the film alone")
    times: dict[str, list[float]] = {"views": [], "alone": [], "views32": [], "alone32": []}
    for _ in range(rounds):
        for name, graph in (("views", classifier.graph), ("alone", alone)):
            times[name].append(median_ms(lambda: graph(one[..., None]), 10))
            times[name + "32"].append(median_ms(lambda: graph(batch[..., None]), 3) / len(batch))
    m = {k: statistics.median(v) for k, v in times.items()}
    return (f"graph with its {len(classifier.card.preprocessing['test_time_views'])} test-time views against the "
            f"film alone: one image {m['views']:.1f} / {m['alone']:.1f} ms (ratio {m['views'] / m['alone']:.2f}); "
            f"batch of 32 {m['views32']:.2f} / {m['alone32']:.2f} ms per image (ratio {m['views32'] / m['alone32']:.2f})")


def predictions(classifier, paths):
    out = [r for r in predict_files(classifier, paths)]
    bad = [r for r in out if isinstance(r, ImageLoadError)]
    if bad:
        raise SystemExit(f"unreadable: {bad}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    classifier = Classifier.load(args.model)
    card = classifier.card
    print(f"model {card.name} v{card.version}: {card.architecture['parameters']:,} parameters, "
          f"{card.architecture['flops_per_image'] / 1e9:.3f} GFLOP per image, "
          f"file {classifier.path.stat().st_size / 1e6:.2f} MB; trained in {card.training.get('seconds')} s")

    # The locked test split (covidgui.core.scoring.sources): used for nothing but these figures; the
    # sources of the model's classes only (a two-class model is not tested on pneumonia films).
    split = locked_split(find_sources(args.data, classes=card.classes), card.classes)
    predicted = predict_labelled(classifier, split.test)
    if predicted.unreadable:
        raise SystemExit(f"unreadable: {predicted.unreadable}")
    print("locked test split, per source (correct = the source's class was called; gate and band ignored):")
    rows = rows_by_source(predicted, card)
    for row in rows:
        flags = row["outside_lungs_flag"]
        called = ", ".join(f"{c} {k}" for c, k in row["called"].items())
        abnormal = (f"; called abnormal {row['abnormal']}/{row['n']} ({row['abnormal'] / row['n']:.1%})"
                    if len(card.classes) > 2 and "abnormal" in row else "")
        print(f"  {row['source']:<22} {row['class']:<9} {row['correct']:>4}/{row['n']:<4} "
              f"({row['correct'] / row['n']:.1%}){abnormal}; called: {called}; ECE {row['ece']:.3f}; "
              f"rejected {row['rejected']}, indeterminate {row['indeterminate']}; outside-lungs check fired on "
              f"{flags['right']} right and {flags['wrong']} wrong calls")
    print(format_table(rows))
    all_results, all_labels, all_probs = predicted.results, predicted.labels, predicted.probabilities
    report = classification_report(all_labels, all_probs, card.classes, "Covid")
    print(f"locked test, all sources: {report['correct']}/{report['n']}, sensitivity {report['sensitivity']:.3f}, "
          f"specificity {report['specificity']:.3f}, AUC {report['auc']:.3f}"
          + (" (COVID-19 against the rest; AUC one-vs-rest)" if len(card.classes) > 2 else ""))
    if len(card.classes) > 2:
        print("confusion matrix (rows true, columns called): " + ", ".join(card.classes))
        for name, cm_row in zip(card.classes, report["confusion_matrix"]):
            print(f"  {name:<10} " + " ".join(f"{v:>5}" for v in cm_row))
        for name, stats in report["per_class"].items():
            print(f"  {name}: sensitivity {stats['sensitivity']:.3f}, specificity {stats['specificity']:.3f} "
                  f"(n {stats['support']})")
    raw_logits = np.log(np.clip(all_probs, 1e-12, 1)) * card.temperature  # logits up to a constant
    print(f"ECE on the locked test ({len(all_results)} images): "
          f"before calibration {expected_calibration_error(softmax(raw_logits), all_labels):.3f}, "
          f"after (T={card.temperature:.2f}) {expected_calibration_error(all_probs, all_labels):.3f}")
    indeterminate = sum(r.indeterminate for r in all_results)
    print(f"indeterminate (band {card.indeterminate_band}): {indeterminate}/{len(all_results)}")
    right = predicted.right
    fired = np.array([bool(r.depends_on_outside_lungs) for r in all_results])
    print(f"outside-lungs check fired on {fired[right].sum()}/{right.sum()} right calls and "
          f"{fired[~right].sum()}/{(~right).sum()} wrong calls")
    covid = [p for p, lab in zip(split.test.paths, split.test.labels) if split.test.classes[lab] == "Covid"]

    size = classifier.input_size
    one = np.random.default_rng(0).random((1, size, size), dtype=np.float32)
    batch = np.random.default_rng(1).random((32, size, size), dtype=np.float32)
    print(f"warm forward pass: one image {median_ms(lambda: classifier.predict_inputs(one), 50):.1f} ms; "
          f"batch of 32 {median_ms(lambda: classifier.predict_inputs(batch), 10) / 32:.2f} ms per image "
          "(medians)")
    if classifier.card.preprocessing.get("test_time_views"):
        print(views_cost(classifier, one, batch))
    print(f"heatmap (classify + Grad-CAM, decode included): "
          f"{median_ms(lambda: classifier.predict_file(covid[0], heatmap=True), 10):.0f} ms median")

    rejected_xrays = [r.path.name for r in all_results if r.not_xray]
    print(f"gate on real X-rays: {len(rejected_xrays)}/{len(all_results)} rejected "
          f"({len(rejected_xrays) / len(all_results):.1%}) {rejected_xrays}")
    with tempfile.TemporaryDirectory() as tmp:
        non = write_non_xrays(tmp)
        results = predictions(classifier, [p for _, p in non])
        accepted = [name for (name, _), r in zip(non, results) if not r.not_xray]
        print(f"gate on non-X-rays: {len(non) - len(accepted)}/{len(non)} rejected "
              f"({(len(non) - len(accepted)) / len(non):.1%}); accepted: {accepted}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
