"""The app opens no network connection: classify, a batch and a tiny training run in a fresh
interpreter whose sockets refuse to connect or resolve, and record every attempt.

A fresh interpreter, so that connection attempts made while TensorFlow, Keras, pydicom or
Pillow are imported count too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

GUARDED_FLOWS = textwrap.dedent("""
    import json, socket, sys
    attempts = []

    def refuse(what):
        def blocked(*args, **kwargs):
            attempts.append(f"{what} {args[1:] if what.startswith('socket.') else args!r}"[:200])
            raise OSError(f"network disabled by test: {what}")
        return blocked

    socket.socket.connect = refuse("socket.connect")
    socket.socket.connect_ex = refuse("socket.connect_ex")
    socket.socket.sendto = refuse("socket.sendto")
    socket.create_connection = refuse("create_connection")
    socket.getaddrinfo = refuse("getaddrinfo")
    socket.gethostbyname = refuse("gethostbyname")

    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tests.tiny_data import make_class_folders
    root = Path(sys.argv[2])
    make_class_folders(root / "data", {"Covid": 6, "Normal": 6}, size=40)
    files = sorted((root / "data").rglob("*.png"))

    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.analysis.batch import classify_stream
    from covidgui.core.data.dataset import LabelledFiles
    from covidgui.core.training.train import TrainConfig, train

    classifier = Classifier.load()
    # Tiny generated images may be turned away by the input gate; the model still ran on them.
    single = classifier.predict_file(files[0], heatmap=True).classify_anyway()
    batch = [item for chunk in classify_stream(classifier, files[:5], batch_size=2) for item in chunk]
    classes = ["Covid", "Normal"]
    labelled = LabelledFiles(classes, files, [0 if "covid" in p.name else 1 for p in files])
    result = train(labelled, labelled, TrainConfig(input_size=32, epochs=1, batch_size=4))
    flows_attempts = list(attempts)
    import urllib.request
    try:  # the control: the guard does see a real attempt
        urllib.request.urlopen("http://example.org/", timeout=2)
    except Exception:
        pass
    print(json.dumps({"attempts": flows_attempts, "guard_works": len(attempts) > len(flows_attempts), "single": single.label, "classes": [classifier.card.display_name(c) for c in classifier.card.classes],
                      "batch": [i.prediction.classify_anyway().label if i.prediction else i.error for i in batch],
                      "trained": result.classifier is not None}))
""")


@pytest.mark.slow
def test_classify_batch_and_training_make_no_connection_attempt(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", GUARDED_FLOWS, str(REPO), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # The flows really ran (a failure caused by the blocked network would show up here).
    # A generated image may fall in the model's indeterminate band: a result all the same.
    outcomes = report["classes"] + ["Indeterminate"]
    assert report["single"] in outcomes
    assert len(report["batch"]) == 5 and all(label in outcomes for label in report["batch"])
    assert report["trained"]
    assert report["guard_works"]
    assert report["attempts"] == []
