"""Training time and validation result with the default settings, and GUI responsiveness while training.

    python benchmarks/training.py train [--data ../shared/data]      # ~5 CPU-minutes
    python benchmarks/training.py gui   [--data ../shared/data] [--epochs 3]

train: trains with ``TrainConfig()`` defaults on the bundled model's split (covid-xray/Train +
adult-normal minus the seeded hold-out; validation covid-xray/Val + the held-back adult normals,
see covidgui.core.data.reference_data), prints the wall time and the validation figures beside the
bundled model's (scored the same way, on the same files).

gui: the main window offscreen, its Training tab on the same folders-and-split as a user would
choose them (covid-xray/Train with the Val folder), a QTimer ticking every 10 ms on the GUI
thread; prints the longest gap between ticks (and the 99th percentile) while training runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bench_train(data: Path) -> None:
    from covidgui.core.scoring.comparison import score_files
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.data.reference_data import bundled_model_split
    from covidgui.core.training.train import ProgressListener, TrainConfig, train

    class Epochs(ProgressListener):
        def on_epoch(self, epoch, epochs, logs):
            print(f"  epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.3f}" for k, v in logs.items()), flush=True)

    split = bundled_model_split(data)
    config = TrainConfig()
    print(f"default settings: {config}")
    print(f"train {len(split.train)} {split.train.counts()}, validation {len(split.val)} {split.val.counts()}")
    started = time.perf_counter()
    result = train(split.train, split.val, config, Epochs())
    seconds = time.perf_counter() - started
    bundled = Classifier.load()
    print(f"training time: {seconds:.0f} s ({len(result.history['loss'])} epochs, calibration and scoring included)")
    for name, files in (("validation (covid-xray/Val + held-back adult normals)", split.val),
                        ("covid-xray/Val", split.covid_val)):
        new = score_files(result.classifier, files).report
        old = score_files(bundled, files).report
        print(f"{name}: new {new['correct']}/{new['n']} ({new['accuracy']:.1%}), AUC {new['auc']:.3f}, "
              f"sensitivity {new['sensitivity']:.1%}, specificity {new['specificity']:.1%} | "
              f"bundled {old['correct']}/{old['n']} ({old['accuracy']:.1%}), AUC {old['auc']:.3f}; "
              f"difference {new['correct'] - old['correct']:+d} images")


def bench_gui(data: Path, epochs: int, args_verbose: bool = False, in_thread: bool = False) -> None:
    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QTimer

    from covidgui.gui.app import create_app
    from covidgui.gui.main_window import MainWindow

    from covidgui.gui.training_worker import TrainingWorker

    TrainingWorker.use_process = not in_thread
    app = create_app()
    window = MainWindow()
    window.show()
    tab = window.open_training_tab()
    tab.epochs_spin.setValue(epochs)
    tab.set_training_folder(data / "covid-xray" / "Train")
    tab.set_validation_folder(data / "covid-xray" / "Val")
    deadline = time.time() + 300
    while not tab.start_button.isEnabled() and time.time() < deadline:
        app.processEvents()
        time.sleep(0.01)
    gaps: list[float] = []
    clock = QElapsedTimer()
    ticker = QTimer(interval=10)

    events: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    long_gaps: list[tuple[float, float]] = []

    def tick():
        if clock.isValid():
            gaps.append(clock.nsecsElapsed() / 1e6)
            if gaps[-1] > 50:
                long_gaps.append((time.perf_counter() - t0, gaps[-1]))
        clock.restart()

    worker = tab.jobs.worker

    def on_progress(event):
        if event.kind == "epoch":
            events.append((time.perf_counter() - t0, f"epoch {event.epoch + 1} ends"))
        elif event.kind == "phase":
            events.append((time.perf_counter() - t0, event.text))

    worker.progress.connect(on_progress)
    worker.finished.connect(lambda _o: events.append((time.perf_counter() - t0, "finished")))

    ticker.timeout.connect(tick)
    ticker.start()
    started = time.perf_counter()
    # Polled on the GUI thread: a lambda connected to the worker's signals would run on its thread.
    done = QTimer(interval=200)
    done.timeout.connect(lambda: None if tab.is_training() else app.quit())
    tab.start()
    done.start()
    app.exec()
    seconds = time.perf_counter() - started
    ticker.stop()
    g = np.asarray(gaps)
    print(f"GUI while training in a {'thread' if in_thread else 'child process'} ({epochs} epochs, {seconds:.0f} s, {g.size} ticks of a 10 ms QTimer): "
          f"longest gap {g.max():.0f} ms, 99th percentile {np.percentile(g, 99):.0f} ms, "
          f"median {np.median(g):.1f} ms, gaps over 100 ms: {(g > 100).sum()}")
    print(f"final: {tab.progress_label.text()}")
    if args_verbose:
        for when, text in sorted(events + [(w, f"gap {g:.0f} ms") for w, g in long_gaps]):
            print(f"  {when:7.2f} s  {text}")
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["train", "gui"])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--epochs", type=int, default=3, help="epochs for the gui part")
    parser.add_argument("--thread", action="store_true", help="gui: train on a worker thread, not a process")
    parser.add_argument("--verbose", action="store_true", help="gui: list gaps over 50 ms beside training events")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.part == "gui":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        import tempfile

        # A throwaway user data directory: the benchmark must not change the user's active model.
        os.environ.setdefault("COVIDGUI_DATA_DIR", tempfile.mkdtemp(prefix="covidgui-bench-"))
        bench_gui(args.data, args.epochs, args.verbose, args.thread)
    else:
        bench_train(args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
