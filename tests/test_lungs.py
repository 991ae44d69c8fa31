"""Lung fields: the segmenter, attention on lungs, the lung plausibility check, and the app without them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from covidgui.core.inference import lungs
from covidgui.core.inference.lungs import check_lungs, dice, lung_attention
from covidgui.core.output import overlay
from covidgui.core.output.overlay import outline_rgba
from tests.conftest import SHARED_DATA, chest_like

ADULT_NORMAL = SHARED_DATA / "adult-normal"


def two_lungs(h: int = 200, w: int = 240) -> np.ndarray:
    """A generated pair of lung fields: two upright ellipses either side of the midline."""
    y, x = np.mgrid[0:h, 0:w]
    left = ((x - 0.3 * w) / (0.13 * w)) ** 2 + ((y - 0.48 * h) / (0.3 * h)) ** 2 <= 1
    right = ((x - 0.7 * w) / (0.13 * w)) ** 2 + ((y - 0.48 * h) / (0.3 * h)) ** 2 <= 1
    return left | right


def blob(h: int, w: int, row: float, col: float, sigma: float = 0.06) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.exp(-(((y / h - row) ** 2 + (x / w - col) ** 2) / (2 * sigma ** 2))).astype(np.float32)


# -- the measure ------------------------------------------------------------------------------------
def test_attention_is_low_for_a_heatmap_outside_the_lungs():
    mask = two_lungs()
    neck = blob(*mask.shape, row=0.05, col=0.5)  # above the lungs, on the midline
    assert lung_attention(neck, mask) < 0.1
    inside = blob(*mask.shape, row=0.5, col=0.3)  # on the left lung
    assert lung_attention(inside, mask) > 0.9


def test_attention_of_a_uniform_heatmap_is_the_lungs_share_of_the_image():
    mask = two_lungs()
    assert lung_attention(np.ones(mask.shape), mask) == pytest.approx(mask.mean())


def test_attention_is_none_for_an_empty_heatmap_and_refuses_mismatched_shapes():
    mask = two_lungs()
    assert lung_attention(np.zeros(mask.shape), mask) is None
    with pytest.raises(ValueError):
        lung_attention(np.ones((10, 10)), mask)


def test_low_attention_threshold_is_half_by_default():
    assert lungs.low_attention(0.49) and not lungs.low_attention(0.5) and not lungs.low_attention(None)


# -- the plausibility check -------------------------------------------------------------------------
def test_a_generated_pair_of_lungs_is_plausible():
    verdict = check_lungs(two_lungs(128, 128))
    assert verdict.plausible, verdict.reason
    assert len(verdict.areas) == 2


@pytest.mark.parametrize("make, why", [
    (lambda m: np.zeros_like(m), "nothing"),
    (lambda m: m[:, ::-1] & (np.arange(m.shape[1]) < m.shape[1] // 2), "one lung"),
    (lambda m: np.ones_like(m), "everything"),
    (lambda m: np.roll(m, m.shape[1] // 4, axis=1) & (np.arange(m.shape[1]) >= m.shape[1] // 2)
     | (np.roll(m, -m.shape[0] // 3, axis=0) & (np.arange(m.shape[1]) >= m.shape[1] // 2)), "both on one side"),
    (lambda m: np.random.default_rng(0).random(m.shape) > 0.7, "speckle"),
])
def test_implausible_lung_masks_are_refused(make, why):
    verdict = check_lungs(make(two_lungs(128, 128)))
    assert not verdict.plausible, why


def test_dice_and_outline():
    mask = two_lungs()
    assert dice(mask, mask) == 1.0
    assert dice(mask, ~mask) == 0.0
    rgba = outline_rgba(mask, (400, 480))
    assert rgba.shape == (400, 480, 4) and rgba.dtype == np.uint8
    drawn = rgba[..., 3] > 0
    assert 0 < drawn.mean() < 0.05  # a thin line, not a filled area


def _full_frame_outline(mask, shape, colour=(0, 229, 255)):
    """The outline as drawn before the bounding-box shortcut: the whole frame resized and eroded."""
    from covidgui.core.inference.preprocess import resize

    from scipy import ndimage

    big = resize(mask.astype(np.float32), shape) > 0.5 if tuple(shape) != mask.shape else mask
    thickness = max(1, round(max(shape) / 250))
    rgba = np.zeros(tuple(shape) + (4,), np.uint8)
    rgba[big & ~ndimage.binary_erosion(big, iterations=thickness, border_value=0)] = (*colour, 255)
    return rgba


@pytest.mark.parametrize("thickness", [1, 2, 4, 7])
def test_outline_is_the_mask_less_its_scipy_erosion(thickness):
    from scipy import ndimage

    rng = np.random.default_rng(thickness)
    masks = [real_looking_lungs(97, 130, seed=thickness), rng.random((60, 70)) < 0.8, np.ones((9, 12), bool),
             np.zeros((5, 5), bool), rng.random((1, 8)) < 0.5]
    for mask in masks:
        expected = mask & ~ndimage.binary_erosion(mask, iterations=thickness, border_value=0)
        assert np.array_equal(overlay.outline(mask, thickness), expected)


def real_looking_lungs(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Two lung fields with ragged, uneven borders (a segmenter's mask, not two clean ellipses)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    wobble = ndimage.gaussian_filter(rng.normal(size=(h, w)), 3) * 6
    left = ((x - 0.3 * w) / (0.14 * w)) ** 2 + ((y - 0.5 * h) / (0.33 * h)) ** 2 + wobble <= 1
    right = ((x - 0.69 * w) / (0.12 * w)) ** 2 + ((y - 0.47 * h) / (0.31 * h)) ** 2 + wobble <= 1
    mask = left | right
    mask[rng.random((h, w)) < 0.002] = True  # stray specks, as a thresholded map leaves them
    return mask


@pytest.mark.parametrize("source, shape", [
    ((256, 256), (1024, 1024)),    # a 1024-px PNG: mask at the reduced decode, drawn at display size
    ((512, 384), (2048, 1536)),
    ((300, 250), (1024, 853)),     # no whole ratio: the box is aligned to whole drawn pixels
    ((256, 256), (256, 256)),      # same size
    ((512, 512), (300, 300)),      # shrinking: the whole frame
])
def test_outline_in_the_lungs_box_equals_the_full_frame_outline(source, shape):
    for seed in range(3):
        mask = real_looking_lungs(*source, seed=seed)
        assert np.array_equal(outline_rgba(mask, shape), _full_frame_outline(mask, shape))
    edge = np.zeros(source, bool)  # touching the frame's edges
    edge[: source[0] // 2, : source[1] // 3] = True
    edge[-5:, -7:] = True
    assert np.array_equal(outline_rgba(edge, shape), _full_frame_outline(edge, shape))
    empty = np.zeros(source, bool)
    assert np.array_equal(outline_rgba(empty, shape), _full_frame_outline(empty, shape))


# -- the bundled segmenter --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def segmenter():
    if not lungs.bundled_segmenter_path().is_file():
        pytest.skip("no bundled lung model (models/lung_segmenter.keras)")
    return lungs.LungSegmenter.load()


@pytest.fixture(scope="session")
def held_back_adults(segmenter):
    """Three held-back adult normals (never trained on), or skip when ../shared is absent."""
    if not (ADULT_NORMAL / "masks").is_dir():
        pytest.skip(f"shared data not found at {ADULT_NORMAL} (set COVIDGUI_SHARED_DATA to its folder)")
    names = segmenter.card["training"]["held_back"][:3]
    return [ADULT_NORMAL / name for name in names]


def test_segmenter_output_shape_and_range(segmenter):
    pixels = chest_like(300).astype(np.float32)[:, :260] / 255
    s = segmenter.input_size
    prob = segmenter.probabilities(np.stack([np.zeros((s, s)), np.full((224, 224), 0.5)[:s, :s]]))
    assert prob.shape == (2, s, s) and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    other_size = segmenter.probabilities(np.full((1, 224, 224), 0.5, np.float32))
    assert other_size.shape == (1, s, s)
    mask = segmenter.segment(pixels)
    assert mask.shape == pixels.shape and mask.dtype == bool


def test_segmenter_card_records_its_training(segmenter):
    card = segmenter.card
    assert card["training"]["command"].startswith("python scripts/train_lung_model.py")
    assert len(card["training"]["held_back"]) >= 50
    assert card["metrics"]["held_back_dice"]["n"] == len(card["training"]["held_back"])
    assert segmenter.path.stat().st_size < 10 * 1024 * 1024


def test_dice_on_three_held_back_masks_is_above_0_85(segmenter, held_back_adults):
    from covidgui.core.training.lung_training import held_back_dice

    scores = held_back_dice(segmenter, held_back_adults)
    assert len(scores) == 3
    assert min(scores.values()) > 0.85, scores


def test_a_real_xray_has_plausible_lungs_and_a_flat_image_has_none(segmenter, held_back_adults):
    from covidgui.core.io.images import load_xray
    from covidgui.core.inference.preprocess import prepare

    real = prepare(load_xray(held_back_adults[0]).pixels, segmenter.input_size).input
    flat = np.full_like(real, 0.5)
    masks = segmenter.masks(np.stack([real, flat]))
    assert check_lungs(masks[0]).plausible
    assert not check_lungs(masks[1]).plausible


def test_prediction_carries_lung_mask_and_attention(bundled_classifier, segmenter, held_back_adults):
    result = bundled_classifier.predict_file(held_back_adults[0], heatmap=True)
    assert result.lungs_plausible is True
    assert result.lung_mask.shape == result.heatmap.shape
    assert 0.0 <= result.lung_attention <= 1.0
    record = result.to_dict()
    assert record["lung_attention"] == pytest.approx(result.lung_attention, abs=1e-4)
    assert record["lungs_found"] is True


def test_bundled_classifier_looks_at_the_lungs(bundled_classifier, segmenter, held_back_adults, covid_val):
    """Most of the heatmap lies on the lungs for COVID-19 and normal images alike (the classifier
    was trained with lung guidance; the model before it put about 40 % there)."""
    paths = held_back_adults + sorted((covid_val / "Covid").iterdir())[:3]
    attention = [bundled_classifier.predict_file(p, heatmap=True).lung_attention for p in paths]
    assert all(a is not None and a > 0.5 for a in attention), attention
    assert np.median(attention) > 0.7, attention


def test_batch_measures_the_attention_of_the_single_view(bundled_classifier, segmenter, held_back_adults):
    from covidgui.core.analysis.batch import classify_stream

    items = [i for chunk in classify_stream(bundled_classifier, held_back_adults, batch_size=2) for i in chunk]
    for item, path in zip(items, held_back_adults):
        single = bundled_classifier.predict_file(path, heatmap=True)
        assert item.prediction.lung_attention == pytest.approx(single.lung_attention, abs=2e-3), path.name


@pytest.mark.slow
def test_classify_json_reports_lung_attention_in_0_1(segmenter, held_back_adults, chest_png):
    from tests.test_cli import run_cli

    out = run_cli("classify", "--json", *held_back_adults, chest_png)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 4 and all("lung_attention" in r for r in records)
    # null only when the heatmap is empty (Grad-CAM can be all zero); otherwise a share 0..1
    values = [r["lung_attention"] for r in records if r["lung_attention"] is not None]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert all(r["lungs_found"] for r in records[:3])  # real X-rays have lungs


# -- without the lung model -------------------------------------------------------------------------
@pytest.fixture
def no_lung_model(monkeypatch, tmp_path):
    """The app as installed without models/lung_segmenter.keras."""
    monkeypatch.setattr(lungs, "bundled_segmenter_path", lambda: tmp_path / "absent.keras")


def test_classifier_and_cli_work_without_the_lung_model(no_lung_model, chest_png, capsys):
    from covidgui.cli import main
    from covidgui.core.inference.classifier import Classifier

    classifier = Classifier.load()
    assert classifier.lungs is None
    result = classifier.predict_file(chest_png, heatmap=True)
    assert result.lung_mask is None and result.lung_attention is None and result.lungs_plausible is None
    assert main(["classify", "--json", str(chest_png)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["lung_attention"] is None and record["label"]


def test_a_broken_lung_model_turns_the_lung_features_off(monkeypatch, tmp_path):
    broken = tmp_path / "lung_segmenter.keras"
    broken.write_bytes(b"not a model")
    broken.with_suffix(".json").write_text("{}")
    monkeypatch.setattr(lungs, "bundled_segmenter_path", lambda: broken)
    assert lungs.load_bundled_segmenter() is None


def test_overlay_with_outline_draws_the_line_over_the_image():
    mask = two_lungs()
    pixels = np.full(mask.shape, 0.5, np.float32)
    rgb = overlay.overlay_with_outline(pixels, None, mask)
    assert rgb.shape == mask.shape + (3,) and rgb.dtype == np.uint8
    coloured = (rgb != 128).any(axis=2)
    assert coloured.any() and coloured[mask].mean() < 0.2  # the outline, not the filled lungs
    assert (overlay.overlay_with_outline(pixels, None, None) == 128).all()


def test_lung_crop_and_mask_variants_keep_the_shared_input_shape(segmenter, held_back_adults, monkeypatch):
    # The crop / mask variants are experiment code (scripts/compare_lung_preprocessing.py uses them).
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    from lung_crop import LungPreprocessor

    from covidgui.core.inference.preprocess import prepare
    from covidgui.core.io.images import load_xray

    pixels = load_xray(held_back_adults[0]).pixels
    usual = prepare(pixels, 96)
    crop = LungPreprocessor(segmenter, "crop")(pixels, 96)
    masked = LungPreprocessor(segmenter, "mask")(pixels, 96)
    assert crop.input.shape == masked.input.shape == (96, 96)
    left, top, right, bottom = crop.crop_box
    u_left, u_top, u_right, u_bottom = usual.crop_box
    assert u_left <= left < right <= u_right and u_top <= top < bottom <= u_bottom  # a tighter box
    assert (right - left) * (bottom - top) < (u_right - u_left) * (u_bottom - u_top)
    assert (masked.input == 0).mean() > 0.2 and masked.crop_box == usual.crop_box
    flat = np.full((200, 200), 0.5, np.float32)  # no lungs: the usual preprocessing
    assert LungPreprocessor(segmenter, "crop")(flat, 96).crop_box == prepare(flat, 96).crop_box
