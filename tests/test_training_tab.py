"""The Training tab driven as a user would: choose folders, check, start, watch, cancel or keep."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from covidgui.core.models import registry
from covidgui.core.models.model_files import bundled_model_path
from covidgui.gui.app import create_app
from covidgui.gui.main_window import MainWindow
from tests.tiny_data import make_class_folders

TRAIN_TIMEOUT_MS = 180_000


@pytest.fixture
def tiny_folders(tmp_path):
    train = make_class_folders(tmp_path / "train", {"Covid": 40, "Normal": 40})
    val = make_class_folders(tmp_path / "val", {"Covid": 8, "Normal": 8})
    return train, val


def new_window(qtbot) -> MainWindow:
    create_app()
    win = MainWindow()
    # A test that fails mid-training must not hang its teardown on the "stop training?" question.
    qtbot.addWidget(win, before_close_func=lambda w: setattr(w, "_confirm_stop_training", lambda: True))
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


def training_tab(qtbot, win, train_dir, val_dir=None, epochs=2):
    """Open the tab, choose the folders as the Browse buttons do, wait for the data check."""
    tab = win.open_training_tab()
    tab.fixed_settings = {"input_size": 48}
    tab.epochs_spin.setValue(epochs)
    tab.batch_spin.setValue(8)
    tab.set_training_folder(train_dir)
    if val_dir is not None:
        tab.set_validation_folder(val_dir)
    qtbot.waitUntil(lambda: tab.summary is not None and tab._summary_inputs == tab._inputs(), timeout=60_000)
    return tab


def user_versions() -> list:
    return [v for v in registry.list_versions() if not v.bundled]


def test_the_tab_is_built_when_first_opened(qtbot):
    win = new_window(qtbot)
    assert win.training_tab is None
    win.tabs.setCurrentIndex(win.tabs.count() - 1)
    assert win.training_tab is not None and win.tabs.currentWidget() is win.training_tab
    assert win.tabs.tabText(win.tabs.currentIndex()) == "Training"
    tab = win.training_tab
    assert tab.epochs_spin.toolTip() and tab.lr_spin.toolTip() and tab.patience_spin.toolTip()
    assert not tab.start_button.isEnabled()  # nothing chosen yet
    win.close()


def test_lung_guidance_is_on_by_default_and_can_be_turned_off(qtbot):
    from covidgui.core.training.lung_guidance import LUNG_GUIDANCE_WEIGHT

    win = new_window(qtbot)
    tab = win.open_training_tab()
    assert tab.lung_check.isEnabled() and tab.lung_check.isChecked()
    assert tab.config().lung_guidance == LUNG_GUIDANCE_WEIGHT > 0
    qtbot.mouseClick(tab.lung_check, Qt.MouseButton.LeftButton)
    assert not tab.lung_check.isChecked() and tab.config().lung_guidance == 0.0
    win.close()


def test_without_the_lung_model_lung_guidance_is_off_and_says_why(qtbot, monkeypatch, tmp_path):
    from covidgui.gui import training_tab as module

    monkeypatch.setattr(module, "bundled_segmenter_path", lambda: tmp_path / "absent.keras")
    win = new_window(qtbot)
    tab = win.open_training_tab()
    assert not tab.lung_check.isEnabled() and not tab.lung_check.isChecked()
    assert "lung model" in tab.lung_check.toolTip() and tab.config().lung_guidance == 0.0
    win.close()


def test_start_watch_the_charts_then_cancel_leaves_the_active_model_unchanged(qtbot, tiny_folders):
    win = new_window(qtbot)
    model_before = win._model_path
    tab = training_tab(qtbot, win, tiny_folders[0], tiny_folders[1], epochs=200)
    assert tab.summary.ok and tab.start_button.isEnabled()
    assert tab.counts_table.item(0, 0).text() == "Covid" and tab.counts_table.item(0, 1).text() == "40"
    assert tab.counts_table.item(1, 2).text() == "8"
    assert "Ready to train" in tab.summary_messages.text()

    tab.start_button.click()
    assert tab.is_training() and not tab.start_button.isEnabled() and tab.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: tab.curves.epochs_drawn() >= 1, timeout=TRAIN_TIMEOUT_MS)
    assert tab.progress.maximum() == 200 * 10 and tab.progress.value() > 0
    assert "left" in tab.progress_label.text()
    assert len(tab.curves.loss_ax.lines) == 2  # training and validation

    tab.cancel_button.click()
    # Worker signals reach the tab through the event loop, so wait for what the user sees.
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TRAIN_TIMEOUT_MS)
    assert "cancelled" in tab.progress_label.text() and "active model is unchanged" in tab.progress_label.text()
    assert tab.outcome is None and not tab.save_button.isEnabled() and not tab.use_button.isEnabled()
    assert tab.curves.epochs_drawn() < 200
    assert registry.active_model_path() == bundled_model_path() and win._model_path == model_before
    assert user_versions() == []
    win.close()


def test_train_to_the_end_save_use_and_restart(qtbot, tiny_folders):
    win = new_window(qtbot)
    tab = training_tab(qtbot, win, tiny_folders[0], epochs=2)
    assert tab.counts_table.item(0, 2).text() == "8"  # 20 % of 40 held back
    tab.start_button.click()
    qtbot.waitUntil(lambda: tab.outcome is not None, timeout=TRAIN_TIMEOUT_MS)
    outcome = tab.outcome
    assert outcome is not None and tab.curves.epochs_drawn() == 2
    assert outcome.new_scores.report["n"] == 16
    assert outcome.active_scores is not None  # the bundled model has the same two classes
    assert outcome.active_scores.report["n"] == 16
    assert "Finished: 2 epochs" in tab.progress_label.text()
    table = {tab.metrics_table.item(r, 0).text(): (tab.metrics_table.item(r, 1).text(),
                                                    tab.metrics_table.item(r, 2).text())
             for r in range(tab.metrics_table.rowCount())}
    assert {"Accuracy (95 % CI)", "AUC", "Covid: sensitivity", "Normal: specificity", "Covid: precision"} <= set(table)
    assert "%" in table["Covid: sensitivity"][0] and "–" in table["Covid: sensitivity"][0]
    assert "%" in table["Covid: sensitivity"][1]  # the active model's figures beside the new one's
    # The charts draw on their own thread: the results picture follows the outcome.
    qtbot.waitUntil(tab.evaluation.showing_results, timeout=60_000)
    assert tab.evaluation.new_ax.get_title().startswith("New model")
    assert tab.evaluation.roc_ax.get_lines()  # ROC curves drawn
    assert user_versions() == []  # nothing is saved until the user asks
    assert registry.active_model_path() == bundled_model_path()

    tab.use_button.click()  # not saved yet: asks for a name first
    dialog = tab.save_dialog
    assert dialog.isVisible()
    dialog.name_edit.setText("Ward 3 model")
    dialog.notes_edit.setPlainText("tiny generated test data")
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    qtbot.waitUntil(lambda: tab.saved_version is not None, timeout=60_000)
    (version,) = user_versions()
    assert (version.card.name, version.card.notes) == ("Ward 3 model", "tiny generated test data")
    assert version.card.metrics["validation"]["n"] == 16
    assert registry.active_model_path() == version.path
    assert win._model_path == str(version.path)
    assert "is now the active model" in tab.keep_label.text()
    win.close()

    again = new_window(qtbot)
    assert again._model_path == str(version.path)
    again.start_loading_model()
    qtbot.waitUntil(lambda: again.card is not None, timeout=120_000)
    assert again.card.name == "Ward 3 model"
    again.close()


@pytest.mark.parametrize("layout, expected", [
    ("one-class", "at least two classes"),
    ("empty", "holds no images"),
    ("mismatched", "do not match"),
    ("unreadable", "Normal has no readable images"),
])
def test_unusable_folders_say_why_and_cannot_start(qtbot, tmp_path, layout, expected):
    train, val = tmp_path / "train", None
    if layout == "one-class":
        make_class_folders(train, {"Covid": 30})
    elif layout == "empty":
        (train / "Covid").mkdir(parents=True)
        (train / "Normal").mkdir()
    elif layout == "mismatched":
        make_class_folders(train, {"Covid": 30, "Normal": 30})
        val = make_class_folders(tmp_path / "val", {"Covid": 5, "Pneumonia": 5})
    else:
        make_class_folders(train, {"Covid": 30})
        (train / "Normal").mkdir()
        (train / "Normal" / "scan.png").write_text("not a picture")
    win = new_window(qtbot)
    tab = training_tab(qtbot, win, train, val)
    assert expected in tab.summary_messages.text()
    assert "Cannot train" in tab.summary_messages.text()
    assert not tab.start_button.isEnabled()
    tab.start_button.click()  # a disabled button does nothing
    assert not tab.is_training()
    if layout == "unreadable":
        assert "scan.png" in tab.unreadable_list.toPlainText() and tab.unreadable_list.isVisible()
    assert user_versions() == [] and registry.active_model_path() == bundled_model_path()
    win.close()


def test_closing_during_training_asks_then_stops_cleanly(qtbot, tiny_folders):
    win = new_window(qtbot)
    tab = training_tab(qtbot, win, tiny_folders[0], epochs=200)
    tab.start_button.click()
    qtbot.waitUntil(lambda: tab.progress.value() > 0, timeout=TRAIN_TIMEOUT_MS)

    def answer(button):
        def click():
            box = QApplication.activeModalWidget()
            assert isinstance(box, QMessageBox) and "being trained" in box.text()
            box.button(button).click()
        QTimer.singleShot(200, click)

    answer(QMessageBox.StandardButton.No)
    win.close()
    assert win.isVisible() and tab.is_training()  # "No" keeps the window and the training

    answer(QMessageBox.StandardButton.Yes)
    win.close()
    assert not win.isVisible()
    assert tab.jobs.thread.is_finished()
    assert user_versions() == [] and registry.active_model_path() == bundled_model_path()


def test_models_dialog_switches_and_deletes_user_versions_only(qtbot, user_data_dir):
    from covidgui.core.inference.classifier import Classifier
    from covidgui.core.models.modelcard import ModelCard
    from covidgui.core.training.train import build_classifier

    card = ModelCard(name="Clinic", version="0", classes=["Covid", "Normal"], input_size=32)
    saved = registry.save_version(Classifier(build_classifier(32, 2), card), "Clinic")
    win = new_window(qtbot)
    dialog = win.show_models()
    assert dialog.list.count() == 2
    assert "[active]" in dialog.list.item(0).text() and "(bundled)" in dialog.list.item(0).text()
    assert not dialog.delete_button.isEnabled()  # the bundled model is selected

    dialog.select(saved.id)
    dialog.use_button.click()
    qtbot.waitUntil(lambda: win.card is not None, timeout=120_000)
    assert registry.active_model_path() == saved.path and win.card.name == "Clinic"
    assert "[active]" in dialog.list.item(1).text()

    dialog.select(saved.id)
    dialog._confirm_delete = lambda version: True
    dialog.delete_button.click()
    qtbot.waitUntil(lambda: win.card is not None, timeout=120_000)
    assert dialog.list.count() == 1 and not saved.path.exists()
    assert registry.active_model_path() == bundled_model_path() and win.card.name != "Clinic"
    win.close()


def test_charts_draw_off_the_gui_thread_and_show_the_numbers_they_were_given(qtbot):
    """The learning curves reuse their artists epoch after epoch; the results figure shows the counts."""
    import numpy as np

    from covidgui.core.scoring.comparison import Scores, roc_curves
    from covidgui.core.scoring.metrics import classification_report
    from covidgui.gui.charts import EvaluationCharts, LearningCurves

    curves = LearningCurves()
    qtbot.addWidget(curves)
    curves.resize(700, 260)
    lines_before = list(curves.loss_ax.lines)
    epochs = [{"loss": 0.9, "val_loss": 1.1, "accuracy": 0.5, "val_accuracy": 0.4},
              {"loss": 0.6, "val_loss": 0.8, "accuracy": 0.7, "val_accuracy": 0.6},
              {"loss": 0.3, "val_loss": 0.5, "accuracy": 0.9, "val_accuracy": 0.8}]
    for logs in epochs:
        curves.add_epoch(logs)
    qtbot.waitUntil(lambda: curves.is_current() and curves.epochs_drawn() == 3, timeout=30_000)
    assert list(curves.loss_ax.lines) == lines_before  # the same two lines, new data
    for ax, key in ((curves.loss_ax, "loss"), (curves.acc_ax, "accuracy")):
        train, val = ax.lines
        assert list(train.get_xdata()) == [1, 2, 3]
        assert np.allclose(train.get_ydata(), [e[key] for e in epochs])
        assert np.allclose(val.get_ydata(), [e[f"val_{key}"] for e in epochs])
        assert ax.get_legend().get_visible()
    low, high = curves.loss_ax.get_ylim()
    assert low <= 0.3 and high >= 1.1  # the loss axis follows the data
    assert not curves.pixmap().isNull()
    curves.reset()
    qtbot.waitUntil(lambda: curves.is_current() and curves.epochs_drawn() == 0, timeout=30_000)
    assert len(curves.loss_ax.lines[0].get_xdata()) == 0

    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    probs = np.array([[.9, .1], [.8, .2], [.3, .7], [.2, .8], [.1, .9], [.4, .6], [.7, .3]])
    report = classification_report(labels, probs, ["Covid", "Normal"], "Covid")
    scores = Scores("new", ["Covid", "Normal"], "Covid", labels, probs, report)
    charts = EvaluationCharts()
    qtbot.addWidget(charts)
    charts.resize(900, 290)
    charts.show_results(scores, roc_curves(scores), None, None, "No active model to compare")
    qtbot.waitUntil(charts.showing_results, timeout=30_000)
    counts = sorted(int(t.get_text()) for t in charts.new_ax.texts)
    assert counts == sorted(np.asarray(report["confusion_matrix"]).ravel().tolist())
    assert charts.new_ax.get_title().startswith("New model")
    assert charts.roc_ax.get_lines() and not charts.pixmap().isNull()

    # An active model scored without the files it was trained on says so over its matrix.
    active = Scores("covid-cnn v3.0.0", ["Covid", "Normal"], "Covid", labels[:5], probs[:5],
                    classification_report(labels[:5], probs[:5], ["Covid", "Normal"], "Covid"), seen={"train": 2})
    charts.show_results(scores, roc_curves(scores), active, roc_curves(active))
    qtbot.waitUntil(lambda: charts.showing_results() and charts.active_ax.get_title().startswith("Active"),
                    timeout=30_000)
    assert "on the 5 of 7 it never saw" in charts.active_ax.get_title()


# -- Adapting the active model (issue 25) ------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_start_model(tmp_path_factory):
    """A tiny 32-px Covid/Normal model file with its card, to be made the active model."""
    from covidgui.core.data.dataset import scan_class_folders
    from covidgui.core.models.model_files import save_model
    from covidgui.core.training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny-start")
    files = scan_class_folders(make_class_folders(root / "data", {"Covid": 10, "Normal": 10}, size=32))
    result = train(files, files, TrainConfig(input_size=32, epochs=1, batch_size=8, augment=False, lung_guidance=0.0,
                                             patience=0), name="tiny-start", version="1.0", positive_class="Covid")
    return save_model(result.classifier, root / "start.keras")


def adapting_tab(qtbot, tmp_path, start_model, epochs: int):
    """A window whose active model is ``start_model``, its Training tab set to adapt that model to
    12 + 12 site films (32 px) with 2 folds."""
    active = registry.save_version_file(start_model, "Tiny start")
    registry.set_active(active.id)
    site = make_class_folders(tmp_path / "site", {"Covid": 12, "Normal": 12}, size=32)
    win = new_window(qtbot)
    tab = win.open_training_tab()
    assert "Tiny start v1" in tab.setup.active_model_label.text()
    qtbot.mouseClick(tab.start_active_radio, Qt.MouseButton.LeftButton)
    # The gentle schedule, read from core, and the folds because there is no validation folder.
    from covidgui.core.training.adapt import GENTLE_EPOCHS, GENTLE_LEARNING_RATE

    assert tab.epochs_spin.value() == GENTLE_EPOCHS and tab.lr_spin.value() == pytest.approx(GENTLE_LEARNING_RATE)
    assert tab.patience_spin.value() == 0 and tab.folds_spin.value() == 5 and tab.folds_spin.isVisibleTo(tab)
    assert tab.start_button.text() == "Start adapting"
    assert not tab.val_share_spin.isEnabled()  # cross-validation judges every film: no share is set aside
    assert "adapted on the other parts" in tab.folds_spin.toolTip() and "gently" not in tab.epochs_spin.toolTip()
    tab.epochs_spin.setValue(epochs)
    tab.batch_spin.setValue(8)
    tab.folds_spin.setValue(2)
    tab.augment_check.setChecked(False)
    tab.lung_check.setChecked(False)
    tab.set_training_folder(site)
    qtbot.waitUntil(lambda: tab.summary is not None and tab._summary_inputs == tab._inputs(), timeout=60_000)
    # The check says how the films will be used: all of them, in folds; no "too few to learn" warning.
    status, messages = tab.setup.summary_status.text(), tab.setup.summary_messages.text()
    assert "24 films" in status and "2-fold cross-validation" in status, status
    assert tab.setup.counts_table.item(0, 1).text() == "12" and tab.setup.counts_table.item(0, 2).text() == "in every fold"
    assert "Fewer than" not in messages
    # A new network (clicked on its round button: the radio is wider than its words): the usual split and warning.
    new = tab.setup.start_new_radio
    qtbot.mouseClick(new, Qt.MouseButton.LeftButton, pos=QPoint(8, new.height() // 2))
    assert "validation: 20%" in tab.setup.summary_status.text() and "Fewer than" in tab.setup.summary_messages.text()
    qtbot.mouseClick(tab.start_active_radio, Qt.MouseButton.LeftButton)
    tab.epochs_spin.setValue(epochs)  # switching back restores the gentle schedule: set the test's again
    return win, tab, active


def test_adapting_the_active_model_shows_both_models_on_the_same_films_and_the_verdict(qtbot, tmp_path,
                                                                                         tiny_start_model):
    win, tab, active = adapting_tab(qtbot, tmp_path, tiny_start_model, epochs=1)
    tab.start_button.click()
    qtbot.waitUntil(lambda: "Fold" in tab.progress_label.text(), timeout=TRAIN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: tab.outcome is not None or not tab.is_training(), timeout=TRAIN_TIMEOUT_MS)
    assert tab.outcome is not None, tab.progress_label.text()
    figures = tab.outcome.adaptation
    assert figures["folds"] == 2 and figures["adapted"]["n"] == figures["starting"]["n"] == 24
    assert "Finished adapting" in tab.progress_label.text()

    qtbot.waitUntil(tab.evaluation.showing_results, timeout=60_000)
    assert tab.evaluation.new_ax.get_title().startswith("Adapted (out of fold, n=24)")
    assert tab.evaluation.active_ax.get_title().startswith("Starting model (same films)")
    assert sum(int(t.get_text()) for t in tab.evaluation.active_ax.texts) == 24  # the same 24 films
    legend = [t.get_text() for t in tab.evaluation.roc_ax.get_legend().get_texts()]
    assert any(t.startswith("adapted") for t in legend) and any(t.startswith("starting") for t in legend)
    headers = [tab.metrics_table.horizontalHeaderItem(c).text() for c in range(3)]
    assert headers[1] == "Adapted (out of fold)" and headers[2].startswith("Starting: Tiny start v1")
    rows = {tab.metrics_table.item(r, 0).text(): r for r in range(tab.metrics_table.rowCount())}
    auc_row = rows["AUC (95 % CI)"]
    assert all("(" in tab.metrics_table.item(auc_row, c).text() for c in (1, 2))  # both with their interval

    # 24 films cannot show a gain beyond the intervals: the window says so, and "Use" asks first.
    assert not figures["better"]
    assert tab.verdict_label.isVisible() and "Not better" in tab.verdict_label.text()
    assert "Keep using the active model" in tab.verdict_label.text()
    asked = []
    tab._confirm_use_not_better = lambda verdict: asked.append(verdict) or False
    tab.use_button.click()
    assert asked and "started from" in asked[0]
    assert tab.save_dialog is None and registry.active_model_path() == active.path  # "No": nothing changes

    if os.environ.get("COVIDGUI_SCREENSHOT_DIR"):  # to look at it (issue 25 item 6)
        win.resize(1366, 768)
        qtbot.wait(500)
        qtbot.waitUntil(lambda: tab.evaluation.is_current() and tab.curves.is_current(), timeout=30_000)
        qtbot.wait(300)
        win.grab().save(os.path.join(os.environ["COVIDGUI_SCREENSHOT_DIR"], "adaptation-1366x768.png"))
    win.close()


def test_cancelling_an_adaptation_keeps_the_active_model(qtbot, tmp_path, tiny_start_model):
    win, tab, active = adapting_tab(qtbot, tmp_path, tiny_start_model, epochs=100)
    tab.start_button.click()
    qtbot.waitUntil(lambda: tab.progress.value() > 0, timeout=TRAIN_TIMEOUT_MS)
    assert tab.progress_label.text().startswith("Fold 1 of 2: epoch")
    tab.cancel_button.click()
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TRAIN_TIMEOUT_MS)
    assert "active model is unchanged" in tab.progress_label.text() and tab.outcome is None
    assert registry.active_model_path() == active.path
    assert [v.id for v in user_versions()] == [active.id]
    win.close()
