"""A pydicom decoder plugin for 12-bit JPEG Extended (Process 2 and 4) through imagecodecs.

pydicom's own plugins all fail on some real 12-bit JPEG Extended files: Pillow and GDCM decode
8-bit samples only, and pylibjpeg-libjpeg refuses a scan header that writes the spectral selection
of a sequential scan as 0..0 instead of 0..63 ("A misplaced marker segment was found"; the DICOM
WG04 test file RG2_JPLY is written so). libjpeg-turbo, which imagecodecs wraps, ignores that field
for sequential scans, as the JPEG standard lets a decoder do, and decodes 12-bit samples.

:func:`register` adds this module to pydicom's JPEG Extended decoder *after* its own plugins, so it
runs only when they cannot decode a frame. It follows pydicom's decoder-plugin interface
(``DECODER_DEPENDENCIES``, ``is_available`` and a frame function; see pydicom's "decoder plugins"
guide). Greyscale frames only: colour 12-bit JPEG does not occur in radiography.
"""

from __future__ import annotations

import threading

from pydicom import uid

PLUGIN_LABEL = "imagecodecs-jpeg12"
DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("imagecodecs>=2024.1",)}
_lock = threading.Lock()
_registered = False


def is_available(transfer_syntax: str) -> bool:
    """True when imagecodecs (with its libjpeg-turbo codec) is installed and the syntax is ours."""
    if transfer_syntax != uid.JPEGExtended12Bit:
        return False
    try:
        import imagecodecs

        return bool(imagecodecs.JPEG8.available)
    except (ImportError, AttributeError):
        return False


def decode_frame(src: bytes, runner) -> bytes:
    """One encoded frame -> its stored values as bytes (uint16 for more than 8 bits, else uint8)."""
    import imagecodecs
    import numpy as np

    if runner.samples_per_pixel != 1:
        raise NotImplementedError("the imagecodecs JPEG 12-bit plugin decodes greyscale frames only")
    pixels = imagecodecs.jpeg8_decode(src)
    if pixels.ndim != 2:
        raise ValueError(f"expected one greyscale frame, the JPEG holds shape {pixels.shape}")
    dtype = np.uint16 if runner.bits_allocated > 8 else np.uint8
    return np.ascontiguousarray(pixels, dtype=dtype).tobytes()


def register() -> bool:
    """Add the plugin to pydicom's JPEG Extended decoder once; returns whether it is available."""
    from pydicom.pixels.decoders.base import get_decoder

    global _registered
    decoder = get_decoder(uid.JPEGExtended12Bit)
    with _lock:  # add_plugin is not thread-safe, and the batch decodes on several threads
        if not _registered:
            _registered = True
            try:
                decoder.add_plugin(PLUGIN_LABEL, (__name__, "decode_frame"))
            except (ValueError, ModuleNotFoundError):  # already there, or pydicom refused it
                pass
    return PLUGIN_LABEL in decoder.available_plugins
