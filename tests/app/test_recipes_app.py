"""A preset's whole recipe in the app: shown in the controls, applied on Reset, paused when its
epochs are done, kept by the Timeline and by model files."""
from __future__ import annotations

import dataclasses

import pytest

from convscope.engine.data.datasets import load_mini
from convscope.engine.recipes import RECIPES
from convscope.engine.schedules import final_lr, make_schedule, schedule_lr
from convscope.visualizer.messages import Hyper, RunSettings

TIMEOUT = 30_000


def tiny(spec, *args, **kwargs):
    """160 training digits (10 steps of 16) and 100 test digits of the embedded set."""
    mini = load_mini()
    return dataclasses.replace(mini, x_train=mini.x_train[:160], y_train=mini.y_train[:160],
                               x_test=mini.x_test[:100], y_test=mini.y_test[:100])


@pytest.fixture
def tiny_window(qtbot, tmp_path, monkeypatch, widgets):
    """``tiny_window(settings)``: the main window on ``tiny`` data, lr 0.05, batch 16, the
    run of ``settings`` started and paused at step 0."""
    from convscope.visualizer.main_window import MainWindow

    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(tmp_path / "window.ini"))
    def make(settings: RunSettings):
        w = MainWindow(settings=settings, hyper=Hyper(lr=0.05, batch_size=16, momentum=0.9),
                       theme="light", loader=tiny)
        widgets.append(w)
        w.lrs = []
        w.worker.progress.connect(lambda batch: w.lrs.append(batch.lr))
        qtbot.waitUntil(lambda: w.info is not None and w.latest is not None, timeout=TIMEOUT)
        return w

    return make


def steps(qtbot, window, n: int) -> None:
    start = window.latest.step
    window.worker.steps(n)
    qtbot.waitUntil(lambda: window.latest.step == start + n, timeout=TIMEOUT)


@pytest.mark.slow
def test_a_preset_shows_its_recipe_and_changes_nothing_until_reset(qtbot, window):
    c, worker = window.controls, window.worker
    before = make_schedule("constant", 0.01, 1)
    assert worker.trainer.schedule == before and not c.pending_label.isVisible()
    c.preset_combo.setCurrentIndex(c.preset_combo.findData("deep"))
    recipe = c.recipe_box
    assert (c.lr_spin.value(), c.batch_spin.value(), c.momentum_spin.value()) == (0.05, 32, 0.9)
    assert recipe.recipe() == {"epochs": 12, "lr_schedule": "cosine", "weight_decay": 0.0,
                               "nesterov": False, "augment": ("shift",),
                               "plain_epochs": 0, "label_smoothing": 0.0}
    assert recipe.summary_label.text() == "12 epochs, cosine lr, augment: shift"
    assert c.pending_label.isVisibleTo(c) and "learning rate" in c.pending_label.text()
    assert "epochs" in c.pending_label.text() and "schedule" in c.pending_label.text()
    worker_schedule(qtbot, window)  # after any command the preset might have sent
    t = worker.trainer
    assert (t.lr, t.batch_size, t.momentum, t.augment) == (0.01, 8, 0.9, ())
    assert t.schedule == before and window.info.settings.preset == "seed"

    c.reset_button.click()
    qtbot.waitUntil(lambda: window.info.settings.preset == "deep", timeout=TIMEOUT)
    t = worker.trainer
    assert t.schedule == make_schedule("cosine", 0.05, 12)
    assert (t.batch_size, t.momentum, t.augment) == (32, 0.9, ("shift",))
    assert (t.optimizer.nesterov, t.optimizer.weight_decay) == (False, 0.0)
    assert not c.pending_label.isVisibleTo(c)

    c.preset_combo.setCurrentIndex(c.preset_combo.findData("best"))
    recipe.nesterov_box.setChecked(False)  # still editable: the edit is what Reset applies
    assert recipe.plain_spin.value() == RECIPES["best"]["plain_epochs"] > 0
    assert "plain)" in recipe.summary_label.text()
    recipe.epochs_spin.setValue(3)
    recipe.plain_spin.setValue(1)
    assert recipe.smooth_spin.value() == RECIPES["best"]["label_smoothing"] > 0
    recipe.smooth_spin.setValue(0.2)
    window.reset()
    qtbot.waitUntil(lambda: window.info.settings.preset == "best", timeout=TIMEOUT)
    t = worker.trainer
    assert t.schedule == make_schedule("onecycle", 0.05, 3, plain_epochs=1)
    assert t.optimizer.weight_decay == 5e-4 and not t.optimizer.nesterov
    assert t.augment == RECIPES["best"]["augment"] and t.label_smoothing == 0.2


