"""Training time and validation result with the default settings, and GUI responsiveness while training.

    python benchmarks/training.py train [--data ../shared/data] [--train-epochs N] [--seed S]   # 3-9 minutes
    python benchmarks/training.py gui   [--data ../shared/data] [--epochs 3]
    python benchmarks/training.py profile [--films 160] [--epochs 3] [--cprofile out.prof]

train: trains with ``TrainConfig()`` defaults (or ``--train-epochs`` epochs, seed ``--seed``) on the bundled model's split (covid-xray/Train +
adult-normal minus the seeded hold-out; validation covid-xray/Val + the held-back adult normals,
see covidgui.core.data.reference_data), prints the wall time and the validation figures beside the
bundled model's (scored the same way, on the same files).

profile: where a training run's time goes, on a seeded sample of the same split (``--films`` training
films, half of each class, and ``--val-films`` validation films): wall time inside each piece of work
(decode + crop + resize, the lung segmenter's masks, acquisition augmentation, amplitude mix,
histogram equalisation, producing the batches fit reads, fit's validation passes, BatchNorm
re-estimation, calibration, the input gate's features), summed over the threads that ran it, and
fit's remaining time (the training steps' forward and backward passes). Run it twice, before and
after a change, on the same machine state and compare shares and ratios, not single times.

gui: the main window offscreen, its Training tab on the same folders-and-split as a user would
choose them (covid-xray/Train with the Val folder), a QTimer ticking every 10 ms on the GUI
thread; prints the longest gap between ticks (and the 99th percentile) while training runs and the
model is saved, and where the longest gaps happened: after which training event, how much of the
gap the GUI thread spent on the CPU (time.thread_time: a gap with little CPU is the process waiting for a core or for
the interpreter lock, not the GUI thread busy), and what the GUI thread was running (its stack,
sampled by a watchdog thread every 10 ms while a tick is late).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This tree's code, not the installed one: a worktree of an older commit then times that commit.
sys.path.insert(0, str(REPO))


def bench_train(data: Path, epochs: int | None = None, seed: int = 0) -> None:
    from covidgui.core.scoring.comparison import score_files
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.data.reference_data import bundled_model_split
    from covidgui.core.training.train import ProgressListener, TrainConfig, train

    class Epochs(ProgressListener):
        def on_epoch(self, epoch, epochs, logs):
            print(f"  epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.3f}" for k, v in logs.items()), flush=True)

    split = bundled_model_split(data)
    config = TrainConfig(seed=seed) if epochs is None else TrainConfig(epochs=epochs, seed=seed)
    print(f"settings: {config}")
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


# (label, names of the functions timed under it; looked up in every loaded covidgui.core.training module)
PROFILE_PARTS = [
    ("decode + crop + resize", ("load_prepared",)),
    ("lung masks (segmenter)", ("training_mask", "training_masks")),
    ("acquisition augmentation", ("augment_acquisition",)),
    ("amplitude mix", ("augment_amplitude_mix", "batch_spectra")),
    ("histogram equalisation", ("equalize_histogram", "equalize_histograms")),
    ("BatchNorm re-estimation", ("recalibrate_batch_norm",)),
    ("calibration (validation logits)", ("calibrate_and_measure",)),
    ("input gate features + fit", ("gate_features", "fit_gate")),
]


def bench_profile(data: Path, films: int, val_films: int, epochs: int, cprofile: Path | None) -> None:
    import functools
    import importlib
    import pkgutil

    import numpy as np

    import covidgui.core.training as training_pkg
    from covidgui.core.data.reference_data import bundled_model_split
    from covidgui.core.training.train import TrainConfig, train

    split = bundled_model_split(data)
    rng = np.random.default_rng(0)

    def sample(files, n):
        keep = np.zeros(len(files), dtype=bool)
        labels = np.asarray(files.labels)
        for c in range(len(files.classes)):
            members = np.flatnonzero(labels == c)
            keep[rng.choice(members, min(len(members), n // len(files.classes)), replace=False)] = True
        return files.subset(keep)

    train_files, val_files = sample(split.train, films), sample(split.val, val_films)
    config = TrainConfig(epochs=epochs, patience=0)
    print(f"{len(train_files)} training films {train_files.counts()}, {len(val_files)} validation films, "
          f"{epochs} epochs, otherwise the default recipe")

    spent: dict[str, float] = {}
    calls: dict[str, int] = {}

    def timed(label, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - started
                calls[label] = calls.get(label, 0) + 1
        wrapper.__wrapped_for_profile__ = True
        return wrapper

    modules = [importlib.import_module(f"covidgui.core.training.{m.name}")
               for m in pkgutil.iter_modules(training_pkg.__path__) if m.name not in ("job",)]
    for label, names in PROFILE_PARTS:
        for module in modules:
            for name in names:
                function = getattr(module, name, None)
                if callable(function) and not getattr(function, "__wrapped_for_profile__", False):
                    setattr(module, name, timed(label, function))

    import keras

    keras.Model.fit = timed("fit (all of it)", keras.Model.fit)
    keras.Model.evaluate = timed("fit's validation passes", keras.Model.evaluate)
    for module in modules:
        original = getattr(module, "make_sequence", None)
        if original is None or getattr(original, "__wrapped_for_profile__", False):
            continue

        def make_sequence(*args, _original=original, **kwargs):
            seq = _original(*args, **kwargs)
            cls = type(seq)
            if not getattr(cls.__getitem__, "__wrapped_for_profile__", False):
                cls.__getitem__ = timed("batches read by fit (seq[i])", cls.__getitem__)
            return seq
        make_sequence.__wrapped_for_profile__ = True
        setattr(module, "make_sequence", make_sequence)

    profiler = None
    if cprofile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = train(train_files, val_files, config)
    total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(cprofile)
    report = result.report
    fit = spent.get("fit (all of it)", 0.0)
    steps = fit - spent.get("fit's validation passes", 0.0)
    print(f"total {total:.1f} s wall, {cpu:.1f} s CPU (all threads); load average {os.getloadavg()[0]:.1f}; validation {report.get('correct')}/{report.get('n')}, AUC {report.get('auc', float('nan')):.3f}")
    print("| part | seconds (summed over threads) | share of the run's wall time | calls |")
    print("|---|---:|---:|---:|")
    rows = [(label, spent.get(label, 0.0), calls.get(label, 0)) for label, _ in PROFILE_PARTS]
    rows += [(label, spent.get(label, 0.0), calls.get(label, 0))
             for label in ("batches read by fit (seq[i])", "fit's validation passes", "fit (all of it)")]
    rows.append(("fit minus its validation passes (training steps + the batches they read)", steps, 0))
    for label, seconds, n in rows:
        print(f"| {label} | {seconds:.1f} | {seconds / total:.0%} | {n or ''} |")
    print(f"| whole train() call | {total:.1f} | 100% | 1 |")


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
    # (when, wall ms, GUI-thread CPU ms, where) for each gap over 50 ms
    long_gaps: list[tuple[float, float, float, str]] = []
    last_tick = [time.perf_counter(), time.thread_time()]
    gui_thread = threading.get_ident()
    samples: collections.Counter = collections.Counter()  # GUI-thread places seen during the current gap
    samples_lock = threading.Lock()
    watching = threading.Event()

    def where(frame) -> str:
        """The innermost project frames of a stack, else its innermost frame."""
        places = []
        while frame is not None and len(places) < 3:
            path = frame.f_code.co_filename
            if "covidgui" in path or "benchmarks" in path:
                places.append(f"{Path(path).name}:{frame.f_lineno} {frame.f_code.co_name}")
            frame = frame.f_back
        if places and places[0].split(" ")[-1] == "bench_gui":
            return "Qt's event loop (Qt's own work, or a slot waiting for the interpreter lock)"
        return " < ".join(places)

    def watchdog():
        while not watching.wait(0.01):
            if time.perf_counter() - last_tick[0] > 0.03:
                frame = sys._current_frames().get(gui_thread)
                place = where(frame) if frame is not None else ""
                with samples_lock:
                    samples[place or "Qt (no Python frame of the project)"] += 1

    def tick():
        now, cpu = time.perf_counter(), time.thread_time()
        if clock.isValid():
            gaps.append(clock.nsecsElapsed() / 1e6)
            with samples_lock:
                seen = samples.most_common(2)
                samples.clear()
            if gaps[-1] > 50:
                place = "; ".join(f"{p} ({n})" for p, n in seen) or "(not sampled)"
                long_gaps.append((now - t0, gaps[-1], (cpu - last_tick[1]) * 1000, place))
        last_tick[:] = [now, cpu]
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
    threading.Thread(target=watchdog, name="gap-watchdog", daemon=True).start()
    started = time.perf_counter()
    # Polled on the GUI thread: a lambda connected to the worker's signals would run on its thread.
    # When training ends: save the model as a user would (the name dialog accepted), then stop.
    def when_trained():
        if tab.is_training() or saving:
            return
        saving.append(True)
        events.append((time.perf_counter() - t0, "save asked"))
        tab.ask_save()
        tab.save_dialog.accept()

    saving: list = []
    worker.saved.connect(lambda _v: events.append((time.perf_counter() - t0, "saved")))
    done = QTimer(interval=200)
    done.timeout.connect(when_trained)
    stop = QTimer(interval=200)
    stop.timeout.connect(lambda: app.quit() if tab.saved_version is not None or (saving and tab.outcome is None) else None)
    stop.start()
    tab.start()
    done.start()
    app.exec()
    watching.set()
    seconds = time.perf_counter() - started
    ticker.stop()
    g = np.asarray(gaps)
    print(f"GUI while training in a {'thread' if in_thread else 'child process'} ({epochs} epochs, {seconds:.0f} s, {g.size} ticks of a 10 ms QTimer): "
          f"longest gap {g.max():.0f} ms, 99th percentile {np.percentile(g, 99):.0f} ms, "
          f"median {np.median(g):.1f} ms, gaps over 100 ms: {(g > 100).sum()}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")

    def after(when: float) -> str:
        before = [(w, text) for w, text in events if w <= when]
        return f"{when - before[-1][0]:.2f} s after '{before[-1][1]}'" if before else "before the first event"

    print("longest gaps (when, wall ms, GUI-thread CPU ms, where the GUI thread was):")
    for when, wall, cpu, place in sorted(long_gaps, key=lambda x: -x[1])[:5]:
        print(f"  {wall:4.0f} ms, CPU {cpu:4.0f} ms, {after(when)}: {place}")
    busy = [x for x in long_gaps if x[2] > 100]
    print(f"gaps with over 100 ms of GUI-thread CPU: {len(busy)}"
          + (f", longest {max(x[2] for x in busy):.0f} ms" if busy else ""))
    print(f"final: {tab.progress_label.text()}")
    if args_verbose:
        for when, text in sorted(events + [(w, f"gap {g:.0f} ms (CPU {c:.0f} ms) {p}") for w, g, c, p in long_gaps]):
            print(f"  {when:7.2f} s  {text}")
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["train", "gui", "profile"])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--epochs", type=int, default=3, help="epochs for the gui part")
    parser.add_argument("--train-epochs", type=int, help="train: epochs instead of the default recipe's")
    parser.add_argument("--seed", type=int, default=0, help="train: the training seed")
    parser.add_argument("--thread", action="store_true", help="gui: train on a worker thread, not a process")
    parser.add_argument("--films", type=int, default=160, help="profile: training films (half of each class)")
    parser.add_argument("--val-films", type=int, default=60, help="profile: validation films")
    parser.add_argument("--cprofile", type=Path, help="profile: also write cProfile statistics of the run here")
    parser.add_argument("--verbose", action="store_true", help="gui: list gaps over 50 ms beside training events")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.part == "gui":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        import tempfile

        # A throwaway user data directory: the benchmark must not change the user's active model.
        os.environ.setdefault("COVIDGUI_DATA_DIR", tempfile.mkdtemp(prefix="covidgui-bench-"))
        bench_gui(args.data, args.epochs, args.verbose, args.thread)
    elif args.part == "profile":
        bench_profile(args.data, args.films, args.val_films, args.epochs, args.cprofile)
    else:
        bench_train(args.data, args.train_epochs, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
