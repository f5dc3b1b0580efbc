"""Pushed to extremes: divergence, bad files at every entry point, out-of-range input, and
shutdown in the middle of every kind of work (closing the window, or Ctrl+C in the terminal).
"""
from __future__ import annotations

import gc
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QCoreApplication, QEvent, Qt
from PyQt5.QtTest import QTest

from convscope.cli import run as cli_run
from convscope.engine.data.datasets import load_mini
from convscope.engine.data.idx import DataError
from convscope.engine.files.checkpoint import load_model, save_model
from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import LOSS_LIMIT, DivergenceError, Trainer
from convscope.visualizer.file_actions import launch_options, persist
from convscope.visualizer.main_window import MainWindow
from convscope.visualizer.messages import Hyper, RunSettings
from convscope.visualizer.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30_000  # ms


def one_line(text: str) -> bool:
    return bool(text.strip()) and "\n" not in text.strip()


def close_window(w) -> None:
    w.close()
    w.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    gc.collect()


def new_window(qtbot, **kwargs) -> MainWindow:
    w = MainWindow(**kwargs)
    w.show()
    qtbot.waitUntil(lambda: w.info is not None and w.latest is not None, timeout=TIMEOUT)
    return w


def all_finite(arrays) -> bool:
    return all(np.isfinite(a).all() for a in arrays
               if isinstance(a, np.ndarray) and a.dtype.kind == "f")


def type_into(spin, text: str) -> None:
    spin.setFocus()
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin, text)
    QTest.keyClick(spin, Qt.Key_Return)


# ---- divergence -----------------------------------------------------------------------------
def test_seed_net_at_lr_1_diverges_and_the_step_is_refused(mini):
    data = mini
    trainer = Trainer(Model(build_config("seed"), 0), data.x_train, data.y_train, lr=1.0,
                      batch_size=8)
    losses = []
    with np.errstate(all="ignore"), pytest.raises(DivergenceError) as caught:
        for _ in range(300):  # "within a few hundred steps"
            before = {k: w.copy() for k, w in trainer.model.params().items()}
            losses.append(trainer.step().loss)
    failed_at = len(losses) + 1
    assert f"at step {failed_at} " in str(caught.value) and "lower learning rate" in str(
        caught.value)
    assert trainer.step_count == failed_at - 1  # the exploding step was not applied
    for k, w in trainer.model.params().items():
        assert np.array_equal(w, before[k])
    assert all(np.isfinite(losses)) and max(losses) <= LOSS_LIMIT


def test_a_nan_loss_is_caught_at_its_step(mini):
    data = mini
    trainer = Trainer(Model(build_config("seed"), 0), data.x_train[:64], data.y_train[:64],
                      lr=1e30, batch_size=4)
    trainer.step()  # one giant step: the next forward pass overflows
    with np.errstate(all="ignore"), pytest.raises(DivergenceError, match="at step 2 "):
        trainer.step()
    assert trainer.step_count == 1
    assert all_finite(trainer.model.params().values())


@pytest.mark.slow
def test_window_divergence_pauses_goes_back_explains_and_recovers(qtbot, window):
    c = window.controls
    type_into(c.lr_spin, "10")
    assert c.lr_spin.value() == 10  # the spin box accepts lr up to 10
    c.lr_spin.setValue(1.0)
    c.batch_spin.setValue(8)
    c.momentum_spin.setValue(0.0)
    window.show()
    with qtbot.waitSignal(window.worker.error, timeout=TIMEOUT) as blocker:
        c.train_button.click()
    message = blocker.args[0]
    assert one_line(message) and "diverged" in message
    assert "lower the learning rate" in message and "went back to step 0" in message
    qtbot.waitUntil(lambda: not window.running and window.banner.isVisible(), timeout=TIMEOUT)
    assert window.banner.label.text() == message
    qtbot.waitUntil(lambda: window.latest.step == 0, timeout=TIMEOUT)  # the last good state
    snap = window.latest
    assert all_finite(snap.params.values()) and all_finite(snap.probe_trace.values())
    (branch,) = window.worker.timeline.branches()  # the blow-up stays visible as a branch
    assert branch.fork_step == 0 and np.isfinite(branch.losses).all()
    window.force_repaint()
    window._repaint()  # every panel paints the restored state (a NaN would warn: an error)
    assert window.shows(snap)
    for panel in (window.loss_panel, window.accuracy_panel):
        assert all(np.isfinite(h.y).all() for h in panel.histories.values())
    c.lr_spin.setValue(0.005)  # what the message advises: training goes on
    errors = []
    window.worker.error.connect(errors.append)
    window.worker.steps(100)
    qtbot.waitUntil(lambda: window.latest.step == 100, timeout=TIMEOUT)
    assert errors == []
    assert window.loss_panel.histories["raw"].y.max() < 10