@pytest.mark.slow
def test_the_recipe_pauses_at_its_end_and_train_goes_on_at_its_last_lr(qtbot, tiny_window):
    window = tiny_window(RunSettings(epochs=2, lr_schedule="cosine"))
    worker = window.worker
    with qtbot.waitSignal(worker.recipe_done, timeout=TIMEOUT) as done:
        worker.train()
    qtbot.waitUntil(lambda: not window.running, timeout=TIMEOUT)
    last = round(final_lr(make_schedule("cosine", 0.05, 2)), 6)
    assert last == 0.025 and done.args[0].lr == last
    t = worker.trainer
    assert (t.epoch, t.step_count, t.schedule, t.lr) == (2, 20, None, last)
    accuracy = t.last_epoch_report.test_accuracy
    text = window.banner.label.text()
    assert text == f"Recipe done: 2 epochs, test accuracy {accuracy:.1%}. " \
                   f"Train continues at lr {last:g}."
    assert window.status.currentMessage().startswith("Recipe done: 2 epochs")
    assert window.controls.lr_spin.value() == last
    assert set(window.lrs) <= {0.05, schedule_lr(make_schedule("cosine", 0.05, 2), 1)}
    window.lrs.clear()
    worker.train()  # on past the recipe's end, at its last learning rate, without a pause
    qtbot.waitUntil(lambda: window.latest.step >= 45, timeout=TIMEOUT)
    worker.pause()
    qtbot.waitUntil(lambda: not window.running, timeout=TIMEOUT)
    assert set(window.lrs) == {last} and worker.trainer.epoch >= 4


@pytest.mark.slow
def test_the_seed_recipe_pauses_after_its_one_epoch(qtbot, tiny_window):
    window = tiny_window(RunSettings())
    with qtbot.waitSignal(window.worker.recipe_done, timeout=TIMEOUT) as done:
        window.worker.train()
    assert done.args[0].epochs == 1 and done.args[0].lr == 0.05  # constant: lr as it was
    qtbot.waitUntil(lambda: not window.running, timeout=TIMEOUT)
    assert window.worker.trainer.epoch == 1


@pytest.mark.slow
def test_a_new_learning_rate_turns_a_moving_schedule_off(qtbot, tiny_window):
    window = tiny_window(RunSettings(epochs=4, lr_schedule="onecycle"))
    steps(qtbot, window, 3)
    window.controls.lr_spin.setValue(0.02)
    qtbot.waitUntil(lambda: "schedule is off" in window.banner.label.text(), timeout=TIMEOUT)
    assert window.banner.label.text() == ("Learning rate 0.02 from now on: the onecycle "
                                          "schedule is off for the rest of this run.")
    assert worker_schedule(qtbot, window) == make_schedule("constant", 0.02, 4)
    window.lrs.clear()
    steps(qtbot, window, 3)
    assert set(window.lrs) == {0.02}


def worker_schedule(qtbot, window):
    """The trainer's schedule once the worker has carried out the commands sent so far."""
    with qtbot.waitSignal(window.worker.evaluated, timeout=TIMEOUT):
        window.worker.evaluate()
    return window.worker.trainer.schedule


@pytest.mark.slow
def test_timeline_resume_goes_on_along_the_schedule(qtbot, tiny_window):
    window = tiny_window(RunSettings(epochs=3, lr_schedule="cosine"))
    schedule = make_schedule("cosine", 0.05, 3)
    steps(qtbot, window, 25)
    with qtbot.waitSignal(window.worker.resumed, timeout=TIMEOUT) as resumed:
        window.worker.resume(12)
    back = resumed.args[0].step
    assert back < 25 and worker_schedule(qtbot, window) == schedule
    window.lrs.clear()
    steps(qtbot, window, 1)
    epoch = back // 10  # 10 steps an epoch
    assert window.lrs == [schedule_lr(schedule, epoch)]


@pytest.mark.slow
def test_model_files_keep_the_schedule_and_a_finished_recipe_trains_on(tmp_path, qapp):
    from convscope.engine.net.train import StepReport  # noqa: F401 - the engine is loaded
    from convscope.visualizer.model_files import read_model_file, saved_run_of, write_model_file
    from convscope.visualizer.run_setup import build_trainer, finish_recipe

    data = tiny("mini")
    settings = RunSettings(epochs=2, lr_schedule="cosine", augment=("shift",))
    hyper = Hyper(lr=0.05, batch_size=16, momentum=0.9)
    trainer, _, note = build_trainer(settings, data, hyper)
    assert note is None and trainer.schedule == make_schedule("cosine", 0.05, 2)
    for _ in range(5):
        trainer.step()
    path = tmp_path / "half.npz"
    write_model_file(str(path), saved_run_of(trainer, "mini", data))
    again, _, note = build_trainer(settings, data, Hyper(), read_model_file(str(path)))
    assert note is None and again.schedule == trainer.schedule and again.step_count == 5
    assert (again.augment, again.lr) == (("shift",), trainer.lr)

    trainer.fit(2)
    path = tmp_path / "done.npz"
    write_model_file(str(path), saved_run_of(trainer, "mini", data))
    done, _, note = build_trainer(settings, data, Hyper(), read_model_file(str(path)))
    assert note == "Its recipe's 2 epochs are done: Train continues at lr 0.025."
    assert done.schedule is None and done.lr == 0.025 and finish_recipe(done) is None
