"""The decoded X-ray every loader returns, and the size limit every loader enforces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The largest chest radiographs are about 4300 x 4300 (18 MP); 64 MP leaves room for scanned film
# while refusing decompression bombs long before they exhaust memory.
MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class XRay:
    """A decoded X-ray.

    pixels: float32 array, shape (H, W), values 0..1 (0 = black).
    source_size: (width, height) of the stored image before any reduced-size decode.
    values: DICOM only, when asked for (``load_xray(..., viewer_values=True)``): float32 (H, W),
        the stored values after the Modality LUT, in the file's units, unclipped (see
        ``metadata["file_levels"]``); None otherwise.
    full_pixels: when asked for (``load_xray(..., keep_full=True)``): float32 (H', W') 0..1, the
        same greyscale at the stored size, from the same decode (``pixels`` itself when nothing was
        reduced); None otherwise. What a viewer shows while the model reads the reduced ``pixels``.
    """

    path: Path
    pixels: np.ndarray
    format: str
    mode: str
    bit_depth: int
    source_size: tuple[int, int]
    metadata: dict = field(default_factory=dict)
    values: np.ndarray | None = field(default=None, repr=False)
    full_pixels: np.ndarray | None = field(default=None, repr=False)