def test_cli_divergence_on_resume_keeps_the_saved_model(capsys, tmp_path):
    path = tmp_path / "model.npz"
    quick = ["--train-size", "64", "--test-size", "0", "--batch-size", "8"]
    assert cli_run(["train", *quick, "--save", str(path)]) == 0
    saved = path.read_bytes()
    capsys.readouterr()
    code = cli_run(["train", *quick, "--resume", str(path), "--lr", "10", "--epochs", "3",
                    "--save", str(path), "--json"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert one_line(err) and "diverged" in err and "learning rate" in err
    assert path.read_bytes() == saved  # no NaN written, the old model kept
    model, _, _ = load_model(path)
    assert all_finite(model.params().values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]




def test_a_probability_that_underflows_is_shown_finite(mini):
    from convscope.engine.net.model import prepare_input
    from convscope.engine.tools.explain import explain
    from convscope.visualizer.cell_grid import colorize
    model = Model(build_config("seed"), 0)
    model.params()["dense1.W"][...] *= 300_000  # logits far apart, as near a divergence
    data = mini
    x = prepare_input(data.x_test[:1])
    label = int(np.argmin(model.forward(x)[0]))  # the least likely class: out[label] == 0
    trace: dict = {}
    with np.errstate(all="ignore"):
        model.loss_and_grads(x, np.array([label]), trace)
    assert trace["probs"][0, label] == 0 and np.isfinite(trace["loss"]).all()
    assert np.isfinite(trace["dL_dout"]).all()  # not -1 / 0
    for key, index in (("loss", ()), ("dL_dout", (label,)), ("dL_dt", (label,))):
        e = explain(model, trace, key, index)  # warnings are errors here: none is raised
        assert np.isfinite(e.value), key
    assert explain(model, trace, "loss").value == pytest.approx(float(trace["loss"][0]))
    lut = np.zeros((256, 4), np.uint8)
    lut[:, 0] = np.arange(256)
    rgba = colorize(np.array([[-np.inf, -1.0, 1.0, np.inf, np.nan]]), lut, -np.inf, np.inf)
    assert list(rgba[0, :4, 0]) == [0, 0, 255, 255] and rgba[0, 4, 3] == 0  # NaN transparent


def test_the_timeline_shows_nothing_of_a_run_it_is_not_configured_for(qtbot, mini):
    from convscope.engine.tools.timeline import Timeline
    from convscope.visualizer.timeline_panel import TimelinePanel
    data = mini
    timeline = Timeline(every=1)
    panel = TimelinePanel(timeline)
    qtbot.addWidget(panel)
    panel.set_config(build_config("seed"))
    trainer = Trainer(Model(build_config("deep"), 0), data.x_train[:20], data.y_train[:20])
    timeline.start(trainer)  # a Reset to another network, before its set_config arrives
    with qtbot.assertNotEmitted(panel.scrubbed):
        assert panel.show_step(0) is None
    panel.set_config(build_config("deep"))
    assert panel.show_step(0).step == 0

# ---- long steps stay interruptible ----------------------------------------------------------
@pytest.mark.slow
def test_a_large_batch_runs_in_chunks_and_can_be_given_up(mini):
    data = mini
    x, y = data.x_train[:300], data.y_train[:300]
    chunked = Trainer(Model(build_config("lenet"), 0), x, y, lr=0.05, batch_size=100)
    whole = Trainer(Model(build_config("lenet"), 0), x, y, lr=0.05, batch_size=100)
    whole.model.chunk = 10**6
    assert chunked.model.chunk < 100 < whole.model.chunk  # several chunks against one pass
    assert chunked.step().loss == pytest.approx(whole.step().loss, rel=1e-6)
    for k, w in chunked.model.params().items():
        np.testing.assert_allclose(w, whole.model.params()[k], rtol=1e-4, atol=1e-7)

    trainer = Trainer(Model(build_config("lenet"), 0), x, y, lr=0.05, batch_size=100,
                      augment=True)
    twin = Trainer(Model(build_config("lenet"), 0), x, y, lr=0.05, batch_size=100,
                   augment=True)
    before = trainer.get_state()
    asked = []
    trainer.should_stop = lambda: len(asked) > 1 or asked.append(1)  # stop at the 3rd chunk
    with pytest.raises(InterruptedError):
        trainer.step()
    after = trainer.get_state()
    assert after["meta"] == before["meta"]  # step, position and random state unchanged
    for k, w in after["params"].items():
        assert np.array_equal(w, before["params"][k])
    trainer.should_stop = None
    assert trainer.step().loss == twin.step().loss  # the same step, done again


@pytest.mark.slow
def test_an_interrupted_epoch_end_is_finished_by_the_next_step(mini):
    data = mini
    trainer = Trainer(Model(build_config("lenet"), 0), data.x_train[:16], data.y_train[:16],
                      data.x_test, data.y_test, lr=0.01, batch_size=8)
    trainer.should_stop = lambda: True  # a step of one chunk: only the evaluation stops
    with pytest.raises(InterruptedError):
        trainer.step(16)  # the whole epoch, then its evaluation
    assert trainer.step_count == 1 and trainer.epoch == 0 and trainer.cursor == 16
    trainer.should_stop = None
    trainer.step()
    assert trainer.epoch == 1 and trainer.last_epoch_report.test_accuracy is not None
    assert trainer.step_count == 2 and trainer.cursor == 8


@pytest.mark.slow
def test_pause_and_close_do_not_wait_for_a_huge_step(qtbot):
    def small_test_split(spec):
        data = load_mini()
        data.x_test, data.y_test = data.x_test[:20], data.y_test[:20]
        return data

    w = new_window(qtbot, settings=RunSettings(preset="lenet", filters=64),
                   hyper=Hyper(batch_size=9000), loader=small_test_split)
    try:
        assert w.controls.batch_spin.value() == 9000  # minutes for one step on 2 cores
        asked, ask = [], w.worker.trainer.should_stop
        w.worker.trainer.should_stop = lambda: asked.append(1) or ask()
        w.controls.train_button.click()
        qtbot.waitUntil(lambda: len(asked) > 2, timeout=TIMEOUT)  # inside the step
        w.controls.train_button.click()  # Pause: the step is given up
        qtbot.waitUntil(lambda: not w.running, timeout=TIMEOUT)
        assert w.latest.step == 0
        w.controls.train_button.click()
        qtbot.waitUntil(lambda: len(asked) > 5, timeout=TIMEOUT)
        w.close()  # while the step runs
        assert w.thread.isFinished()
    finally:
        close_window(w)

# ---- bad files at every entry point ---------------------------------------------------------
def bad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "not-mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"this is not an IDX file\n" * 10)
    return folder


@pytest.mark.slow
def test_a_bad_dataset_folder_is_refused_and_the_run_goes_on(qtbot, window, tmp_path,
                                                             monkeypatch, run_steps):
    from PyQt5.QtWidgets import QFileDialog
    folder = bad_folder(tmp_path)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    info = window.info
    run_steps(window, 3)
    c = window.controls
    c.dataset_combo.setCurrentIndex(c.dataset_combo.count() - 1)
    c.dataset_combo.activated.emit(c.dataset_combo.count() - 1)  # "Folder of IDX files..."
    assert c.settings().dataset == str(folder)
    with qtbot.waitSignal(window.worker.error, timeout=TIMEOUT) as blocker:
        c.reset_button.click()
    assert one_line(blocker.args[0]) and str(folder) in blocker.args[0]
    qtbot.waitUntil(lambda: not window.banner.isHidden(), timeout=TIMEOUT)
    assert window.info is info and window.latest.step == 3  # the same run, untouched
    assert c.dataset_combo.currentData() == info.settings.dataset  # the data in use
    assert not window.status.values["state"].startswith("loading")
    assert len(run_steps(window, 2)) == 2


@pytest.mark.slow
def test_launch_with_a_saved_dataset_that_went_bad_falls_back_to_mini(qtbot, tmp_path,
                                                                      monkeypatch):
    ini = tmp_path / "settings.ini"
    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(ini))
    settings = Settings()
    settings.set_run_settings(dataset=str(bad_folder(tmp_path)))
    settings.sync()
    w = MainWindow(**launch_options(Settings()))
    try:
        w.show()
        qtbot.waitUntil(lambda: w.info is not None, timeout=TIMEOUT)
        assert w.info.dataset == "mini" and w.controls.settings().dataset == "mini"
        qtbot.waitUntil(lambda: not w.banner.isHidden(), timeout=TIMEOUT)
        assert "not-mnist" in w.banner.label.text() and "mini" in w.banner.label.text()
    finally:
        close_window(w)


@pytest.mark.slow
def test_garbage_settings_give_a_working_window_with_defaults(qtbot, tmp_path, monkeypatch):
    ini = tmp_path / "settings.ini"
    ini.write_bytes(b"[window]\ngeometry=@ByteArray(\x00\x01garbage)\nstate=@ByteArray(xx)\n"
                    b"[hyper]\nlr=-3\nbatch_size=1e9\nmomentum=nan\n[run]\npreset=resnet\n"
                    b"filters=999\npool=median\nseed=-1\n[view]\ntheme=plaid\n"
                    b"[files]\nrecent=\xff\xfe\n")
    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(ini))
    settings = Settings()
    w = MainWindow(**launch_options(settings))
    try:
        persist(w, settings)
        w.show()
        qtbot.waitUntil(lambda: w.info is not None, timeout=TIMEOUT)
        assert w.controls.settings() == RunSettings(filters=8, relu=False).filled()
        assert w.controls.hyper() == Hyper()
        assert w.theme_choice == "system"
    finally:
        close_window(w)


