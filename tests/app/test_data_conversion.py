"""The Data box offers a folder of pictures' conversion (mnist | resize), as the train
command's --convert does: remembered with the dataset, the model's by default, and used by
the worker when it loads the folder."""
from __future__ import annotations

import glyphs
import numpy as np
import pytest

from convscope.engine.data.datasets import load_dataset
from convscope.engine.data.idx import write_idx
from convscope.engine.net.model import Model, build_config
from convscope.visualizer import controls as controls_module
from convscope.visualizer.controls import ControlsPanel
from convscope.visualizer.file_actions import launch_options
from convscope.visualizer.messages import Hyper, RunSettings
from convscope.visualizer.model_files import LoadedModel

TIMEOUT = 60000


@pytest.fixture
def folders(tmp_path):
    pictures = glyphs.write_folder(tmp_path / "shapes", ["circle", "line", "zigzag"], 6)
    idx = tmp_path / "idx"
    idx.mkdir()
    rng = np.random.default_rng(0)
    for stem in ("train", "t10k"):
        labels = np.arange(4, dtype=np.uint8) % 2
        write_idx(idx / f"{stem}-images-idx3-ubyte.gz",
                  np.stack([glyphs.glyph_array(int(c), rng) for c in labels]))
        write_idx(idx / f"{stem}-labels-idx1-ubyte.gz", labels)
    return str(pictures), str(idx)


def _shown(panel) -> bool:
    return panel.convert_combo.isVisibleTo(panel) and panel.convert_label.isVisibleTo(panel)


def test_data_box_offers_the_conversion_for_a_picture_folder(qtbot, widgets, folders,
                                                              monkeypatch):
    pictures, idx = folders
    panel = ControlsPanel(RunSettings(), Hyper())
    widgets.append(panel)
    panel.show()
    assert not _shown(panel)  # the embedded digits need no conversion
    assert panel.settings().convert == "mnist"
    monkeypatch.setattr(controls_module.QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: pictures))
    folder_item = panel.dataset_combo.count() - 1
    panel.dataset_combo.setCurrentIndex(folder_item)
    panel.dataset_combo.activated.emit(folder_item)  # "Folder: ..." chosen: the dialog
    assert panel.settings().dataset == pictures and _shown(panel)
    assert panel.pending_label.text() == "Applies on Reset: data."
    panel.convert_combo.setCurrentIndex(panel.convert_combo.findData("resize"))
    assert panel.settings().convert == "resize"
    assert panel.pending_label.text() == "Applies on Reset: data, picture conversion."
    panel.set_applied(panel.settings(), 15)
    assert panel.pending_label.isHidden()
    panel.show_dataset(idx)  # IDX files are used as they are: nothing to choose
    assert not _shown(panel)
    panel.show_dataset("mini")
    assert not _shown(panel)
    panel.set_settings(RunSettings(dataset=pictures, convert="mnist"))
    assert _shown(panel) and panel.convert_combo.currentData() == "mnist"


def test_the_conversion_is_remembered_and_a_model_brings_its_own(settings, folders):
    pictures, _ = folders
    settings.set_run_settings(dataset=pictures, convert="resize")
    assert launch_options(settings)["settings"] == RunSettings(dataset=pictures,
                                                               convert="resize")
    settings.qs.setValue("run/convert", "sideways")  # never written: the default instead
    assert launch_options(settings)["settings"].convert == "mnist"
    model = Model(build_config("seed", class_names=["a", "b", "c"]), 0)
    for extra, convert in (({"dataset": pictures, "convert": "resize"}, "resize"),
                           ({"dataset": pictures}, "mnist"),
                           ({"dataset": pictures, "convert": 3}, "mnist")):
        loaded = LoadedModel(model, None, extra, "m.npz")
        assert RunSettings(**loaded.run_settings()).convert == convert


@pytest.mark.slow
def test_the_worker_converts_the_folder_as_chosen_and_saves_it(qtbot, make_window, folders,
                                                               tmp_path, monkeypatch):
    pictures, _ = folders
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "cache"))
    window = make_window()
    expected = {c: load_dataset(pictures, cache_dir=tmp_path / "direct", convert=c,
                                progress=False) for c in ("mnist", "resize")}
    assert not np.array_equal(expected["mnist"].x_test, expected["resize"].x_test)
    for convert in ("resize", "mnist"):
        with qtbot.waitSignal(window.run_started, timeout=TIMEOUT):
            window.reset(RunSettings(dataset=pictures, convert=convert))
        info = window.info
        assert info.settings.convert == convert and info.class_names == ["circle", "line",
                                                                         "zigzag"]
        assert np.array_equal(info.x_test, expected[convert].x_test)
        assert window.controls.convert_combo.currentData() == convert
    saved = []
    window.state_ready.connect(saved.append)
    window.worker.save_state()
    qtbot.waitUntil(lambda: bool(saved), timeout=TIMEOUT)
    assert saved[0].extra["convert"] == "mnist" and saved[0].extra["dataset"] == pictures
