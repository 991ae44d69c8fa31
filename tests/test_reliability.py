"""Uncaught exceptions reach the log and a dialog; logs carry no patient identifiers; settings
survive restarts and a damaged settings file."""

from __future__ import annotations

import logging
import sys
import threading

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox

from covidgui.core.io import logs
from covidgui.gui.crash import CrashReporter
from tests.dicom_factory import PATIENT_BIRTH_DATE, PATIENT_ID, make_xray_dicom


@pytest.fixture
def log_dir(tmp_path, monkeypatch):
    folder = tmp_path / "logs"
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(folder))
    yield folder
    root = logging.getLogger()
    for handler in list(root.handlers):  # detach this test's file so the next test gets its own
        if getattr(handler, "covidgui_log", None):
            root.removeHandler(handler)
            handler.close()


def _flush():
    for handler in logging.getLogger().handlers:
        handler.flush()


def _visible_crash_dialog():
    return next((w for w in QApplication.topLevelWidgets()
                 if isinstance(w, QMessageBox) and w.objectName() == "crashDialog" and w.isVisible()), None)


def test_exception_on_a_worker_thread_is_logged_and_shown(qtbot, log_dir):
    window = QMainWindow()
    qtbot.addWidget(window)
    reporter = CrashReporter(window).install()
    try:
        def boom():
            raise RuntimeError("worker exploded")

        worker = threading.Thread(target=boom, name="decoder-1")
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: _visible_crash_dialog() is not None, timeout=5000)
        dialog = _visible_crash_dialog()
        assert str(log_dir / logs.LOG_FILE) in dialog.text()
        assert "Something went wrong" in dialog.text()
        dialog.grab().save("/tmp/ship-crash-dialog.png")
        dialog.close()
    finally:
        reporter.uninstall()
    _flush()
    text = (log_dir / logs.LOG_FILE).read_text()
    assert "RuntimeError: worker exploded" in text and "decoder-1" in text
    assert "Traceback" in text and "in boom" in text


def test_sys_excepthook_logs_the_traceback(qtbot, log_dir):
    reporter = CrashReporter(show_dialog=False).install()
    try:
        try:
            {}["missing"]
        except KeyError:
            sys.excepthook(*sys.exc_info())
    finally:
        reporter.uninstall()
    assert reporter.count == 1
    _flush()
    assert "KeyError: 'missing'" in (log_dir / logs.LOG_FILE).read_text()


def test_patient_identifiers_never_reach_the_log(tmp_path, log_dir):
    from covidgui.core.io.images import load_xray

    logs.setup_logging()
    xray = load_xray(make_xray_dicom(tmp_path / "p.dcm", np.linspace(0, 1, 64 * 64).reshape(64, 64)))
    patient = xray.metadata["patient"]
    log = logging.getLogger("covidgui.test")
    log.info("loaded %r with %s", xray.metadata, patient)
    try:  # an identifier inside an exception message and a path, the case repr cannot catch
        raise ValueError(f"cannot read /scans/{patient.patient_id}/{patient.name}.dcm ({PATIENT_BIRTH_DATE})")
    except ValueError:
        log.exception("failed for %s", patient.name)
    _flush()
    text = (log_dir / logs.LOG_FILE).read_text()
    assert "ValueError" in text and logs.REDACTED in text
    for value in (patient.name, "Testperson", "Alice", PATIENT_ID, PATIENT_BIRTH_DATE, patient.birth_date):
        assert value not in text


def test_the_log_rotates(log_dir, monkeypatch):
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    logs.setup_logging()
    log = logging.getLogger("covidgui.test")
    for i in range(200):
        log.warning("line %d %s", i, "x" * 50)
    _flush()
    files = sorted(p.name for p in log_dir.iterdir())
    assert logs.LOG_FILE in files and f"{logs.LOG_FILE}.1" in files
    assert len(files) <= logs.BACKUPS + 1


# -- settings ---------------------------------------------------------------------------------------
def test_settings_persist_across_windows(qtbot, tmp_path):
    from covidgui.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    # Within the offscreen platform's 800 x 600 screen: restoreGeometry keeps a window on its screen.
    window.resize(790, 560)
    qtbot.waitUntil(lambda: window.width() != 1100)
    saved_size = (window.width(), window.height())
    assert saved_size != (1100, 720)  # the default, which a failed restore would give
    window.result_panel.opacity_slider.setValue(70)
    window.settings.set_last_folder("open", tmp_path / "image.png")
    window.close()

    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    assert again.result_panel.opacity_slider.value() == 70
    assert again.viewer.overlay_opacity() == pytest.approx(0.70)
    qtbot.waitUntil(lambda: (again.width(), again.height()) == saved_size)
    assert again.settings.last_folder("open") == str(tmp_path)
    again.close()