@pytest.mark.slow
def test_open_recent_on_a_file_that_went_bad_is_refused(qtbot, window, run_steps, tmp_path,
                                                        dialog_errors):
    run_steps(window, 4)
    path = tmp_path / "kept.npz"
    files = window.file_actions.model_files
    files.save_to(str(path))
    qtbot.waitUntil(lambda: files.current_path == str(path), timeout=TIMEOUT)
    path.write_bytes(path.read_bytes()[:100])  # truncated since
    params = {k: v.copy() for k, v in window.latest.params.items()}
    files._fill_recent()
    (action,) = [a for a in files.recent_menu.actions() if a.toolTip() == str(path)]
    action.trigger()
    assert len(dialog_errors) == 1 and one_line(dialog_errors[0])
    assert "kept.npz" in dialog_errors[0]
    assert window.latest.step == 4
    for k, v in window.latest.params.items():
        assert np.array_equal(v, params[k])


@pytest.mark.slow
def test_a_model_file_whose_dataset_is_gone_opens_on_mini(qtbot, window, tmp_path):
    model = Model(build_config("seed", filters=4), 7)
    path = tmp_path / "elsewhere.npz"
    save_model(path, model, None, {"dataset": str(tmp_path / "gone")})
    with qtbot.waitSignal(window.run_started, timeout=TIMEOUT):
        assert window.file_actions.model_files.open_path(str(path))
    qtbot.waitUntil(lambda: window.latest is not None
                    and window.latest.params["conv1.W"].shape == (3, 3, 1, 4),
                    timeout=TIMEOUT)
    np.testing.assert_array_equal(window.latest.params["conv1.W"], model.params()["conv1.W"])
    assert window.info.dataset == "mini"
    qtbot.waitUntil(lambda: not window.banner.isHidden(), timeout=TIMEOUT)
    assert "gone" in window.banner.label.text() and one_line(window.banner.label.text())


