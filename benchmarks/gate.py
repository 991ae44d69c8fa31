"""The input gate on real chest films and on images that are not chest X-rays (issue 28, item 6).

    python benchmarks/gate.py [--model models/covid_classifier.keras] [--data ../shared/data]
                              [--cache DIR] [--json out.json]

For the model's own gate and for the same gate refitted each way :data:`VARIANTS` lists (on the
model's locked-split train part, thresholds on its calibration part, as training fits it), prints:
- the share of real chest films rejected per source and class on the locked test (films the
  gate was not fitted on), and on SIIM's Indeterminate and Atypical films (no model trains on them);
- which of the gate's scores (shape, features, colour) rejected them;
- every non-X-ray it lets through: generated and package images (benchmarks/non_xrays.py) and the
  DICOM files of other body parts and devices in ``dicom-real`` (the hip, tibia, angiogram...),
  and chest07, whose wrongly-declared MONOCHROME1 shows an inverted film.

The model's inputs, features and colourfulness of every file are cached in ``--cache`` (default:
a folder in the system's temporary directory named after the model's digest), so the variants
can be compared without decoding the films again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.non_xrays import write_non_xrays  # noqa: E402
from covidgui.core.data.dataset import image_files  # noqa: E402
from covidgui.core.errors import ImageLoadError  # noqa: E402
from covidgui.core.inference import gate as gate_module  # noqa: E402
from covidgui.core.inference.classifier import Classifier  # noqa: E402
from covidgui.core.inference.lungs import check_lungs  # noqa: E402
from covidgui.core.inference.preprocess import load_prepared  # noqa: E402
from covidgui.core.scoring.sources import find_sources, locked_split  # noqa: E402

BATCH = 64
# Chest films of the shared data that are not what they say: chest07 declares MONOCHROME1 over
# pixels stored as MONOCHROME2, so it shows (and reaches the model) inverted: it should be rejected.
NOT_A_PLAIN_CHEST_FILM = ("chest07_SIIM_Fake_MONOCHROME1.dcm",)


def read_inputs(classifier, paths) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(model inputs (N, S, S), colourfulness (N,), the paths read) of the readable files."""
    def one(path):
        try:
            xray, prepared = load_prepared(path, classifier.input_size, harmonise=classifier.harmonises)
            return prepared.input, xray.metadata.get("colourfulness", 0.0), str(path)
        except ImageLoadError:
            return None

    with ThreadPoolExecutor(2) as pool:
        done = [r for r in pool.map(one, paths) if r is not None]
    if not done:
        return np.zeros((0, classifier.input_size, classifier.input_size), np.float32), np.zeros(0), []
    inputs, colour, read = zip(*done)
    return np.stack(inputs).astype(np.float32), np.asarray(colour, dtype=float), list(read)


def gate_inputs(classifier, paths) -> dict:
    """What a gate reads of each file: thumbnails, pooled features, colourfulness (+ the paths)."""
    inputs, colour, read = read_inputs(classifier, paths)
    features = [classifier.forward(inputs[i:i + BATCH])[1] for i in range(0, len(inputs), BATCH)]
    lungs = []  # the lung model's verdict (covidgui.core.inference.lungs.check_lungs), as the app reports it
    if classifier.lungs is not None:
        for i in range(0, len(inputs), BATCH):
            lungs += [check_lungs(m > classifier.lungs.threshold).plausible
                      for m in classifier.lungs.probabilities(inputs[i:i + BATCH])]
    return {"thumbs": gate_module.thumbnails(inputs) if len(inputs) else np.zeros((0, 1024), np.float32),
            "features": np.concatenate(features) if features else np.zeros((0, 1)), "colour": colour,
            "lungs": np.asarray(lungs, dtype=bool), "paths": np.asarray(read)}


def the_sets(data: Path, scratch: Path) -> dict[str, tuple[list, list, list]]:
    """name -> (paths, source of each, class of each) for every set the benchmark scores."""
    split = locked_split(find_sources(data))
    sets = {}
    for part in ("train", "calibration", "test"):
        files = getattr(split, part)
        sets[part] = (files.paths, files.group_names(), [files.classes[i] for i in files.labels])
    unlabelled = [(p, c) for c in ("Indeterminate", "Atypical") for p in image_files(data / "siim-covid" / c)]
    sets["siim-unlabelled"] = ([p for p, _ in unlabelled], ["siim-covid"] * len(unlabelled), [c for _, c in unlabelled])
    generated = [p for _, p in write_non_xrays(scratch / "non-xrays")]
    devices = sorted(p for p in (data / "dicom-real").iterdir()
                     if p.name.startswith("other") or p.name in NOT_A_PLAIN_CHEST_FILM)
    sets["non-xrays"] = (generated + devices, ["generated"] * len(generated) + ["dicom-real"] * len(devices),
                         ["not an X-ray"] * len(generated) + ["not a chest film"] * len(devices))
    return sets


