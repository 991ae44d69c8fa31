"""The app's log file: a rotating log in the user's log folder, with patient identifiers removed.

``setup_logging()`` is called once at start-up (GUI, CLI, self-test). The log folder comes from
platformdirs; ``COVIDGUI_LOG_DIR`` overrides it (tests, a locked-down workstation).

Patient identifiers are kept out of the log twice: the DICOM loader keeps them in a
``PatientIdentity`` whose ``repr`` hides them, and :class:`PatientRedactionFilter` replaces any
identifier the loader has seen in this session (a name, an ID, a birth date) wherever it appears
in a message or a traceback, e.g. in a file name or an exception message, in any case. The DICOM
loader remembers them as soon as a file's header is read, so a file whose image then fails to
decode is covered too. The training child process redacts its own stderr (:func:`redact_output`).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
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


_pattern: re.Pattern | None = None  # all identifiers, longest first, case-insensitive


def remember_identifiers(*values: str) -> None:
    """Identifiers (patient name, ID, birth date) to remove from every later log record.

    Values shorter than 3 characters are ignored: they would blank out ordinary words and numbers.
    """
    global _pattern
    with _lock:
        before = len(_identifiers)
        _identifiers.update(v.strip() for v in values if v and len(v.strip()) >= 3)
        if len(_identifiers) != before:
            # Longest first ("Doe John" before "Doe"); any case, since a file name or a folder
            # often spells the name differently from the DICOM header (SMITH_John_CXR.png).
            _pattern = re.compile("|".join(re.escape(v) for v in sorted(_identifiers, key=len, reverse=True)),
                                  re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every remembered identifier replaced by REDACTED, whatever its case."""
    with _lock:
        pattern = _pattern
    return pattern.sub(REDACTED, text) if pattern is not None else text


def redact_output(fds: tuple[int, ...] = (2,)) -> None:
    """Pass everything this process writes to ``fds`` (stderr by default: Python's tracebacks and
    warnings, TensorFlow's C++ log, any library's prints) through :func:`redact`, line by line, on
    its way to where it was going. The training child process calls this, so its ``stderr.log``
    carries no identifier it has seen (its DICOM loader remembers them as in the app).
    """
    _route_through(fds, redact)


# TensorFlow's native log lines: absl's banner, and glog-style "I0000 00:00:1795933239.169 19864 port.cc:153] ..."
# lines of levels I, W and E (F, a fatal error, is kept: it explains the crash that follows); and
# LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." at each interpreter's start.
_NATIVE_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
                           r"STDERR|[IWE]\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] |INFO: Created TensorFlow Lite \w+ delegate)")


def is_native_noise(line: str) -> bool:
    """Whether a stderr line is TensorFlow's or LiteRT's native logging (not CovidGUI's own output)."""
    return bool(_NATIVE_NOISE.match(line))


# Native INFO lines only: glog-style "I0000 …] " and LiteRT's "INFO: …" (its XNNPACK line at each
# interpreter's first run). The GUI drops these and keeps the warnings and errors.
_NATIVE_INFO = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
                          r"STDERR|I\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] |INFO: )")


def is_native_info(line: str) -> bool:
    """Whether a stderr line is an INFO line of TensorFlow's or LiteRT's native logging."""
    return bool(_NATIVE_INFO.match(line))


def quiet_native_info() -> None:
    """Like :func:`quiet_native_stderr`, but only the native INFO lines are dropped (LiteRT logs its
    ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` whatever ``TF_CPP_MIN_LOG_LEVEL``
    says); native warnings and errors, and everything else, still reach stderr."""
    _filter_native_stderr(is_native_info)


def quiet_native_stderr() -> None:
    """Keep TensorFlow's native log lines (``oneDNN custom operations are on…``, absl's banner)
    off this process's stderr. Its C++ code logs before ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so
    the lines are filtered out of file descriptor 2 instead; Python's own ``sys.stderr`` keeps
    writing straight to the original stderr (a terminal stays a terminal for progress bars)."""
    _filter_native_stderr(is_native_noise)


def _filter_native_stderr(drop) -> None:
    """Lines written to file descriptor 2 for which ``drop(line)`` is true go nowhere; Python's
    ``sys.stderr`` writes straight to the original stderr."""
    import sys

    try:
        sys.stderr.flush()
        direct = os.dup(2)
        sys.stderr = open(direct, "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",  # noqa: SIM115
                          errors="backslashreplace")
    except (OSError, ValueError, AttributeError):
        return
    _route_through((2,), lambda line: "" if drop(line) else line)


def _route_through(fds: tuple[int, ...], transform) -> None:
    """Send what is written to ``fds`` through ``transform(line) -> line`` to where the first of
    them pointed. A pipe replaces the descriptors; a thread transforms and forwards; at exit the
    descriptors are restored, which ends the pipe, and the thread gets a moment for the last lines."""
    import atexit
    import sys

    target = os.dup(fds[0])
    saved = {fd: os.dup(fd) for fd in fds}
    read_end, write_end = os.pipe()
    for fd in fds:
        os.dup2(write_end, fd)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                out = transform(line.decode("utf-8", errors="replace"))
                if out:
                    os.write(target, out.encode("utf-8"))

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        for fd, original in saved.items():
            os.dup2(original, fd)
        thread.join(timeout=2.0)

    atexit.register(restore)


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


_fault_file = None  # the open log file faulthandler writes to (it needs a descriptor to stay open)


def enable_faulthandler(path: str | Path) -> None:
    """On a native crash (a segmentation fault in TensorFlow or Qt, an abort) Python's
    faulthandler writes every thread's stack to the end of the log at ``path``, where a plain
    exception's traceback would be: the one trace a crash that kills the process leaves."""
    import faulthandler

    global _fault_file
    try:
        new = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- kept open for the process' life
    except OSError:
        return
    faulthandler.enable(file=new, all_threads=True)
    if _fault_file is not None:
        _fault_file.close()
    _fault_file = new


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
    else:
        enable_faulthandler(path)
        def rotator(source: str, dest: str) -> None:  # the crash stacks follow the log to its new file
            if os.path.exists(source):
                os.replace(source, dest)
            enable_faulthandler(path)

        handler.rotator = rotator
    handler.covidgui_log = str(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    handler.addFilter(PatientRedactionFilter())
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    return path
