"""One analysis path: one decode gives the Image tab's whole result, and the same prediction as every other path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from covidgui.core.analysis import analyse as analyse_module
from covidgui.core.analysis.analyse import MAX_DISPLAY_SIDE, analyse
from covidgui.core.errors import ImageLoadError
from covidgui.core.inference import preprocess
from covidgui.core.io import images
from tests.conftest import chest_like
from tests.test_gui import MODEL_TIMEOUT_MS, drop_files, wait_for_result


@pytest.fixture
def large_png(tmp_path):
    """A 1024-px film: large enough that the model's decode is reduced and the display is not."""
    path = tmp_path / "large.png"
    Image.fromarray(chest_like(1024, seed=3)).save(path)
    return path


def count_calls(monkeypatch, module, name) -> list:
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_one_analysis_decodes_the_file_once(monkeypatch, bundled_classifier, large_png):
    loads = count_calls(monkeypatch, preprocess, "load_xray")
    decodes = count_calls(monkeypatch, images, "_decode")  # one call per decode of a raster file
    result = analyse(bundled_classifier, large_png)
    assert len(loads) == 1 and len(decodes) == 1
    # Everything the window shows came from that decode.
    assert result.display.shape == (1024, 1024) and result.display.dtype == np.float32
    assert result.pixels.shape == (512, 512)  # the model's reduced decode
    assert result.model_input.shape == (bundled_classifier.input_size,) * 2
    assert result.prediction.heatmap.shape == result.pixels.shape
    assert result.overlay.shape == (*result.prediction.heatmap.shape, 4)  # the viewer stretches it
    if result.prediction.lung_mask is not None:
        assert result.lung_outline.shape == (1024, 1024, 4)
    assert result.display_heatmap().shape == result.display.shape


def test_the_display_is_capped(bundled_classifier, tmp_path):
    path = tmp_path / "tall.png"
    Image.fromarray(np.tile(chest_like(1100, seed=1), (2, 1))).save(path)  # 2200 x 1100
    result = analyse(bundled_classifier, path, heatmap=False)
    assert result.display.shape == (MAX_DISPLAY_SIDE, MAX_DISPLAY_SIDE // 2)
    assert result.overlay is None and result.prediction.heatmap is None


def test_analysis_predicts_exactly_as_predict_file(bundled_classifier, large_png):
    single = bundled_classifier.predict_file(large_png, heatmap=True)
    result = analyse(bundled_classifier, large_png).prediction
    assert result.label == single.label
    assert result.probabilities == pytest.approx(single.probabilities, abs=1e-6)
    np.testing.assert_allclose(result.heatmap, single.heatmap, atol=1e-5)
    assert result.lung_attention == pytest.approx(single.lung_attention, abs=1e-5) if single.lung_attention else True
    assert result.lung_only_label == single.lung_only_label
    assert (result.lung_mask is None) == (single.lung_mask is None)
    if single.lung_mask is not None:
        assert np.array_equal(result.lung_mask, single.lung_mask)


def test_a_jpeg_gets_the_model_input_of_every_other_path(bundled_classifier, tmp_path):
    # A JPEG's reduced-scale decode cannot come from its full decode: the model still reads the
    # reduced one, so the window agrees with the batch and the CLI.
    path = tmp_path / "film.jpg"
    Image.fromarray(chest_like(1024, seed=5)).save(path, quality=90)
    result = analyse(bundled_classifier, path)
    _, prepared = preprocess.load_prepared(path, bundled_classifier.input_size)
    assert np.array_equal(result.model_input, prepared.input)
    assert result.display.shape == (1024, 1024)


def test_a_bad_file_raises_its_reason(bundled_classifier, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty"):
        analyse(bundled_classifier, bad)


def test_the_image_tab_shows_the_analysed_label_after_a_real_drop(qtbot, large_png, monkeypatch):
    from covidgui.gui.app import create_app
    from covidgui.gui.main_window import MainWindow

    create_app()
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.start_loading_model()
    qtbot.waitUntil(lambda: window.card is not None, timeout=MODEL_TIMEOUT_MS)
    classifier = window.inference.worker.classifier
    expected = classifier.predict_file(large_png, heatmap=True).label
    analyses = count_calls(monkeypatch, analyse_module, "decode")
    drop_files(window, large_png)
    wait_for_result(qtbot, window)
    assert window.result_panel.label.text() == expected
    assert len(analyses) == 1  # the worker took the one analysis path
    assert window.last_result.display.shape == (1024, 1024)
    assert window.viewer.has_image()
    window.close()
