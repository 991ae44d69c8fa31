"""The loader: every supported mode and bit depth, EXIF rotation, and each kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from covidgui.core.errors import ImageLoadError
from covidgui.core.io.images import load_xray
from covidgui.core.io.xray import MAX_PIXELS

GRADIENT = np.tile(np.linspace(0, 255, 64, dtype=np.float64), (48, 1))  # 48 rows x 64 cols


def _save(tmp_path, image: Image.Image, name: str, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA", "P", "CMYK", "I;16", "I", "F"])
def test_every_mode_gives_grey_pixels_in_unit_range(tmp_path, mode):
    base = Image.fromarray(GRADIENT.astype(np.uint8))
    if mode == "I;16":
        image = Image.fromarray((GRADIENT * 257).astype(np.uint16))
    elif mode in ("I", "F"):
        image = Image.fromarray((GRADIENT * 257).astype(np.int32 if mode == "I" else np.float32))
    else:
        image = base.convert(mode)
    ext = {"CMYK": "jpg", "I": "tif", "F": "tif", "1": "bmp"}.get(mode, "png")
    xray = load_xray(_save(tmp_path, image, f"img.{ext}"))
    assert xray.pixels.shape == (48, 64)
    assert xray.pixels.dtype == np.float32
    assert 0.0 <= xray.pixels.min() and xray.pixels.max() <= 1.0
    if mode != "1":  # a bilevel image has no gradient left
        # Left is dark, right is bright: the gradient survives every conversion.
        assert xray.pixels[:, :4].mean() < 0.15 < 0.85 < xray.pixels[:, -4:].mean()


def test_eight_bit_grey_is_the_value_over_255(tmp_path):
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for mode in ("L", "1"):
        image = Image.fromarray(values).convert(mode)
        xray = load_xray(_save(tmp_path, image, f"grey_{mode}.png"))
        expected = np.asarray(image.convert("L")).astype(np.float32) / 255.0
        assert xray.pixels.dtype == np.float32 and np.array_equal(xray.pixels, expected)


def test_sixteen_bit_keeps_precision(tmp_path):
    values = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)
    xray = load_xray(_save(tmp_path, Image.fromarray(values), "deep.png"))
    assert xray.bit_depth == 16
    # 4096 distinct 16-bit levels must not collapse to 256 8-bit ones.
    assert len(np.unique(xray.pixels)) > 1000
    assert xray.pixels.max() == pytest.approx(values.max() / 65535, abs=1e-6)


def test_transparent_areas_become_black(tmp_path):
    rgba = np.full((10, 10, 4), 255, np.uint8)
    rgba[:, :5, 3] = 0
    xray = load_xray(_save(tmp_path, Image.fromarray(rgba, "RGBA"), "alpha.png"))
    assert xray.pixels[:, :5].max() == 0.0 and xray.pixels[:, 5:].min() == 1.0


def test_each_raster_format_loads(tmp_path):
    image = Image.fromarray(GRADIENT.astype(np.uint8))
    for ext in ("png", "jpg", "jpeg", "tif", "tiff", "bmp"):
        assert load_xray(_save(tmp_path, image, f"g.{ext}")).pixels.shape == (48, 64)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((40, 80), np.uint8)
    arr[:, :10] = 255  # a bright band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(tmp_path, Image.fromarray(arr), "rot.jpg", exif=exif, quality=95)
    xray = load_xray(path)
    assert xray.pixels.shape == (80, 40)  # width and height swapped
    assert xray.pixels[:10].mean() > 0.8  # the band is now along the top
    assert xray.metadata["exif_orientation"] == 6


def test_reduced_size_jpeg_decode(tmp_path):
    path = _save(tmp_path, Image.fromarray(np.tile(np.arange(2000) % 256, (1600, 1)).astype(np.uint8)), "big.jpg")
    full = load_xray(path)
    small = load_xray(path, max_side=224)
    assert full.pixels.shape == (1600, 2000)
    assert 224 <= min(small.pixels.shape) < 1600
    assert small.source_size == (2000, 1600)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_xray(tmp_path / "nope.png")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty"):
        load_xray(path)


def test_truncated_file(tmp_path):
    data = (tmp_path / "x.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)).save(data)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data.read_bytes()[:2000])
    with pytest.raises(ImageLoadError, match="truncated or corrupt") as info:
        load_xray(truncated)
    assert info.value.path == truncated


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is a text file, not an X-ray")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_xray(path)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageLoadError, match="folder"):
        load_xray(tmp_path)


def test_decompression_bomb_is_refused(tmp_path):
    # A 1-bit PNG of 9000 x 9000 (81 MP) is only a few kB on disk.
    path = _save(tmp_path, Image.new("1", (9000, 9000)), "bomb.png")
    assert path.stat().st_size < 100_000
    assert 9000 * 9000 > MAX_PIXELS
    with pytest.raises(ImageLoadError, match="too large"):
        load_xray(path)


def test_error_message_names_the_file(tmp_path):
    path = tmp_path / "patient 12.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(ImageLoadError) as info:
        load_xray(path)
    assert "patient 12.jpg" in str(info.value)
