"""The shortcut check: each image classified again with everything outside the lungs blanked."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from covidgui.core.inference.classifier import OUTSIDE_LUNGS_SHIFT, Classifier
from covidgui.core.analysis.batch import predict_files
from tests.test_lungs import two_lungs


class FakeLungs:
    """A segmenter that always finds the same plausible pair of lungs (probability map 128 x 128)."""

    threshold = 0.5

    def probabilities(self, inputs):
        return np.repeat(two_lungs(128, 128)[np.newaxis].astype(np.float32), len(inputs), axis=0)


def classifier_reading(region: str, bundled) -> Classifier:
    """The bundled model's card with a stand-in network whose COVID-19 logit is the brightness of
    one region of the input: "outside" the lungs or "inside" them."""
    # Without the card's logit offsets: the stand-in's logits mean what they say (0 is 50/50).
    classifier = Classifier(bundled.graph, replace(bundled.card, logit_bias=None), lungs=FakeLungs())
    lungs = two_lungs(bundled.input_size, bundled.input_size)
    # "Outside" keeps clear of the margin the check leaves around the lungs.
    where = ~ndimage.binary_dilation(lungs, iterations=20) if region == "outside" else lungs

    def forward(inputs):
        inputs = np.asarray(inputs)
        brightness = inputs[:, where].mean(axis=1)
        logits = np.stack([12.0 * (brightness - 0.5), np.zeros(len(inputs))], axis=1)
        return logits, np.zeros((len(inputs), 1))

    classifier.forward = forward
    return classifier


def bright_outside_image(size: int) -> np.ndarray:
    """A prepared input: mid-grey lungs in a bright surround."""
    image = np.full((size, size), 0.95, np.float32)
    image[two_lungs(size, size)] = 0.5
    return image


def test_a_decision_made_outside_the_lungs_is_flagged(bundled_classifier):
    classifier = classifier_reading("outside", bundled_classifier)
    result = classifier.predict_inputs(bright_outside_image(classifier.input_size)[np.newaxis])[0]
    assert result.class_name == "Covid" and result.confidence > 0.9
    # Blanked to mid-grey outside the lungs, the stand-in has no evidence left: 50/50.
    assert result.lung_only_confidence == pytest.approx(0.5, abs=0.01)
    assert result.depends_on_outside_lungs is True
    assert result.to_dict()["depends_on_outside_lungs"] is True


def test_a_decision_made_inside_the_lungs_is_not_flagged(bundled_classifier):
    classifier = classifier_reading("inside", bundled_classifier)
    image = bright_outside_image(classifier.input_size)
    image[two_lungs(classifier.input_size, classifier.input_size)] = 0.9  # bright lungs: COVID-19 evidence
    result = classifier.predict_inputs(image[np.newaxis])[0]
    assert result.class_name == "Covid"
    assert result.lung_only_label == "COVID-19"
    assert result.lung_only_confidence == pytest.approx(result.confidence, abs=1e-6)
    assert result.depends_on_outside_lungs is False


def test_a_large_fall_in_confidence_fires_even_without_a_flip(bundled_classifier):
    classifier = classifier_reading("outside", bundled_classifier)
    size = classifier.input_size
    lungs = two_lungs(size, size)
    far = ~ndimage.binary_dilation(lungs, iterations=20)
    image = bright_outside_image(size)
    image[lungs] = 0.5
    # Outside 0.95 -> blanked 0.5 but the lungs keep some evidence: a stand-in reading both.
    both = lambda inputs: (np.stack([12.0 * (np.asarray(inputs)[:, far].mean(axis=1) - 0.5)  # noqa: E731
                                     + 6.0 * (np.asarray(inputs)[:, lungs].mean(axis=1) - 0.4),
                                     np.zeros(len(inputs))], axis=1), np.zeros((len(inputs), 1)))
    classifier.forward = both
    result = classifier.predict_inputs(image[np.newaxis])[0]
    assert result.lung_only_label == result.class_label == "COVID-19"  # no flip...
    assert result.confidence - result.lung_only_confidence > OUTSIDE_LUNGS_SHIFT  # ...but a large fall
    assert result.depends_on_outside_lungs is True


def test_no_check_without_a_lung_model(bundled_classifier):
    classifier = Classifier(bundled_classifier.graph, bundled_classifier.card, lungs=None)
    result = classifier.predict_inputs(bright_outside_image(classifier.input_size)[np.newaxis])[0]
    assert result.lung_only_label is None and result.depends_on_outside_lungs is None
    assert result.to_dict()["lung_only_confidence"] is None


def test_the_check_runs_on_real_films_in_every_path(bundled_classifier, covid_val):
    files = sorted((covid_val / "Covid").iterdir())[:4]
    batch = list(predict_files(bundled_classifier, files))
    for path, result in zip(files, batch):
        single = bundled_classifier.predict_file(path, heatmap=True)
        assert single.lung_only_label in ("COVID-19", "Normal")
        assert single.lung_only_label == result.lung_only_label
        assert single.lung_only_confidence == pytest.approx(result.lung_only_confidence, abs=1e-3)
        assert single.depends_on_outside_lungs == result.depends_on_outside_lungs


def test_a_lung_fields_only_model_sees_its_inputs_blanked_and_needs_the_lung_model(bundled_classifier):
    from dataclasses import replace

    from covidgui.core.errors import ModelError

    classifier = classifier_reading("outside", bundled_classifier)
    card = replace(classifier.card, preprocessing={**classifier.card.preprocessing, "lung_mask": True})
    classifier.card, classifier.masks_lungs = card, True
    result = classifier.predict_inputs(bright_outside_image(classifier.input_size)[np.newaxis])[0]
    # The bright surround never reached the model: its answer is the blanked one, 50/50.
    assert result.confidence == pytest.approx(0.5, abs=0.01)
    assert result.lung_only_confidence == pytest.approx(result.confidence)
    assert result.depends_on_outside_lungs is False
    classifier.lungs = None
    with pytest.raises(ModelError, match="needs the lung model"):
        classifier.predict_inputs(bright_outside_image(classifier.input_size)[np.newaxis])
