"""The input gate's test set: images that are not chest X-rays, from what packages ship and from
generators. Nothing here is used to fit the gate (it is fitted on X-rays only).

    write_non_xrays(folder) -> list of (name, path)

Sources: scikit-image's bundled ``skimage.data`` images (photographs, microscopy, documents,
textures, a fundus photograph, a CT phantom), matplotlib's sample data (a portrait, logos, an
MRI slice of a head, elevation maps), and generated images (noise, flat fields, gradients,
rendered text pages, chart "screenshots", geometric patterns).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SKIMAGE_NAMES = [
    "astronaut", "camera", "coffee", "chelsea", "coins", "moon", "page", "text", "horse", "hubble_deep_field",
    "rocket", "immunohistochemistry", "clock", "checkerboard", "grass", "gravel", "brick", "cell", "colorwheel",
    "logo", "microaneurysms", "retina", "shepp_logan_phantom", "binary_blobs",
]


def _to_uint8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    lo, hi = np.nanmin(a), np.nanmax(a)
    return ((a - lo) / (hi - lo) * 255).astype(np.uint8) if hi > lo else np.zeros(a.shape, np.uint8)


def package_images() -> dict[str, np.ndarray]:
    """Images shipped inside scikit-image and matplotlib (no download)."""
    import matplotlib.cbook as cbook
    import skimage.data

    images = {}
    for name in SKIMAGE_NAMES:
        try:
            images[f"skimage-{name}"] = np.asarray(getattr(skimage.data, name)())
        except Exception:  # an image that needs a download (pooch) is not available offline
            continue
    images["mpl-grace_hopper"] = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")))
    for png in ("logo2.png", "Minduka_Present_Blue_Pack.png"):
        images[f"mpl-{png}"] = np.asarray(Image.open(cbook.get_sample_data(png)))
    with gzip.open(cbook.get_sample_data("s1045.ima.gz", asfileobj=False)) as fh:  # MRI, head
        images["mpl-mri-head"] = _to_uint8(np.frombuffer(fh.read(), "<u2").reshape(256, 256))
    dem = np.load(cbook.get_sample_data("jacksboro_fault_dem.npz", asfileobj=False))
    images["mpl-elevation"] = _to_uint8(dem["elevation"])
    topo = np.load(cbook.get_sample_data("topobathy.npz", asfileobj=False))
    images["mpl-topobathy"] = _to_uint8(topo[list(topo.keys())[0]])
    return images


def _text_page(seed: int, size=(850, 1100)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    page = Image.new("L", size, 250)
    draw = ImageDraw.Draw(page)
    words = "patient chest radiograph report findings impression normal lungs clear heart size".split()
    y = 40
    while y < size[1] - 40:
        line = " ".join(rng.choice(words, rng.integers(4, 12)))
        draw.text((40, y), line, fill=int(rng.integers(0, 60)), font_size=int(rng.integers(14, 28)))
        y += int(rng.integers(24, 40))
    return np.asarray(page)


def _chart_screenshot(seed: int) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(8, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(121)
    ax.plot(np.cumsum(rng.normal(size=200)))
    ax.set_title("Throughput")
    fig.add_subplot(122).bar(range(8), rng.random(8), color="tab:orange")
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _window_mockup(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (1280, 800), (236, 239, 241))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, 1280, 40), fill=(38, 50, 56))
    for _ in range(25):
        x, y = int(rng.integers(0, 1180)), int(rng.integers(50, 760))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.rectangle((x, y, x + int(rng.integers(40, 300)), y + int(rng.integers(20, 60))), fill=colour)
        draw.text((x + 5, y + 5), "Button", fill=(0, 0, 0), font_size=16)
    return np.asarray(im)


def generated_images() -> dict[str, np.ndarray]:
    """Noise, flat fields, gradients, text pages, screenshots and patterns."""
    rng = np.random.default_rng(7)
    h, w = 768, 1024
    y, x = np.mgrid[0:h, 0:w]
    images = {
        "uniform-noise": rng.integers(0, 256, (h, w), dtype=np.uint8),
        "uniform-noise-small": rng.integers(0, 256, (300, 300), dtype=np.uint8),
        "colour-noise": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "gaussian-noise": np.clip(rng.normal(128, 40, (h, w)), 0, 255).astype(np.uint8),
        "flat-black": np.zeros((h, w), np.uint8),
        "flat-white": np.full((h, w), 255, np.uint8),
        "flat-grey": np.full((h, w), 128, np.uint8),
        "gradient-horizontal": (x / w * 255).astype(np.uint8),
        "gradient-vertical": (y / h * 255).astype(np.uint8),
        "gradient-radial": (255 - np.hypot(x - w / 2, y - h / 2) / np.hypot(w / 2, h / 2) * 255).astype(np.uint8),
        "stripes": ((x // 32) % 2 * 255).astype(np.uint8),
        "circles": ((np.hypot(x - w / 2, y - h / 2) // 40) % 2 * 200 + 30).astype(np.uint8),
    }
    for seed in range(3):
        images[f"text-page-{seed}"] = _text_page(seed)
    for seed in range(2):
        images[f"chart-screenshot-{seed}"] = _chart_screenshot(seed)
        images[f"window-screenshot-{seed}"] = _window_mockup(seed)
    return images


def write_non_xrays(folder: str | Path) -> list[tuple[str, Path]]:
    """Write every non-X-ray image as a PNG into ``folder``; returns (name, path) pairs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, array in {**package_images(), **generated_images()}.items():
        path = folder / f"{name.replace('.', '_')}.png"
        if array.dtype != np.uint8:  # float or bool images (phantom, blobs, logo PNG floats)
            array = _to_uint8(array)
        Image.fromarray(np.ascontiguousarray(array)).save(path)
        written.append((name, path))
    return written