def cached_features(classifier, data: Path, cache: Path) -> dict[str, dict]:
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (paths, groups, classes) in the_sets(data, Path(scratch)).items():
            file = cache / f"{name}.npz"
            if not file.is_file():
                got = gate_inputs(classifier, paths)
                where = {str(p): (g, c) for p, g, c in zip(paths, groups, classes)}
                got["groups"] = np.asarray([where[p][0] for p in got["paths"]])
                got["classes"] = np.asarray([where[p][1] for p in got["paths"]])
                np.savez(file, **got)
                print(f"read {name}: {len(got['paths'])} of {len(paths)} files", flush=True)
            with np.load(file, allow_pickle=False) as saved:
                out[name] = {k: saved[k] for k in saved.files}
    return out


def triple(s: dict) -> tuple:
    return s["thumbs"], s["features"], s["colour"]


def refit_shipped(sets: dict):
    """The gate as training fits it today (covidgui.core.inference.gate.fit_gate)."""
    return gate_module.fit_gate(triple(sets["train"]), triple(sets["calibration"]))


class ClassConditionalGate(gate_module.InputGate):
    """The features score as the Mahalanobis distance to the nearest class mean under the pooled
    within-class covariance (Lee et al. 2018), instead of the distance to the mean of all films: a
    film dense with consolidation is far from the average film but near the COVID-19 films."""

    class_means: np.ndarray = None

    def raw_scores(self, thumbs, features, colourfulness):
        base = super().raw_scores(thumbs, features, colourfulness)
        f = np.asarray(features, dtype=np.float64)
        distances = []
        for mean in self.class_means:
            centred = f - mean
            distances.append(np.sqrt(np.maximum(((centred @ self.feature_precision) * centred).sum(axis=1), 0)))
        base[:, 1] = np.min(distances, axis=0)
        return base


def refit(sets: dict, class_conditional: bool = False, components: int = gate_module.COMPONENTS,
          margin: float = gate_module.MARGIN, quantile: float = gate_module.VALIDATION_QUANTILE):
    """The gate with the Mahalanobis features score (fit_gate before 2026-12-04), one part changed."""
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA

    thumbs, features, colour = triple(sets["train"])
    pca = PCA(n_components=components, random_state=0).fit(thumbs)
    features = np.asarray(features, dtype=np.float64)
    classes = sets["train"]["classes"]
    if class_conditional:
        names = sorted(set(classes.tolist()))
        means = np.stack([features[classes == c].mean(axis=0) for c in names])
        centred = features - means[[names.index(c) for c in classes]]
        cov = LedoitWolf(assume_centered=True).fit(centred)
        gate = ClassConditionalGate(pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                                    features.mean(axis=0), np.zeros(3), np.ones(3), np.ones(3),
                                    feature_precision=cov.precision_)
        gate.class_means = means
    else:
        cov = LedoitWolf().fit(features)
        gate = gate_module.InputGate(pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                                     cov.location_, np.zeros(3), np.ones(3), np.ones(3), feature_precision=cov.precision_)
    raw = gate.raw_scores(thumbs, features, colour)
    fitted = [gate_module._robust_scale(raw[:, i]) for i in range(2)] + [gate_module.COLOUR_SCALE]
    gate.centres = np.array([c for c, _ in fitted])
    gate.scales = np.array([s for _, s in fitted])
    val_z = (gate.raw_scores(*triple(sets["calibration"])) - gate.centres) / gate.scales
    gate.thresholds = np.maximum(margin * np.quantile(val_z, quantile, axis=0), 3.0)
    return gate


def with_lung_rule(gate, above: float):
    """The gate, plus: an image without a plausible pair of lung fields is rejected once its gate
    score passes ``above`` of the threshold (the lung model alone rejects sick films: consolidation
    hides a lung field)."""
    gate.lung_rule = above
    return gate


VARIANTS = {"refitted as shipped": refit_shipped,
            "Mahalanobis distance from the mean (features score before 2026-12-04)": refit,
            "class-conditional features": lambda sets: refit(sets, class_conditional=True),
            "class-conditional, 32 shape components": lambda sets: refit(sets, True, components=32),
            "class-conditional, 8 shape components": lambda sets: refit(sets, True, components=8),
            "margin 1.0": lambda sets: refit(sets, margin=1.0),
            "margin 1.5": lambda sets: refit(sets, margin=1.5),
            "margin 1.8": lambda sets: refit(sets, margin=1.8),
            "margin 1.19 + no lungs rejects above 0.5": lambda sets: with_lung_rule(refit(sets), 0.5),
            "margin 1.5 + no lungs rejects above 0.7": lambda sets: with_lung_rule(refit(sets, margin=1.5), 0.7),
            }


