"""Settings persist between launches; corrupt values fall back to defaults."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PyQt5.QtCore import QByteArray, QSettings
from PyQt5.QtWidgets import QDockWidget, QLabel, QMainWindow

from convscope.visualizer.settings import HYPER, RECENT_MAX, RUN, Settings


def settings_at(path) -> Settings:
    return Settings(QSettings(str(path), QSettings.IniFormat))


@pytest.mark.slow
def test_values_survive_a_restart(tmp_path):
    s = settings_at(tmp_path / "s.ini")
    s.set_run_settings(preset="deep", filters=12, pool="avg", relu=None, dataset="fashion",
                       seed=42, convert="resize")
    s.set_hyperparameters(lr=0.25, batch_size=32, momentum=0.9)
    s.set_theme("dark")
    s.sync()
    again = settings_at(tmp_path / "s.ini")
    assert again.run_settings() == {"preset": "deep", "filters": 12, "pool": "avg",
                                    "relu": None, "dataset": "fashion", "seed": 42,
                                    "convert": "resize"}
    assert again.hyperparameters() == {"lr": 0.25, "batch_size": 32, "momentum": 0.9}
    assert again.theme() == "dark"


def test_defaults_when_empty(tmp_path):
    s = settings_at(tmp_path / "none.ini")
    assert s.run_settings() == {k: v[1] for k, v in RUN.items()}
    assert s.hyperparameters() == {"lr": 0.005, "batch_size": 1, "momentum": 0.0}
    assert s.theme() == "system" and s.recent_files() == []


def test_corrupt_values_fall_back_to_defaults(qtbot, tmp_path):
    path = tmp_path / "bad.ini"
    path.write_text("[hyper]\nlr=banana\nbatch_size=-4\nmomentum=1.5\n"
                    "[run]\npreset=resnet\nfilters=1000\npool=max\nseed=7.5\nrelu=maybe\n"
                    "[view]\ntheme=purple\n[files]\nrecent=42\n"
                    "[window]\ngeometry=not bytes\nstate=@ByteArray(\\0\\x1garbage)\n")
    s = settings_at(path)
    assert s.hyperparameters() == {k: v[1] for k, v in HYPER.items()}
    assert s.run_settings() == {k: v[1] for k, v in RUN.items()}  # pool=max is the default
    assert s.theme() == "system" and s.recent_files() == []
    window = QMainWindow()
    qtbot.addWidget(window)
    window.resize(640, 480)
    assert not s.restore_window(window)
    assert (window.width(), window.height()) == (640, 480)


def test_unreadable_settings_file_gives_defaults(tmp_path):
    path = tmp_path / "binary.ini"
    path.write_bytes(bytes(range(256)) * 20)
    s = settings_at(path)
    assert s.hyperparameters() == {k: v[1] for k, v in HYPER.items()}
    assert s.theme() == "system"


def test_nan_and_inf_learning_rates_are_refused(tmp_path):
    s = settings_at(tmp_path / "s.ini")
    for bad in ("nan", "inf", "0", "-1"):
        s.qs.setValue("hyper/lr", bad)
        assert s.hyperparameters()["lr"] == 0.005


def test_window_layout_round_trip(qtbot, tmp_path):
    s = settings_at(tmp_path / "w.ini")
    window = QMainWindow()
    qtbot.addWidget(window)
    window.setCentralWidget(QLabel("centre"))
    dock = QDockWidget("panel")
    dock.setObjectName("panel")
    window.addDockWidget(1, dock)  # left
    window.resize(900, 650)
    window.show()
    dock.hide()
    s.save_window(window)
    s.sync()
    other = QMainWindow()
    qtbot.addWidget(other)
    other.setCentralWidget(QLabel("centre"))
    dock2 = QDockWidget("panel")
    dock2.setObjectName("panel")
    other.addDockWidget(1, dock2)
    assert settings_at(tmp_path / "w.ini").restore_window(other)
    other.show()
    assert (other.width(), other.height()) == (900, 650)
    assert dock2.isHidden()
    assert isinstance(s.qs.value("window/state"), QByteArray)


def test_recent_files_are_deduplicated_bounded_and_existing(tmp_path):
    s = settings_at(tmp_path / "r.ini")
    paths = []
    for i in range(RECENT_MAX + 3):
        p = tmp_path / f"m{i}.npz"
        p.write_bytes(b"x")
        paths.append(str(p))
        s.add_recent_file(str(p))
    s.add_recent_file(paths[-2])
    recent = s.recent_files()
    assert len(recent) == RECENT_MAX and recent[0] == paths[-2] and recent[1] == paths[-1]
    (tmp_path / "m10.npz").unlink()
    assert paths[-1] not in s.recent_files()
    assert s.last_dir() == str(tmp_path)


@pytest.mark.slow
def test_the_app_comes_back_as_it_was_left(qtbot, tmp_path, monkeypatch):
    from PyQt5.QtCore import QCoreApplication, QEvent

    from convscope.visualizer.file_actions import launch_options, persist
    from convscope.visualizer.main_window import MainWindow

    def launch():
        s = settings_at(tmp_path / "app.ini")
        w = MainWindow(**launch_options(s))
        persist(w, s)
        w.show()
        qtbot.waitUntil(lambda: w.info is not None, timeout=30000)
        return w

    def close(w):
        w.close()
        w.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
        gc.collect()

    from convscope.engine.data.datasets import load_mini
    from convscope.engine.data.idx import write_idx

    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(tmp_path / "app.ini"))  # File menu's too
    folder = tmp_path / "digits"  # a dataset of its own, to come back to
    folder.mkdir()
    mini = load_mini()
    for name, array in (("train-images-idx3-ubyte", mini.x_train[:300]),
                        ("train-labels-idx1-ubyte", mini.y_train[:300]),
                        ("t10k-images-idx3-ubyte", mini.x_test[:50]),
                        ("t10k-labels-idx1-ubyte", mini.y_test[:50])):
        write_idx(folder / name, np.ascontiguousarray(array))
    first = launch()
    first.set_theme("dark")
    first.controls.lr_spin.setValue(0.05)
    first.controls.seed_spin.setValue(11)
    first.controls._select_dataset(str(folder))
    first.controls.reset_button.click()
    qtbot.waitUntil(lambda: first.info is not None and first.info.n_train == 300,
                    timeout=30000)
    model = tmp_path / "kept.npz"
    assert first.file_actions.model_files.save_to(str(model))
    qtbot.waitUntil(model.exists, timeout=30000)
    first.resize(1100, 700)
    qtbot.wait(50)  # let the first layout settle, then change it
    first.docks["Filters"].hide()
    close(first)

    again = launch()
    try:
        assert again.theme_choice == "dark"
        assert again.controls.hyper().lr == 0.05 and again.controls.settings().seed == 11
        assert again.controls.settings().dataset == str(folder)
        assert again.info.n_train == 300  # trains on that dataset again
        assert settings_at(tmp_path / "app.ini").recent_files()[0] == str(model)
        assert (again.width(), again.height()) == (1100, 700)
        qtbot.waitUntil(lambda: again.docks["Filters"].isHidden(), timeout=5000)
        assert again.docks["Loss"].isVisible()
    finally:
        close(again)


# ---- a settings file that is hostile -----------------------------------------------------------
BOMB = "@Variant(\\0\\0\\0\\t\\0\\x7f\\xff\\xff\\xff)"  # a list claiming 2^31-1 items


def test_values_qt_would_deserialize_are_removed_before_qt_reads_the_file(tmp_path, monkeypatch,
                                                                          capsys):
    path = tmp_path / "s.ini"
    path.write_text(f"[run]\npreset={BOMB}\nseed=7\n[hyper]\nlr=@Rect(0 0 1 1)\n"
                    f"[files]\nrecent={BOMB}\nlast_dir=@@odd\n[window]\n"
                    f"geometry=@ByteArray(\\x1\\x2)\n")
    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(path))
    s = Settings()
    assert "values of a kind ConvScope never writes were removed" in capsys.readouterr().err
    text = path.read_text()
    assert "@Variant" not in text and "@Rect" not in text
    assert "seed=7" in text and "@ByteArray(" in text and "@@odd" in text  # the rest is kept
    assert s.run_settings()["preset"] == "seed" and s.run_settings()["seed"] == 7
    assert s.hyperparameters()["lr"] == HYPER["lr"][1]
    assert s.recent_files() == []


def test_a_one_item_recent_list_is_written_as_plain_text(tmp_path, monkeypatch):
    path = tmp_path / "s.ini"
    model = tmp_path / "m.npz"
    model.write_bytes(b"x")
    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(path))
    s = Settings()
    s.add_recent_file(str(model))
    s.sync()
    assert "@" not in path.read_text()
    assert Settings().recent_files() == [str(model)]
    s.clear_recent_files()
    s.sync()
    assert "@" not in path.read_text() and Settings().recent_files() == []


def test_a_settings_path_that_is_not_a_regular_file_is_ignored(tmp_path, monkeypatch, capsys):
    fifo = tmp_path / "fifo.ini"
    os.mkfifo(fifo)
    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(fifo))
    t0 = time.perf_counter()
    s = Settings()
    s.set_theme("dark")
    s.sync()
    assert time.perf_counter() - t0 < 2 and s.theme() == "dark"  # kept while the app runs
    assert "is a FIFO, not a settings file" in capsys.readouterr().err
    assert not os.path.isfile(fifo)  # still the FIFO, nothing written into it
    big = tmp_path / "big.ini"
    big.write_text("[run]\n" + "x=1\n" * 400_000)
    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(big))
    assert Settings().run_settings()["seed"] == 0
    assert "more than a settings file may have" in capsys.readouterr().err


@pytest.mark.slow
def test_a_crafted_settings_file_does_not_abort_the_app(tmp_path):
    """The whole app started on a file full of @Variant values: it starts and closes."""
    path = tmp_path / "s.ini"
    keys = ["run/preset", "run/seed", "files/recent", "window/state", "view/theme"]
    path.write_text("".join(f"[{k.split('/')[0]}]\n{k.split('/')[1]}={BOMB}\n" for k in keys))
    code = ("from convscope.visualizer.app import make_app\n"
            "from convscope.visualizer.settings import Settings\n"
            "app = make_app()\ns = Settings()\nprint(s.run_settings(), s.theme())\n"
            "s.set_theme('dark')\ns.sync()\n")
    env = dict(os.environ, CONVSCOPE_SETTINGS=str(path), QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "'preset': 'seed'" in result.stdout and "system" in result.stdout
    assert "@Variant" not in path.read_text()
