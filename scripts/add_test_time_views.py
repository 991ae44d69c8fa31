"""Give a trained two-class model test-time views, refit its calibration for them and score it again.

    python scripts/add_test_time_views.py MODEL.keras --out OUT.keras [--views scaled80]
                                          [--calibrate-on siim-covid] [--version V] [--data ../shared/data]

How v4.2.0 was made from v4.0.1 (covidgui.core.inference.views; v4.1.0 with
--views mirrored,zoom90,zoom95). The network is unchanged; its card lists the views, so its
inference graph is exported again averaging the logits over the film and them, and its
``flops_per_image`` counts them. The temperature and logit offsets are refitted on the
calibration films of --calibrate-on, the indeterminate band on every calibration film
(covidgui.core.scoring.recalibrate); the input gate is kept (it reads the film's own features,
which the views do not change); the locked test is scored again as scripts/train_bundled_model.py
scores it. The model's leave-one-source-out rows are kept: they were measured without the views,
and the card says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from covidgui.core.inference.classifier import Classifier  # noqa: E402
from covidgui.core.inference.views import parse_views  # noqa: E402
from covidgui.core.models.model_files import save_model  # noqa: E402
from covidgui.core.scoring.recalibrate import recalibrate  # noqa: E402
from covidgui.core.scoring.sources import find_sources, locked_split  # noqa: E402
from covidgui.core.training.network import film_flops  # noqa: E402
from covidgui.core.training.recipe import preprocessing_description  # noqa: E402
from train_bundled_model import score_locked_test  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--views", default="scaled80")
    parser.add_argument("--calibrate-on", nargs="+", default=["siim-covid"])
    parser.add_argument("--version", help="the new card's version (default: the model's)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args(argv)
    views = parse_views(args.views)

    start = Classifier.load(args.model)
    card = start.card
    started_as = f"{card.name} {card.version}"
    if card.preprocessing.get("lung_mask") or card.harmonises_storage:
        raise SystemExit("Only a model without lung masking or storage harmonisation is supported.")
    card.preprocessing = {**card.preprocessing, **preprocessing_description(test_time_views=",".join(views))}
    card.version = args.version or card.version
    card.architecture = {**card.architecture, "flops_per_image": film_flops(start.keras_model, views)}
    # A new Classifier over the same network: its graph is exported with the card's views.
    classifier = Classifier(start.keras_model, card, gate=start.gate, lungs=start.lungs)
    split = locked_split(find_sources(args.data, classes=card.classes), card.classes)
    card.metrics["recalibration"] = {**recalibrate(classifier, split.calibration, args.calibrate_on),
                                     "refitted": "for the test-time views " + ", ".join(views)}
    score_locked_test(classifier, split, args.data)
    if card.metrics.get("validation"):  # what training measured stays, said to be of the network alone
        card.metrics["validation"]["measured"] = (f"by {started_as} without the test-time views, before the "
                                                  "recalibration below")
    card.training["test_time_views"] = (
        f"added to {started_as} by scripts/add_test_time_views.py: the temperature, "
        f"threshold and band refitted, the gate kept, the locked test scored again; the leave-one-source-out "
        f"rows were measured without the views")
    print(save_model(classifier, args.out))
    test = card.test
    print(f"{card.architecture['flops_per_image'] / 1e9:.3f} GFLOP per film")
    print(f"locked test: {test['correct']}/{test['n']} right, AUC {test['auc']:.4f}, sensitivity "
          f"{test['sensitivity']:.3f}, specificity {test['specificity']:.3f}, ECE {test['ece']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
