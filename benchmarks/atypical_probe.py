"""Issue 27, first measurement: do a model's features carry SIIM's Atypical pattern at all?

    python benchmarks/atypical_probe.py [--model models/covid_classifier.keras] [--data ../shared/data]
                                        [--json out.json]

A linear probe: the model's pooled features (the input gate's, the layer before the logits) of
every siim-covid film of the three classes (Covid = Typical, Normal = Negative, Pneumonia =
Atypical), a class-balanced multinomial logistic regression (scikit-learn, features standardised)
fitted on the train part of the locked split, its regularisation chosen on the calibration part,
and judged on the locked test: one-vs-rest AUC of each class, Covid-vs-Normal AUC on those two
classes' films, the 3 x 3 confusion; and how it calls the locked test parts of the two pneumonia
sources it never saw (pneumonia/nih-cxr14, pneumonia/cohen-web): share called Pneumonia and share
called abnormal (Covid or Pneumonia).

The network is not trained here: this says what a three-class head on these features can do
before any fine-tuning, and so whether fine-tuning is worth its hour. It does not say what a
three-class model trained end to end would reach.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidgui.core.errors import ImageLoadError  # noqa: E402
from covidgui.core.inference.classifier import Classifier  # noqa: E402
from covidgui.core.inference.preprocess import load_prepared  # noqa: E402
from covidgui.core.scoring.metrics import classification_report  # noqa: E402
from covidgui.core.scoring.sources import find_sources, locked_split, two_class_figures  # noqa: E402

CLASSES = ["Covid", "Normal", "Pneumonia"]
SIIM = "siim-covid"
PNEUMONIA_SOURCES = ["nih-cxr14", "cohen-web"]
BATCH = 32


def features(classifier: Classifier, paths) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features (N, K) of the readable files, which of ``paths`` they are (N,) indices)."""
    size, harmonise = classifier.input_size, classifier.harmonises

    def prepared(path):
        try:
            return load_prepared(path, size, harmonise=harmonise)[1].input
        except ImageLoadError:
            return None

    out, kept = [], []
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(paths), BATCH):
            inputs = list(pool.map(prepared, paths[start:start + BATCH]))
            ok = [i for i, x in enumerate(inputs) if x is not None]
            if ok:
                out.append(classifier.forward(np.stack([inputs[i] for i in ok]))[1])
                kept.extend(start + i for i in ok)
    return np.concatenate(out), np.asarray(kept)


def probe(train_x, train_y, cal_x, cal_y):
    """The standardised, class-balanced logistic regression whose C does best (log loss) on the
    calibration part, refitted on train + calibration."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(x, y, c):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000)).fit(x, y)

    losses = {c: log_loss(cal_y, fit(train_x, train_y, c).predict_proba(cal_x), labels=[0, 1, 2])
              for c in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)}
    best = min(losses, key=losses.get)
    return fit(np.concatenate([train_x, cal_x]), np.concatenate([train_y, cal_y]), best), best, losses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a .keras model (default: the bundled one)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    classifier = Classifier.load(args.model, lungs=False)
    split = locked_split(find_sources(args.data, names=[SIIM, *PNEUMONIA_SOURCES], classes=CLASSES), CLASSES)
    parts = {}
    for name, files in (("train", split.train), ("calibration", split.calibration), ("test", split.test)):
        paths = [p for p, g in zip(files.paths, files.groups) if g == SIIM or name == "test"]
        labels = np.array([y for y, g in zip(files.labels, files.groups) if g == SIIM or name == "test"])
        groups = np.array([g for g in files.groups if g == SIIM or name == "test"])
        x, kept = features(classifier, paths)
        parts[name] = (x, labels[kept], groups[kept])
        print(f"{name}: {len(kept)} films", flush=True)
    siim_test = parts["test"][2] == SIIM
    model, c, losses = probe(parts["train"][0], parts["train"][1], parts["calibration"][0], parts["calibration"][1])
    x, y, groups = parts["test"]
    probs = model.predict_proba(x)
    siim = two_class_figures(y[siim_test], probs[siim_test], CLASSES, 0)
    card = classifier.card
    out = {"model": f"{card.name} {card.version}", "C": c, "calibration_log_loss": losses,
           "train_counts": np.bincount(parts["train"][1], minlength=3).tolist(),
           "siim_locked_test": siim,
           "siim_report": classification_report(y[siim_test], probs[siim_test], CLASSES, "Pneumonia"),
           "left_out_pneumonia_sources": {}}
    for source in PNEUMONIA_SOURCES:
        top = probs[groups == source].argmax(axis=1)
        out["left_out_pneumonia_sources"][source] = {
            "n": int(top.size), "called_pneumonia": round(float((top == 2).mean()), 4),
            "called_abnormal": round(float((top != 1).mean()), 4)}
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps({k: v for k, v in out.items() if k != "siim_report"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