@pytest.mark.slow
def test_an_image_that_is_not_an_image_is_refused(qtbot, window, tmp_path):
    panel = window.draw_panel
    fake = tmp_path / "digit.png"
    fake.write_text("no pixels here")
    probe_before = window.worker.trainer.probe.copy()
    assert panel.open_image(str(fake)) is False
    assert one_line(panel.error_label.text()) and "digit.png" in panel.error_label.text()
    assert not panel.error_label.isHidden()
    window.worker.steps(1)
    qtbot.waitUntil(lambda: window.latest.step == 1, timeout=TIMEOUT)
    np.testing.assert_allclose(window.latest.probe_trace["input"][0],
                               probe_before / 255 - 0.5, atol=1e-6)



@pytest.mark.parametrize("make, argv", [
    (lambda d: bad_folder(d), lambda d: ["train", "--data", str(d / "not-mnist")]),
    (lambda d: bad_folder(d), lambda d: ["eval", "--model", str(d / "m.npz"), "--data",
                                         str(d / "not-mnist")]),
    (lambda d: (d / "m.npz").write_bytes(b"PK\x03\x04 truncated"),
     lambda d: ["train", "--resume", str(d / "m.npz")]),
    (lambda d: (d / "m.npz").write_text("weights"),
     lambda d: ["predict", "--model", str(d / "m.npz"), str(d / "m.npz")]),
    (lambda d: None, lambda d: ["eval", "--model", str(d / "missing.npz")]),
])
@pytest.mark.slow
def test_cli_bad_files_exit_1_with_one_line(capsys, tmp_path, make, argv):
    save_model(tmp_path / "m.npz", Model(build_config("seed"), 0))
    make(tmp_path)
    assert cli_run(argv(tmp_path)) == 1
    out, err = capsys.readouterr()
    assert out == "" and one_line(err) and "Traceback" not in err

