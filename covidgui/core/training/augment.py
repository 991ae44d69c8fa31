"""Acquisition augmentation: what a different hospital's machine and pipeline do to a film.

Training-only changes of the model-sized image *before* histogram equalisation, so an augmented
image is equalised exactly as a real one is. They imitate what differs between sources rather than
between diseases: resolution lost to a small copy (many public collections are 299 px), blur of a
digitised film, detector noise, and JPEG re-compression. Exposure, gamma and contrast are left
out on purpose: histogram equalisation maps any monotone change of the grey levels to the same
input, so they would change nothing.

:func:`amplitude_mix` goes further: it gives an image part of *another* image's Fourier amplitude
spectrum (its "style": sharpness, noise, texture of film or detector) while keeping its own phase
(its anatomy and any opacity), after Liu et al. 2021 (FedDG, "continuous frequency space
interpolation") and Yang & Soatto 2020 (FDA). Mixed across classes it shows the model normal films
with a COVID-19 collection's look and the other way round, so a source's look stops predicting
the class.

Geometric changes (rotation, zoom, shift) stay in the Keras layers of
:func:`covidgui.core.training.train.build_augmentation`, which move the lung mask with the image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from covidgui.core.inference.preprocess import resize

# Each change happens to an image with this probability, independently of the others.
P_DOWNSCALE, P_BLUR, P_NOISE, P_JPEG = 0.5, 0.3, 0.3, 0.4


def acquisition_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly degraded copy of ``image``: float (S, S) 0..1 in, float32 (S, S) 0..1 out.

    Downscale to 35-80 % and back (bilinear), Gaussian blur (sigma 0.3-1.2 px), Gaussian noise
    (sigma 0.5-3 % of the range) and JPEG re-compression (quality 25-85), each with its own
    probability; ``rng`` makes it reproducible.
    """
    return acquisition_augment_changed(image, rng)[0]


def acquisition_augment_changed(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """(:func:`acquisition_augment` of ``image``, whether any change was drawn), from the same draws
    of ``rng``. Unchanged, the image is only clipped to 0..1 as float32, so a caller holding the
    equalised clean image can use it instead of equalising again."""
    out = np.asarray(image, dtype=np.float32)
    changed = False
    size = out.shape
    if rng.random() < P_DOWNSCALE:
        changed = True
        factor = rng.uniform(0.35, 0.8)
        small = (max(8, round(size[0] * factor)), max(8, round(size[1] * factor)))
        out = resize(resize(out, small), size)
    if rng.random() < P_BLUR:
        changed = True
        out = ndimage.gaussian_filter(out, rng.uniform(0.3, 1.2), mode="reflect")
    if rng.random() < P_NOISE:
        changed = True
        out = out + rng.normal(0.0, rng.uniform(0.005, 0.03), size).astype(np.float32)
    if rng.random() < P_JPEG:
        changed = True
        buffer = io.BytesIO()
        grey = Image.fromarray(np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
        grey.save(buffer, format="JPEG", quality=int(rng.integers(25, 86)))
        buffer.seek(0)
        out = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
    return np.clip(out, 0.0, 1.0).astype(np.float32), changed


def amplitude_mix(image: np.ndarray, other: np.ndarray, strength: float) -> np.ndarray:
    """``image`` (S, S) 0..1 with its Fourier amplitude moved ``strength`` (0..1) of the way to
    ``other``'s (same shape), its phase kept: float32 (S, S) 0..1."""
    return amplitude_mix_spectra(fourier_spectra(image), fourier_spectra(other), strength)


def fourier_spectra(images) -> np.ndarray:
    """The 2-D Fourier spectra of square images (..., S, S), in one call: ``np.fft.rfft2``, (..., S, S // 2 + 1).

    A real image's spectrum is symmetric, so its half holds all of it: with the inverse, a quarter
    of the full transform's time (the mixing ran beside every training step and slowed it by a third)."""
    return np.fft.rfft2(np.asarray(images, dtype=np.float64))


def amplitude_mix_spectra(spectrum: np.ndarray, other: np.ndarray, strength: float) -> np.ndarray:
    """:func:`amplitude_mix` from the two images' spectra (:func:`fourier_spectra`), so a batch's
    spectra are computed once, in one call, however many images borrow them."""
    magnitude = np.abs(spectrum)
    amplitude = (1.0 - strength) * magnitude + strength * np.abs(other)
    # The image's own phase as a unit phasor; 1 where the magnitude is 0 (np.angle gives 0 there).
    phase = np.divide(spectrum, magnitude, out=np.ones_like(spectrum), where=magnitude > 0)
    size = spectrum.shape[-2]
    mixed = np.fft.irfft2(amplitude * phase, s=(size, size))
    return np.clip(mixed, 0.0, 1.0).astype(np.float32)