def rejections(gate, s: dict) -> dict:
    """Per (source, class): n, rejected, and how many each score rejected."""
    ratios = (gate.raw_scores(*triple(s)) - gate.centres) / gate.scales / gate.thresholds
    rejected = ratios.max(axis=1) > 1
    no_lungs = np.zeros(len(rejected), bool)
    if getattr(gate, "lung_rule", None) is not None:
        no_lungs = ~s["lungs"] & (ratios.max(axis=1) > gate.lung_rule)
        rejected |= no_lungs
    rows = {}
    for key in sorted(set(zip(s["groups"].tolist(), s["classes"].tolist()))):
        member = (s["groups"] == key[0]) & (s["classes"] == key[1])
        by = {name: int(((ratios[:, i] > 1) & member).sum()) for i, name in enumerate(gate.NAMES)}
        by["no lungs"] = int((no_lungs & member).sum())
        rows[f"{key[0]} / {key[1]}"] = {"n": int(member.sum()), "rejected": int((rejected & member).sum()), "by": by,
                                        "accepted": [Path(p).name for p in s["paths"][member & ~rejected]]}
    return rows


def measure(gate, sets: dict) -> dict:
    return {"locked test": rejections(gate, sets["test"]), "calibration": rejections(gate, sets["calibration"]),
            "siim unlabelled": rejections(gate, sets["siim-unlabelled"]),
            "non-xrays": rejections(gate, sets["non-xrays"])}


def describe(name: str, figures: dict) -> str:
    lines = [f"== {name}"]
    for part in ("locked test", "siim unlabelled"):
        for key, row in figures[part].items():
            by = ", ".join(f"{k} {v}" for k, v in row["by"].items() if v)
            lines.append(f"  {part:15s} {key:38s} rejected {row['rejected']:4d} / {row['n']:5d} "
                         f"({row['rejected'] / max(row['n'], 1):6.2%}){'  by ' + by if by else ''}")
    for key, row in figures["non-xrays"].items():
        lines.append(f"  non-X-rays      {key:38s} rejected {row['rejected']:4d} / {row['n']:5d}; let through: "
                     + (", ".join(row["accepted"]) or "none"))
    return "\n".join(lines)


def summary_table(results: dict) -> str:
    """One markdown row per gate: rejected real films (SIIM per class, the other sources together,
    on the locked test; SIIM's unlabelled films) and non-X-rays let through."""
    lines = ["| gate | SIIM COVID-19 | SIIM Normal | other sources (test) | SIIM Atypical | SIIM Indeterminate "
             "| non-X-rays let through (generated / devices) |", "|---" * 7 + "|"]

    def cell(row):
        return f"{row['rejected']}/{row['n']} ({row['rejected'] / max(row['n'], 1):.1%})"

    for name, f in results.items():
        test, unlabelled, non = f["locked test"], f["siim unlabelled"], f["non-xrays"]
        others = [r for k, r in test.items() if not k.startswith("siim-covid")]
        other = {"rejected": sum(r["rejected"] for r in others), "n": sum(r["n"] for r in others)}
        passed = [len(non[k]["accepted"]) for k in ("generated / not an X-ray", "dicom-real / not a chest film")]
        lines.append(f"| {name} | {cell(test['siim-covid / Covid'])} | {cell(test['siim-covid / Normal'])} | "
                     f"{cell(other)} | {cell(unlabelled['siim-covid / Atypical'])} | "
                     f"{cell(unlabelled['siim-covid / Indeterminate'])} | {passed[0]} of "
                     f"{non['generated / not an X-ray']['n']} / {passed[1]} of {non['dicom-real / not a chest film']['n']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a .keras model (default: the bundled one)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    classifier = Classifier.load(args.model)
    digest = hashlib.sha256(Path(classifier.path).read_bytes()).hexdigest()[:12]
    cache = args.cache or Path(tempfile.gettempdir()) / f"covidgui-gate-{digest}"
    sets = cached_features(classifier, args.data, cache)
    results = {}
    if classifier.gate is not None:
        results["the model's own gate"] = measure(classifier.gate, sets)
    for name, fit in VARIANTS.items():
        results[name] = measure(fit(sets), sets)
    for name, figures in results.items():
        print(describe(name, figures))
    print("\n" + summary_table(results))
    if args.json:
        args.json.write_text(json.dumps({"model": f"{classifier.card.name} {classifier.card.version}",
                                         "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
