"""Model files in the app: save -> open round trip, resuming, refusing bad files, recent files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtWidgets import QMenu

from convscope.engine.files.checkpoint import save_model
from convscope.engine.net.model import Model, build_config, prepare_input
from convscope.engine.net.train import Trainer
from convscope.visualizer import dialogs
from convscope.visualizer.model_files import LoadedModel, ModelFiles, SavedRun


@pytest.fixture
def data(mini):
    return mini


def make_trainer(data, model=None):
    model = model or Model(build_config("seed"), seed=3)
    return Trainer(model, data.x_train, data.y_train, lr=0.01, batch_size=8, momentum=0.9,
                   seed=3)


def saved_run(trainer) -> SavedRun:
    return SavedRun(trainer.model.copy(), trainer.get_state(),
                    {"dataset": "mini", "class_names": [str(i) for i in range(10)]})


def files_for(tmp_path, settings, run=None):
    """A ModelFiles whose state request answers at once with ``run``, and the list of
    models it opened."""
    files = ModelFiles(None, settings, request_state=lambda callback: callback(run))
    opened = []
    files.opened.connect(opened.append)
    return files, opened


@pytest.mark.slow
def test_save_open_round_trip_predicts_and_resumes_identically(qtbot, tmp_path, settings,
                                                              dialog_errors, data):
    a = make_trainer(data)
    for _ in range(30):
        a.step()
    path = str(tmp_path / "run.npz")
    files, opened = files_for(tmp_path, settings, saved_run(a))
    with qtbot.waitSignal(files.saved):
        assert files.save_to(path)
    assert dialog_errors == [] and os.path.isfile(path)
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []

    assert files.open_path(path)
    loaded: LoadedModel = opened[-1]
    assert loaded.path == path and loaded.extra["dataset"] == "mini"
    assert loaded.run_settings() == {"preset": "seed", "filters": 8, "pool": "max",
                                     "relu": False, "dataset": "mini", "seed": 3,
                                     "convert": "mnist"}
    assert loaded.hyperparameters() == {"lr": 0.01, "batch_size": 8, "momentum": 0.9}
    x = prepare_input(data.x_test[:300])
    np.testing.assert_array_equal(loaded.model.predict_proba(x), a.model.predict_proba(x))

    b = make_trainer(data, loaded.model)
    b.set_state(loaded.trainer_state)
    losses_a = [a.step().loss for _ in range(10)]
    losses_b = [b.step().loss for _ in range(10)]
    assert losses_a == losses_b
    assert settings.recent_files() == [path]


def _valid_arrays(tmp_path) -> dict:
    path = tmp_path / "valid.npz"
    model = Model(build_config("seed"), seed=1)
    save_model(path, model, None, {"dataset": "mini"})
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def _crafted(tmp_path, kind: str) -> str:
    path = str(tmp_path / f"{kind}.npz")
    arrays = _valid_arrays(tmp_path)
    if kind == "pickled":
        arrays["param/dense1.W"] = np.array([{"boom": 1}, None], dtype=object)
        np.savez(path, **arrays)
    elif kind == "wrong_shape":
        arrays["param/dense1.W"] = np.zeros((1352, 9), np.float32)
        np.savez(path, **arrays)
    elif kind == "future":
        arrays["format_version"] = np.array(99, np.int64)
        np.savez(path, **arrays)
    elif kind == "unknown_member":
        arrays["foo"] = np.zeros(3, np.float32)
        np.savez(path, **arrays)
    elif kind == "huge_config":
        info = json.loads(arrays["model"].tobytes())
        info["config"]["layers"][0]["filters"] = 10**6
        arrays["model"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
        np.savez(path, **arrays)
    elif kind == "truncated":
        np.savez(path, **arrays)
        raw = Path(path).read_bytes()
        Path(path).write_bytes(raw[:len(raw) // 2])
    elif kind == "text":
        Path(path).write_text("these are not the weights you are looking for\n")
    return path


@pytest.mark.parametrize("kind,reason", [
    ("pickled", "pickled"), ("wrong_shape", "shape"), ("future", "newer"),
    ("unknown_member", "unknown member 'foo'"), ("huge_config", "filters must be between"),
    ("truncated", "truncated"), ("text", "not a model file")])
@pytest.mark.slow
def test_bad_files_are_refused_and_the_current_model_is_kept(qtbot, tmp_path, settings,
                                                             dialog_errors, kind, reason):
    files, opened = files_for(tmp_path, settings)
    good = str(tmp_path / "good.npz")
    save_model(good, Model(build_config("seed"), seed=5))
    assert files.open_path(good)
    current = opened[-1]
    before = {k: v.copy() for k, v in current.model.params().items()}

    bad = _crafted(tmp_path, kind)
    with qtbot.waitSignal(files.error) as blocker:
        assert not files.open_path(bad)
    assert len(dialog_errors) == 1 and dialog_errors[0] == blocker.args[0]
    assert reason in dialog_errors[0] and "\n" not in dialog_errors[0] and bad in dialog_errors[0]
    assert opened == [current]  # nothing new was handed on
    assert files.current_path == good
    for k, v in current.model.params().items():
        np.testing.assert_array_equal(v, before[k])
    assert settings.recent_files() == [good]


@pytest.mark.slow
def test_failed_save_keeps_the_old_file(qtbot, tmp_path, settings, dialog_errors, data,
                                        monkeypatch):
    path = str(tmp_path / "model.npz")
    files, _ = files_for(tmp_path, settings, saved_run(make_trainer(data)))
    assert files.write(path, saved_run(make_trainer(data))) and dialog_errors == []
    old = Path(path).read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    assert not files.write(path, saved_run(make_trainer(data)))
    assert dialog_errors[0] == f"cannot save {path}: the disk is full"
    assert Path(path).read_bytes() == old
    assert [n for n in os.listdir(tmp_path) if "model" in n] == ["model.npz"]  # no temporary


def test_nothing_to_save_is_reported(qtbot, tmp_path, settings, dialog_errors):
    files, _ = files_for(tmp_path, settings, None)
    files.save_to(str(tmp_path / "x.npz"))
    assert dialog_errors == ["there is no model to save yet"]
    assert not os.path.exists(tmp_path / "x.npz")


@pytest.mark.slow
def test_menu_dialogs_and_recent_files(qtbot, tmp_path, settings, dialog_errors, data, monkeypatch):
    files, opened = files_for(tmp_path, settings, saved_run(make_trainer(data)))
    menu = QMenu()
    actions = files.install_menu(menu)
    target = str(tmp_path / "chosen")
    monkeypatch.setattr(dialogs, "ask_save_path", lambda *a: target)
    actions["save"].trigger()  # no file yet: Save asks where
    assert files.current_path == target + ".npz" and os.path.isfile(target + ".npz")
    monkeypatch.setattr(dialogs, "ask_open_path", lambda *a: None)
    actions["open"].trigger()  # cancelled: nothing happens
    assert opened == [] and dialog_errors == []

    files.recent_menu.aboutToShow.emit()
    recent = [a for a in files.recent_menu.actions() if a.toolTip() == target + ".npz"]
    assert len(recent) == 1
    recent[0].trigger()
    assert len(opened) == 1 and opened[0].path == target + ".npz"


# ---- through the main window and its training worker ----------------------------------------
@pytest.mark.slow
def test_window_saves_while_paused_and_resumes_identically(qtbot, window, run_steps, tmp_path,
                                                          dialog_errors, monkeypatch):
    w, files = window, window.file_actions.model_files
    run_steps(w, 20)
    path = str(tmp_path / "kept.npz")
    monkeypatch.setattr(dialogs, "ask_save_path", lambda *a: path)
    with qtbot.waitSignal(files.saved, timeout=10000):
        files.save_as()
    later = run_steps(w, 10)

    with qtbot.waitSignal(w.run_started, timeout=30000):
        assert files.open_path(path)
    qtbot.waitUntil(lambda: w.latest is not None and w.latest.step == 20, timeout=30000)
    assert w.status.values["step"] == 20 and w.status.values["samples"] == 160
    assert run_steps(w, 10) == later
    assert dialog_errors == [] and w.controls.hyper().momentum == 0.9


@pytest.mark.slow
def test_window_refuses_a_bad_file_and_keeps_training_the_same_model(qtbot, window, run_steps,
                                                                    tmp_path, dialog_errors):
    w, files = window, window.file_actions.model_files
    run_steps(w, 5)
    before = w.latest
    started = []
    w.run_started.connect(started.append)
    for kind in ("pickled", "wrong_shape", "truncated", "text"):
        assert not files.open_path(_crafted(tmp_path, kind))
    assert len(dialog_errors) == 4
    with qtbot.waitSignal(w.worker.snapshot, timeout=10000) as blocker:
        w.worker.probe_test(1)  # any command that sends a fresh snapshot
    now = blocker.args[0]
    assert started == [] and now.step == before.step == 5
    for k, v in before.params.items():
        np.testing.assert_array_equal(now.params[k], v)