# ---- limits on inputs -----------------------------------------------------------------------
@pytest.mark.parametrize("name, typed, kept, words", [
    ("lr_spin", "20", 0.01, "Learning rate goes from 1e-05 to 10"),
    ("lr_spin", "0", 0.01, "Learning rate goes from 1e-05 to 10"),
    ("batch_spin", "0", 8, "Batch size goes from 1 to 9,000"),
    ("batch_spin", "99999", None, "Batch size goes from 1 to 9,000"),
    ("momentum_spin", "1", 0.9, "Momentum goes from 0 to 0.99"),
    ("filters_spin", "65", None, "Filters go from 1 to 64"),
    ("filters_spin", "0", 8, "Filters go from 1 to 64"),
])
@pytest.mark.slow
def test_out_of_range_input_is_refused_with_the_reason(qtbot, window, name, typed, kept,
                                                       words):
    spin = getattr(window.controls, name)
    with qtbot.waitSignal(window.controls.limits.refused, timeout=TIMEOUT) as blocker:
        type_into(spin, typed)
    assert words in blocker.args[0] and one_line(blocker.args[0])
    assert words in window.status.currentMessage()
    assert spin.minimum() <= spin.value() <= spin.maximum()
    if kept is not None:
        assert spin.value() == pytest.approx(kept)


@pytest.mark.slow
def test_limits_follow_the_training_set_and_accept_the_extremes(qtbot, window):
    c = window.controls
    assert c.batch_spin.maximum() == window.info.n_train == 9000
    assert c.lr_spin.minimum() > 0 and c.lr_spin.maximum() >= 10
    assert (c.filters_spin.minimum(), c.filters_spin.maximum()) == (1, 64)
    for spin, text, value in ((c.lr_spin, "10", 10.0), (c.lr_spin, "1e-05", 1e-5),
                              (c.batch_spin, "9000", 9000), (c.filters_spin, "64", 64)):
        type_into(spin, text)
        assert spin.value() == pytest.approx(value)
    assert "from 1 to 64" in c.limits.reason(c.filters_spin)


@pytest.mark.parametrize("argv", [
    ["eval", "--model", "m.npz", "--test-size", "0"],
    ["gradcheck", "--samples", "0"], ["gradcheck", "--samples", "101"],
    ["gradcheck", "--filters", "65"], ["gradcheck", "--seed", "-1"],
    ["screenshot", "--out", "x.png", "--size", "10x10"],
    ["screenshot", "--out", "x.png", "--steps", "-5"],
    ["train", "--lr", "inf"], ["train", "--momentum", "-0.1"], ["train", "--epochs", "x"],
])
@pytest.mark.slow
def test_cli_options_out_of_range_exit_2_with_the_reason(capsys, argv):
    assert cli_run(argv) == 2
    out, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]
    assert out == "" and "error:" in last and argv[-2] in last  # names the option


# ---- shutdown in the middle of every kind of work -------------------------------------------
@pytest.mark.slow
def test_closing_while_training_stops_the_worker(qtbot):
    w = new_window(qtbot, hyper=Hyper(batch_size=32))
    with qtbot.waitSignal(w.worker.progress, timeout=TIMEOUT):
        w.controls.train_button.click()
    w.close()
    try:
        assert w.thread.isFinished()
    finally:
        close_window(w)


