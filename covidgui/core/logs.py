"""The app's log file: a rotating log in the user's log folder, with patient identifiers removed.

``setup_logging()`` is called once at start-up (GUI, CLI, self-test). The log folder comes from
platformdirs; ``COVIDGUI_LOG_DIR`` overrides it (tests, a locked-down workstation).

Patient identifiers are kept out of the log twice: the DICOM loader keeps them in a
``PatientIdentity`` whose ``repr`` hides them, and :class:`PatientRedactionFilter` replaces any
identifier the loader has seen in this session (a name, an ID, a birth date) wherever it appears
in a message or a traceback, e.g. in a file name or an exception message.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
from pathlib import Path

LOG_DIR_ENV = "COVIDGUI_LOG_DIR"
LOG_FILE = "covidgui.log"
MAX_BYTES = 1_000_000
BACKUPS = 3
REDACTED = "<patient identifier removed>"

_lock = threading.Lock()
_identifiers: set[str] = set()


def log_dir() -> Path:
    override = os.environ.get(LOG_DIR_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_log_dir("CovidGUI", "CovidGUI"))


def log_path() -> Path:
    return log_dir() / LOG_FILE


def remember_identifiers(*values: str) -> None:
    """Identifiers (patient name, ID, birth date) to remove from every later log record.

    Values shorter than 3 characters are ignored: they would blank out ordinary words and numbers.
    """
    with _lock:
        _identifiers.update(v.strip() for v in values if v and len(v.strip()) >= 3)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_identifiers, key=len, reverse=True)  # longest first: "Doe John" before "Doe"
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class PatientRedactionFilter(logging.Filter):
    """Replace known patient identifiers in the message and the traceback of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact(message), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def setup_logging(level: int = logging.INFO) -> Path:
    """Attach the rotating log file to the root logger (once); returns the log file's path.

    When the folder cannot be created the app still runs, logging to stderr only.
    """
    path = log_path()
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "covidgui_log", None) == str(path):
            return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
    except OSError:
        handler = logging.StreamHandler()
    handler.covidgui_log = str(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    handler.addFilter(PatientRedactionFilter())
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    return path
