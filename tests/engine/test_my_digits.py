"""The learner's own digits: kept as class folders of 28x28 PNGs, read within bounds, split
the same way as the set grows, and fine-tuning on them teaches the network what they show."""
import os

import numpy as np
import pytest
from PIL import Image

from convscope.engine.data.datasets import load_mini
from convscope.engine.data.my_digits import (
    MyDigits,
    check_class_name,
    held_back,
    mixed,
    read_digit,
)
from convscope.engine.net.model import Model
from convscope.engine.net.train import Trainer, evaluate
from convscope.engine.presets import build_config
from convscope.engine.tools.fine_tune import fine_tune


def _digit(value: int) -> np.ndarray:
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = value
    return img


def test_added_digits_come_back_as_they_were_and_survive_a_new_store(tmp_path):
    store = MyDigits(tmp_path / "mine")
    a = store.add(_digit(200), "7")
    store.add(_digit(150), "1")
    assert a.parent.name == "7" and a.suffix == ".png"
    again = MyDigits(tmp_path / "mine").load()  # as after a restart
    assert sorted(again.labels) == ["1", "7"]
    assert again.images.dtype == np.uint8 and again.images.shape == (2, 28, 28)
    seven = again.images[again.labels.index("7")]
    assert np.array_equal(seven, _digit(200))
    assert MyDigits(tmp_path / "mine").load("1").labels == ["1"]


def test_relabel_moves_and_delete_removes_only_own_files(tmp_path):
    store = MyDigits(tmp_path / "mine")
    path = store.add(_digit(255), "1")
    moved = store.relabel(path, "4")
    assert moved.parent.name == "4" and not path.exists()
    assert store.load().labels == ["4"]
    outside = tmp_path / "other.png"
    Image.fromarray(_digit(9)).save(outside)
    with pytest.raises(ValueError, match="not one of the digits"):
        store.delete(outside)
    store.delete(moved)
    assert store.count() == 0 and outside.exists()


def test_bad_class_names_and_shapes_are_refused(tmp_path):
    store = MyDigits(tmp_path / "mine")
    for bad in ("", "..", "a/b", "x" * 41, "tab\there"):
        with pytest.raises(ValueError):
            check_class_name(bad)
    with pytest.raises(ValueError, match="28x28"):
        store.add(np.zeros((20, 20), np.uint8), "3")


def test_unreadable_and_hostile_files_are_skipped_and_counted(tmp_path):
    store = MyDigits(tmp_path / "mine")
    store.add(_digit(100), "2")
    folder = tmp_path / "mine" / "2"
    (folder / "junk.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(folder / "big.png")
    (folder / "huge.png").write_bytes(b"\x89PNG" + b"0" * 70_000)
    os.mkfifo(folder / "pipe.png")
    loaded = store.load()
    assert loaded.labels == ["2"] and loaded.skipped == 4
    assert read_digit(folder / "pipe.png") is None


def test_the_held_back_split_is_stable_as_the_set_grows(tmp_path):
    store = MyDigits(tmp_path / "mine")
    rng = np.random.default_rng(0)
    for i in range(40):
        store.add(rng.integers(0, 256, (28, 28), dtype=np.uint8), str(i % 4))
    first = store.load()
    kept = {p.name for p, h in zip(first.paths, first.held_back, strict=True) if h}
    assert 0 < len(kept) < 40 // 2
    for i in range(20):
        store.add(rng.integers(0, 256, (28, 28), dtype=np.uint8), str(i % 4))
    later = store.load()
    still = {p.name for p, h in zip(later.paths, later.held_back, strict=True) if h}
    assert kept <= still  # a digit held back once stays held back
    for name in "0123":  # every class of two or more digits has one for testing
        assert any(h for lab, h in zip(later.labels, later.held_back, strict=True) if lab == name)


def test_a_class_of_one_digit_trains_on_it():
    from pathlib import Path
    mask = held_back([Path("a.png"), Path("b.png"), Path("c.png")], ["x", "y", "y"])
    assert not mask[0] and mask[1]  # the lone x trains; y's first file is held back


def test_export_and_import_round_trip_and_import_converts_other_pictures(tmp_path):
    store = MyDigits(tmp_path / "mine")
    store.add(_digit(180), "5")
    store.add(_digit(90), "6")
    assert store.export(tmp_path / "out") == 2
    photo = np.full((90, 60), 255, np.uint8)  # dark ink on white paper, any size
    photo[20:70, 25:35] = 0
    Image.fromarray(photo).save(tmp_path / "out" / "6" / "photo.jpg")
    (tmp_path / "out" / "6" / "notes.txt").write_text("no picture")
    other = MyDigits(tmp_path / "theirs")
    assert other.import_folder(tmp_path / "out") == (3, 1)
    got = other.load()
    assert sorted(got.labels) == ["5", "6", "6"]
    converted = [img for img in got.images if not any(np.array_equal(img, _digit(v))
                                                      for v in (180, 90))]
    assert len(converted) == 1 and converted[0].max() > 200  # ink made bright, MNIST-style


def test_a_mixed_epoch_holds_every_own_digit_once_at_the_asked_share():
    rng = np.random.default_rng(1)
    x_data = np.zeros((1000, 28, 28), np.uint8)
    y_data = np.zeros(1000, np.intp)
    x_own = np.full((30, 28, 28), 7, np.uint8)
    y_own = np.full(30, 3)
    x, y = mixed(x_data, y_data, x_own, y_own, 0.25, rng)
    assert len(x) == 120 and (x[:, 0, 0] == 7).sum() == 30 and (y == 3).sum() == 30
    x, _ = mixed(x_data, y_data, x_own, y_own, 1.0, rng)
    assert len(x) == 30
    with pytest.raises(ValueError):
        mixed(x_data, y_data, x_own, y_own, 0.0, rng)


@pytest.mark.slow
def test_fine_tuning_on_own_digits_teaches_them_and_the_run_goes_on(tmp_path):
    data = load_mini()
    x, y = data.x_train[:2000], data.y_train[:2000]
    trainer = Trainer(Model(build_config("seed"), seed=0), x, y, data.x_test[:500],
                      data.y_test[:500], lr=0.01, batch_size=8, momentum=0.9, seed=0)
    trainer.fit(1)
    # the learner writes digits mirrored: a style the dataset never shows
    store = MyDigits(tmp_path / "mine")
    for img, label in zip(data.x_train[2000:2300], data.y_train[2000:2300], strict=True):
        store.add(img[:, ::-1], str(int(label)))
    own = store.load()
    order, cursor, steps = trainer.order, trainer.cursor, trainer.step_count
    epoch, samples, ends = trainer.epoch, trainer.samples_seen, []
    trainer.on_epoch_end = ends.append
    report = fine_tune(trainer, own, [str(i) for i in range(10)], own_share=0.5, epochs=4)
    assert report.epochs == 4 and report.steps == trainer.step_count - steps > 0
    assert report.n_held + report.n_train == 300 and report.skipped == 0
    assert report.held_after > report.held_before + 0.15
    assert report.test_after > 0.7  # the dataset's digits are not forgotten
    assert trainer.order is order and trainer.cursor == cursor and len(trainer.x_train) == 2000
    # its epochs are not the run's: no epoch report, the count stays; its samples count
    assert trainer.epoch == epoch and ends == [] and trainer.on_epoch_end is not None
    assert trainer.samples_seen > samples and report.samples_before == samples
    trainer.step()  # the run goes on with its own data
    assert evaluate(trainer.model, data.x_test[:500], data.y_test[:500])[1] > 0.7