@pytest.mark.slow
def test_closing_while_evaluating_cancels_the_evaluation(qtbot, monkeypatch):
    import convscope.visualizer.evaluation as evaluation
    chunks, real = [], evaluation.evaluate

    def slow_evaluate(model, images, labels, progress=None):  # 1,000 chunks of 25 ms
        def report(done, total):
            chunks.append(done)
            time.sleep(0.025)
            if progress is not None:
                progress(done, total)
        for i in range(1000):
            report(i + 1, 1000)
        return real(model, images, labels)

    monkeypatch.setattr(evaluation, "evaluate", slow_evaluate)
    w = new_window(qtbot)
    view = w.file_actions.evaluation
    view.evaluate()
    qtbot.waitUntil(lambda: len(chunks) > 2, timeout=TIMEOUT)
    w.close()
    try:
        assert view._thread is None and not view.running
        assert len(chunks) < 1000 and view.result is None  # stopped, not waited for
    finally:
        close_window(w)


@pytest.mark.slow
def test_closing_during_a_gradient_check_stops_it(qtbot):
    w = new_window(qtbot, settings=RunSettings(preset="lenet"))
    w.inspector.gradcheck.budget = math.inf  # every entry: far longer than closing may take
    with qtbot.waitSignal(w.worker.traced, timeout=TIMEOUT):
        w.worker.step_samples(1)
    qtbot.waitUntil(lambda: w.inspector.gradcheck.button.isEnabled(), timeout=TIMEOUT)
    w.inspector.gradcheck.button.click()
    qtbot.waitUntil(lambda: w.inspector.gradcheck.pool.activeThreadCount() == 1, timeout=TIMEOUT)
    w.close()
    try:
        assert w.inspector.gradcheck.pool.activeThreadCount() == 0
        assert w.inspector.gradcheck.report is None  # stopped, not finished
    finally:
        close_window(w)


@pytest.mark.slow
def test_closing_during_a_download_does_not_wait_for_it(qtbot):
    release = threading.Event()
    started = threading.Event()

    def loader(spec):
        if spec == "mini":
            return load_mini()
        started.set()
        release.wait(60)  # a stalled download
        raise DataError("could not download")

    w = new_window(qtbot, loader=loader)
    try:
        w.reset(RunSettings(dataset="mnist"))
        assert started.wait(10)
        w.close()
        assert w.thread.isFinished() and not release.is_set()
    finally:
        release.set()
        close_window(w)


DRIVER = textwrap.dedent("""
    import sys, time
    work = sys.argv[1]
    import convscope.engine.data.datasets as datasets
    real_load = datasets.load_dataset

    def load(spec, *args, **kwargs):
        if spec == "mnist":
            while True:  # a download that never ends
                time.sleep(0.05)
        return real_load(spec, *args, **kwargs)

    datasets.load_dataset = load
    from PyQt5.QtCore import QTimer
    from convscope.visualizer.app import make_app
    from convscope.visualizer.main_window import MainWindow
    from convscope.visualizer.messages import RunSettings
    app = make_app()

    def busy(*_):
        print("busy", flush=True)

    def start():
        windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]
        if not windows or windows[0].info is None:
            QTimer.singleShot(50, start)
            return
        w = windows[0]
        if work == "train":
            w.worker.progress.connect(busy)
            w.worker.train()
        else:
            w.worker.loading.connect(busy)
            w.reset(RunSettings(dataset="mnist"))

    QTimer.singleShot(50, start)
    import convscope.main
    sys.exit(convscope.main.main([]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("work", ["train", "download"])
def test_ctrl_c_in_the_terminal_closes_the_app_cleanly(tmp_path, work):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CONVSCOPE_SETTINGS=str(
        tmp_path / "settings.ini"), CONVSCOPE_CACHE=str(tmp_path / "cache"),
        XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, work], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "busy", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        code = proc.wait(timeout=20)
        took = time.monotonic() - sent
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(f"Ctrl+C during {work}: exited {code} after {took:.2f} s")
    assert code == 130, err
    assert "QThread" not in err and "Traceback" not in err, err
    assert not os.path.exists(f"/proc/{proc.pid}")  # reaped: no zombie
    settings = (tmp_path / "settings.ini").read_text()
    assert "[hyper]" in settings  # closed like the close button: the settings were saved