@pytest.mark.parametrize("content", [
    b"\x00\xff\xfe garbage \x00\n[[[\n=\n",
    b"[view]\noverlay_opacity=lots\n[window]\ngeometry=@ByteArray(not a geometry)\n[folders]\nopen=/nonexistent/x\n",
    b"[view]\noverlay_opacity=900\n",
])
def test_a_corrupt_settings_file_falls_back_to_defaults(qtbot, content):
    from covidgui.gui.main_window import MainWindow
    from covidgui.gui.settings import DEFAULT_OPACITY, TITLE_BAR, settings_path

    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    window = MainWindow()
    qtbot.addWidget(window)
    assert window.result_panel.opacity_slider.value() == DEFAULT_OPACITY
    # The default size (1100 x 720), fitted to the screen (the test platform's is 800 px wide).
    screen = window.screen().availableGeometry()
    assert (window.width(), window.height()) == (min(1100, screen.width()), min(720, screen.height() - TITLE_BAR))
    assert window.settings.last_folder("open") == ""
    window.result_panel.opacity_slider.setValue(30)
    window.close()  # saving over the damaged file works
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.result_panel.opacity_slider.value() == 30
    again.close()


def _dicom_that_fails_after_its_header(path):
    """A DICOM whose header (patient name, ID, birth date) reads but whose image does not decode:
    the header promises more rows than the pixel data holds."""
    import pydicom

    make_xray_dicom(path, np.linspace(0, 1, 64 * 64).reshape(64, 64))
    ds = pydicom.dcmread(path)
    ds.Rows = 256
    ds.save_as(path)
    return path


def test_identifiers_of_a_dicom_that_fails_to_decode_are_redacted_in_any_case(tmp_path, log_dir):
    from covidgui.core.errors import ImageLoadError
    from covidgui.core.io.images import load_xray

    logs.setup_logging()
    path = _dicom_that_fails_after_its_header(tmp_path / "TESTPERSON_alice_cxr.dcm")
    with pytest.raises(ImageLoadError) as failure:
        load_xray(path)
    log = logging.getLogger("covidgui.test")
    log.warning("could not classify %s: %s", path, failure.value)
    log.warning("seen in folder /scans/testperson/ALICE and pid-0042")
    _flush()
    text = (log_dir / logs.LOG_FILE).read_text()
    assert "truncated or corrupt" in text or "could not classify" in text
    for value in ("testperson", "alice", "pid-0042", PATIENT_BIRTH_DATE):
        assert value not in text.lower()


def test_the_training_childs_stderr_log_is_redacted(tmp_path):
    """The training child writes its stderr (Python tracebacks, TensorFlow's C++ log) to the job
    folder's stderr.log, as the Training tab starts it; identifiers it has seen are removed."""
    import subprocess

    path = _dicom_that_fails_after_its_header(tmp_path / "testperson_ALICE.dcm")
    job = tmp_path / "job"
    job.mkdir()
    code = f"""
import os
from covidgui.core.training import job as training_job
from covidgui.core.errors import ImageLoadError
from covidgui.core.io.images import load_xray

def run(job_dir, emit, stop):
    try:
        load_xray({str(path)!r})
    except ImageLoadError:
        pass
    os.write(2, b"native log line about /data/TestPerson/Alice PID-0042\\n")  # as TensorFlow's C++ log does
    raise RuntimeError("could not train on {path}")

training_job.run = run
raise SystemExit(training_job.main([{str(job)!r}]))
"""
    log_path = job / "stderr.log"
    with open(log_path, "w") as log_file:
        done = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=log_file, text=True, timeout=120)
    assert done.returncode == 1
    assert '"failed"' in done.stdout  # the event still reaches the window
    text = log_path.read_text()
    assert "RuntimeError: could not train on" in text and "native log line" in text and logs.REDACTED in text
    for value in ("testperson", "alice", "pid-0042"):
        assert value not in text.lower()


def test_a_native_crash_leaves_its_stacks_in_the_app_log(tmp_path):
    """faulthandler: a segmentation fault (as TensorFlow and Qt can cause) writes every thread's
    stack to the app's log, the only trace of a crash that kills the process."""
    import os
    import subprocess

    code = ("from covidgui.core.io.logs import setup_logging\n"
            "import faulthandler, logging\n"
            "setup_logging(); logging.getLogger('t').warning('before the crash')\n"
            "def deep_in_the_app():\n    faulthandler._sigsegv()\n"
            "deep_in_the_app()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COVIDGUI_LOG_DIR": str(tmp_path)})
    assert done.returncode != 0
    text = (tmp_path / logs.LOG_FILE).read_text()
    assert "before the crash" in text
    assert "Fatal Python error: Segmentation fault" in text and "deep_in_the_app" in text


def test_a_native_crash_of_the_training_child_reaches_its_stderr_log(tmp_path):
    import subprocess

    job = tmp_path / "job"
    job.mkdir()
    code = ("import faulthandler\nfrom covidgui.core.training import job as training_job\n"
            "def run(job_dir, emit, stop):\n    faulthandler._sigsegv()\n"
            f"training_job.run = run\ntraining_job.main([{str(job)!r}])\n")
    with open(job / "stderr.log", "w") as log_file:
        done = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=log_file, timeout=60)
    assert done.returncode != 0
    text = (job / "stderr.log").read_text()
    assert "Fatal Python error: Segmentation fault" in text and "in run" in text
