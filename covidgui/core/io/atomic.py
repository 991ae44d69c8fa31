"""Atomic writes: readers see a file's old content or its new content, never half of either.

Every file the app writes (model sets, cards, settings, CSVs, PNGs, reports, job outcomes) goes
through here: it is written under a temporary name in the same folder and renamed into place, so a
crash, a full disk or a cancel never leaves a truncated file under the user's chosen name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def temp_beside(target: str | Path, suffix: str = ".tmp") -> Path:
    """A new empty file in ``target``'s folder (created if missing), with the user's usual mode.

    mkstemp makes files private (0600); cards, CSVs and reports are not secrets, and a results
    table a colleague cannot open would surprise the user.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def write_with(path: str | Path, write: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it to ``path``.

    suffix: the temporary file's ending, for writers that pick the format from the name (Keras
    wants ``.keras``, Pillow ``.png``). Returns ``path``.
    """
    path = Path(path)
    tmp = temp_beside(path, suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` atomically, synced to disk first; returns ``path``."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())

    return write_with(path, write)
