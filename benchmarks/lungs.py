"""The lung model's figures (issue 8), measured in one run.

    python benchmarks/lungs.py [--model CLASSIFIER.keras] [--segmenter SEG.keras] [--data ../shared/data]

Prints: Dice on the held-back hand-drawn masks (as the card measures it, and through the
classifier's own input as the app runs it), warm segmentation latency, attention on lungs
(median share of Grad-CAM mass inside the segmented lungs) per source over the classifier's locked
test images (covidgui.core.scoring.sources), an occlusion check (accuracy with everything outside the lungs blanked,
and with the lungs blanked: does the *decision* come from the lungs, not only the heatmap?), and
the input gate's rejection rates with and without the lung check, on real X-rays and on the
non-X-ray test set (benchmarks/non_xrays.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.model import median_ms  # noqa: E402
from benchmarks.non_xrays import write_non_xrays  # noqa: E402
from covidgui.core.errors import ImageLoadError  # noqa: E402
from covidgui.core.io.images import load_xray  # noqa: E402
from covidgui.core.training.lung_training import held_back_dice, mask_path, read_mask  # noqa: E402
from covidgui.core.inference.lungs import LOW_ATTENTION, LungSegmenter, dice  # noqa: E402
from covidgui.core.inference.classifier import Classifier  # noqa: E402
from covidgui.core.inference.preprocess import resize  # noqa: E402
from covidgui.core.scoring.sources import find_sources, locked_split  # noqa: E402
from covidgui.core.analysis.batch import predict_files  # noqa: E402


def describe(values) -> str:
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return "n=0"
    return (f"median {np.median(v):.1%} (IQR {np.quantile(v, 0.25):.1%}..{np.quantile(v, 0.75):.1%}), "
            f"below {LOW_ATTENTION:.0%}: {int((v < LOW_ATTENTION).sum())}/{len(v)}, n={len(v)}")


def gate_counts(results) -> str:
    gate = sum(bool(r.gate_score is not None and r.gate_score > 1) for r in results)
    lungs = sum(r.lungs_plausible is False for r in results)
    both = sum(r.not_xray for r in results)
    n = len(results)
    return (f"model gate {gate}/{n} ({gate / n:.1%}), lung check {lungs}/{n} ({lungs / n:.1%}), "
            f"combined {both}/{n} ({both / n:.1%})")


def occlusion_accuracy(classifier: Classifier, groups: dict[str, list[Path]]) -> None:
    """Accuracy on the groups as they are, with only the lungs kept, and with the lungs removed.

    "Blanked" means set to 0.5 (mid-grey on the equalised 0..1 input) on the prepared input,
    inside or outside the segmented lungs (dilated by 2 % of the side, so the lung edges go with
    the lungs). A model that decides from the lungs keeps its accuracy with only the lungs and
    falls towards one class without them.
    """
    from scipy import ndimage

    covid = classifier.card.classes.index("Covid")
    inputs, lungs, labels = [], [], []
    for name, paths in groups.items():
        truth = "Covid" if "Covid" in name else "Normal"
        for path in paths:
            prepared = classifier.prepare(load_xray(path, max_side=classifier.input_size).pixels).input
            prob = classifier.lungs.probabilities(prepared[None])[0]
            mask = resize(prob, prepared.shape) > classifier.lungs.threshold
            mask = ndimage.binary_dilation(mask, iterations=round(0.02 * mask.shape[0]))
            inputs.append(prepared)
            lungs.append(mask)
            labels.append(classifier.card.classes.index(truth))
    inputs, lungs, labels = np.stack(inputs), np.stack(lungs), np.array(labels)
    n_covid = int((labels == covid).sum())
    for what, x in (("as given", inputs), ("lungs only (outside blanked)", np.where(lungs, inputs, 0.5)),
                    ("lungs blanked", np.where(lungs, 0.5, inputs))):
        predicted = classifier.logits(x.astype(np.float32)).argmax(axis=1)
        covid_found = int(((predicted == labels) & (labels == covid)).sum())
        print(f"occlusion, {what}: {int((predicted == labels).sum())}/{len(labels)} correct, "
              f"COVID found {covid_found}/{n_covid}, called COVID {int((predicted == covid).sum())}/{len(labels)}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, help="classifier (default: the bundled one)")
    parser.add_argument("--segmenter", type=Path, help="lung model (default: the bundled one)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--skip-gate", action="store_true")
    args = parser.parse_args()

    segmenter = LungSegmenter.load(args.segmenter)
    classifier = Classifier.load(args.model, lungs=False)
    classifier.lungs = segmenter
    card = segmenter.card
    print(f"lung model {card.get('name')} v{card.get('version')}: {card.get('architecture', {}).get('parameters', 0):,} "
          f"parameters (card), file {segmenter.path.stat().st_size / 1e6:.2f} MB, input {segmenter.input_size} px; "
          f"classifier {classifier.card.name} v{classifier.card.version} ({classifier.path})")

    held = [args.data / "adult-normal" / name for name in card["training"]["held_back"]]
    scores = np.array(list(held_back_dice(segmenter, held).values()))
    print(f"Dice on {len(held)} held-back masks (full decode, source resolution): mean {scores.mean():.4f}, "
          f"median {np.median(scores):.4f}, min {scores.min():.4f}, 10th pct {np.quantile(scores, 0.1):.4f}")
    via_app = []
    for path in held:
        result = classifier.predict_file(path)
        truth = read_mask(mask_path(path))
        via_app.append(dice(resize(result.lung_mask.astype(np.float32), truth.shape) > 0.5, truth))
    print(f"Dice through the classifier's input (as the app runs it): mean {np.mean(via_app):.4f}, "
          f"min {np.min(via_app):.4f}")

    pixels = load_xray(held[0], max_side=classifier.input_size).pixels
    one = classifier.prepare(pixels).input[None]
    print(f"warm latency (medians): forward one prepared input {median_ms(lambda: segmenter.probabilities(one)):.1f} ms; "
          f"pixels -> source mask {median_ms(lambda: segmenter.segment(pixels)):.1f} ms; "
          f"batch of 32 {median_ms(lambda: segmenter.probabilities(np.repeat(one, 32, 0)), 10) / 32:.1f} ms per image")

    # The classifier's locked test images (covidgui.core.scoring.sources), one group per source.
    split = locked_split(find_sources(args.data))
    groups = {f"locked test, {name}": [p for p, g in zip(split.test.paths, split.test.groups) if g == name]
              for name in sorted(set(split.test.groups))}
    all_attention, real = [], []
    for name, paths in groups.items():
        results = [classifier.predict_file(p, heatmap=True) for p in paths]
        real += results
        attention = [r.lung_attention for r in results]
        all_attention += attention
        print(f"attention on lungs, {name}: {describe(attention)}")
    print(f"attention on lungs, all {len(all_attention)}: {describe(all_attention)}")
    occlusion_accuracy(classifier, groups)

    if args.skip_gate:
        return 0
    print(f"gate on real X-rays (Val + held-back adults): {gate_counts(real)}")
    train = args.data / "covid-xray" / "Train"
    train_paths = sorted((train / "Covid").iterdir()) + sorted((train / "Normal").iterdir())
    train_results = [r for r in predict_files(classifier, train_paths) if not isinstance(r, ImageLoadError)]
    print(f"gate on covid-xray/Train ({len(train_results)}; the lung check never saw them): "
          f"{gate_counts(train_results)}")
    lung_rejected = [r.path.name for r in real + train_results if r.lungs_plausible is False]
    print(f"real X-rays the lung check rejects: {lung_rejected}")
    with tempfile.TemporaryDirectory() as tmp:
        non = write_non_xrays(tmp)
        results = list(predict_files(classifier, [p for _, p in non]))
        print(f"gate on non-X-rays: {gate_counts(results)}")
        print("non-X-rays accepted by the combined gate: "
              f"{[name for (name, _), r in zip(non, results) if not r.not_xray]}")
        print("non-X-rays accepted by the lung check alone: "
              f"{[name for (name, _), r in zip(non, results) if r.lungs_plausible]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
