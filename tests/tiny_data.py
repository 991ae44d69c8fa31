"""Tiny generated labelled folders for training tests (a few seconds to train at 48 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import chest_like


def make_class_folders(root: Path, counts: dict[str, int], size: int = 48) -> Path:
    """root/<class>/<i>.png for each class; the classes differ visibly (a bright patch whose place
    depends on the class), so a small CNN learns them in a couple of epochs."""
    for k, (name, n) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = chest_like(size, seed=1000 * k + i).astype(np.float32)
            if k % 2 == 0:
                img[size // 5: size // 2, size // 5: size // 2] = 235
            if k >= 2:
                img[size // 2:, size // 2:] *= 0.4 * (k - 1)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{name.lower()}_{i:03d}.png")
    return root
