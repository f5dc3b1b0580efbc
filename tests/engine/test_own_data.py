"""Datasets of any number of classes: folders of class folders of pictures, EMNIST-style IDX
sets, classes.txt; models sized to the classes and refusing data of other classes."""
from __future__ import annotations

import os
from pathlib import Path

import glyphs
import numpy as np
import pytest
from PIL import Image

from convscope.engine.data import folders
from convscope.engine.data.datasets import load_dataset, load_dir
from convscope.engine.data.idx import DataError, write_idx
from convscope.engine.data.idx_sets import KMNIST_NAMES
from convscope.engine.files.checkpoint import (
    CheckpointError,
    check_classes,
    load_model,
    model_class_names,
    save_model,
)
from convscope.engine.files.limits import MAX_CLASSES
from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer, evaluate


def _train(ds, epochs: int, preset: str = "seed", lr: float = 0.05) -> float:
    """Test accuracy after a short seeded training on ``ds``."""
    model = Model(build_config(preset, class_names=ds.class_names), seed=0)
    trainer = Trainer(model, ds.x_train, ds.y_train, lr=lr, batch_size=16, momentum=0.9)
    for _ in range(epochs):
        trainer.run_epoch()
    return evaluate(model, ds.x_test, ds.y_test)[1]


@pytest.mark.slow
def test_three_class_folder_learns(tmp_path):
    root = glyphs.write_folder(tmp_path / "shapes", ["circle", "line", "zigzag"], 30)
    ds = load_dataset(str(root), cache_dir=tmp_path / "cache", progress=False)
    assert ds.class_names == ["circle", "line", "zigzag"] and ds.skipped == ""
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (28, 28)
    assert len(ds.x_train) + len(ds.x_test) == 90
    assert np.bincount(ds.y_test, minlength=3).tolist() == [5, 5, 5]  # a sixth of each class
    assert _train(ds, 4) > 0.8  # chance is 1/3


@pytest.mark.slow
def test_twenty_six_class_folder_learns_well_above_chance(tmp_path):
    names = glyphs.LETTERS
    root = glyphs.write_folder(tmp_path / "letters", names, 24)
    ds = load_dataset(str(root), cache_dir=tmp_path / "cache", convert="resize",
                      progress=False)
    assert ds.class_names == names and len(ds.x_test) == 26 * 4
    assert _train(ds, 6, preset="deep", lr=0.02) > 0.5  # chance is 1/26


def test_names_in_natural_order_and_train_test_pair(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        glyphs.write_folder(tmp_path / "set" / split, ["c2", "c10", "c1"], n)
    ds = load_dataset(str(tmp_path / "set"), cache_dir=tmp_path / "c", progress=False)
    assert ds.class_names == ["c1", "c2", "c10"]
    assert np.bincount(ds.y_train).tolist() == [3, 3, 3]
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2]


def test_a_light_picture_is_inverted_like_mnist(tmp_path):
    rng = np.random.default_rng(0)
    for name in "ab":
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(2):
            glyphs.glyph("ab".index(name), rng, 60, light=True).save(tmp_path / "d" / name
                                                                       / f"{i}.png")
    for convert in ("mnist", "resize"):
        ds = load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c", convert=convert,
                          progress=False)
        x = np.concatenate([ds.x_train, ds.x_test]).astype(float)
        border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
        assert border.mean() < 40 and x.max() > 200  # dark paper, bright ink


def _fifo_or_skip(path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(path)


def test_bad_files_are_skipped_counted_and_logged(tmp_path):
    root = glyphs.write_folder(tmp_path / "d", ["a", "b", "c"], 4)
    (root / "a" / "notes.txt").write_text("not a picture")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    Image.new("1", (8000, 6000)).save(root / "c" / "huge.png")  # 48 million pixels
    _fifo_or_skip(root / "c" / "pipe.png")
    Image.new("L", (40, 40), 255).save(root / "a" / "blank.png")
    (root / "empty").mkdir()
    ds = load_dataset(str(root), cache_dir=tmp_path / "cache", progress=False)
    assert ds.class_names == ["a", "b", "c"]  # the empty class folder is left out
    assert len(ds.x_train) + len(ds.x_test) == 12
    line = ds.skipped
    assert line.startswith("skipped 6 files (") and "2 unreadable" in line
    assert "1 too large" in line and "1 not a regular file" in line and "1 blank" in line
    assert "1 empty class folder" in line
    log = line.rsplit("see ", 1)[1]
    listed = Path(log).read_text(encoding="utf-8")
    for name in ("notes.txt", "broken.png", "huge.png", "pipe.png", "blank.png", "empty"):
        assert name in listed
    again = load_dataset(str(root), cache_dir=tmp_path / "cache", progress=False)
    assert again.skipped == line  # from the cache: still said


def test_fewer_than_two_classes_is_refused(tmp_path):
    glyphs.write_folder(tmp_path / "one", ["a"], 3)
    with pytest.raises(DataError, match="at least two"):
        load_dataset(str(tmp_path / "one"), cache_dir=tmp_path / "c", progress=False)
    root = glyphs.write_folder(tmp_path / "two", ["a"], 3)
    (root / "b").mkdir()
    (root / "b" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="1 class folder.*at least two classes"):
        load_dataset(str(root), cache_dir=tmp_path / "c", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="one subfolder per class"):
        load_dataset(str(tmp_path / "empty"), cache_dir=tmp_path / "c", progress=False)


def test_too_many_classes_is_refused(tmp_path):
    for i in range(MAX_CLASSES + 1):
        (tmp_path / "d" / f"k{i}").mkdir(parents=True)
    with pytest.raises(DataError, match=f"more than the {MAX_CLASSES}"):
        load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c", progress=False)


def test_cache_is_used_checked_and_renewed(tmp_path, monkeypatch):
    root = glyphs.write_folder(tmp_path / "d", ["a", "b"], 6)
    calls = []
    real = folders.convert_image
    monkeypatch.setattr(folders, "convert_image", lambda p, c: calls.append(p) or real(p, c))
    seen = []
    first = load_dataset(str(root), cache_dir=tmp_path / "c", progress=False,
                         on_progress=lambda done, total: seen.append((done, total)))
    assert len(calls) == 12 and seen[-1] == (12, 12)
    second = load_dataset(str(root), cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 12  # nothing converted again
    assert np.array_equal(first.x_train, second.x_train)
    assert np.array_equal(first.y_test, second.y_test)
    cached = list((tmp_path / "c" / "folders").glob("*.npz"))
    assert len(cached) == 1
    data = bytearray(cached[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached[0].write_bytes(bytes(data))  # damaged: made again, never used
    third = load_dataset(str(root), cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 24 and np.array_equal(third.x_train, first.x_train)
    glyphs.glyph(1, np.random.default_rng(5)).save(root / "a" / "0.png")  # a changed file
    load_dataset(str(root), cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 36
    assert len(list((tmp_path / "c" / "folders").glob("*.npz"))) == 1  # the old one removed


def _emnist_folder(folder, prefix="emnist-letters-", n_train=52, n_test=26):
    """A 26-class IDX set written as EMNIST publishes it: images transposed, labels 1-26."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    sets = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % 26 + 1).astype(np.uint8)
        images = np.stack([glyphs.glyph_array(int(c) - 1, rng) for c in labels])
        write_idx(folder / f"{prefix}{split}-images-idx3-ubyte.gz", images.transpose(0, 2, 1))
        write_idx(folder / f"{prefix}{split}-labels-idx1-ubyte.gz", labels)
        sets[split] = images, labels
    lines = [f"{i + 1} {65 + i} {97 + i}" for i in range(26)]
    (folder / f"{prefix}mapping.txt").write_text("\n".join(lines) + "\n")
    return sets


def test_emnist_letters_set(tmp_path):
    sets = _emnist_folder(tmp_path / "emnist")
    ds = load_dataset(str(tmp_path / "emnist"))
    assert ds.class_names[:3] == ["Aa", "Bb", "Cc"] and len(ds.class_names) == 26
    assert np.array_equal(ds.x_train, sets["train"][0])  # transposed back
    assert np.array_equal(ds.y_train, sets["train"][1] - 1)  # 0-based
    assert np.array_equal(ds.y_test, sets["test"][1] - 1)
    assert not ds.x_train.flags.writeable


def test_emnist_set_detected_by_its_mapping_file_alone(tmp_path):
    sets = _emnist_folder(tmp_path / "letters", prefix="my-")
    ds = load_dir(tmp_path / "letters")
    assert np.array_equal(ds.x_test, sets["test"][0]) and ds.class_names[25] == "Zz"


def test_several_sets_in_one_folder_are_refused(tmp_path):
    _emnist_folder(tmp_path / "e")
    _emnist_folder(tmp_path / "e", prefix="emnist-digits-")
    with pytest.raises(DataError, match="several IDX sets.*emnist-digits, emnist-letters"):
        load_dataset(str(tmp_path / "e"))


def test_a_label_the_mapping_does_not_name_is_refused(tmp_path):
    _emnist_folder(tmp_path / "e")
    lines = [f"{i + 1} {65 + i}" for i in range(25)]
    (tmp_path / "e" / "emnist-letters-mapping.txt").write_text("\n".join(lines))
    with pytest.raises(DataError, match="names no class for label 26"):
        load_dataset(str(tmp_path / "e"))


def _plain_idx(folder, labels_train, labels_test):
    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, labels in (("train", labels_train), ("t10k", labels_test)):
        labels = np.asarray(labels, np.uint8)
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz",
                  np.stack([glyphs.glyph_array(int(c) % 62, rng) for c in labels]))
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", labels)
    return folder


def test_classes_txt_names_an_idx_folder(tmp_path):
    folder = _plain_idx(tmp_path / "shapes", [0, 1, 2, 1], [2, 0])
    (folder / "classes.txt").write_text("circle\nline\nzigzag\n")
    ds = load_dataset(str(folder))
    assert ds.class_names == ["circle", "line", "zigzag"]
    assert ds.y_train.tolist() == [0, 1, 2, 1]
    (folder / "classes.txt").write_text("circle\nline\n")
    with pytest.raises(DataError, match="names no class for label 2"):
        load_dataset(str(folder))


def test_other_label_ranges_are_named_by_their_numbers(tmp_path):
    ds = load_dataset(str(_plain_idx(tmp_path / "a", range(1, 27), [26, 1])))
    assert ds.class_names == [str(i) for i in range(1, 27)]
    assert ds.y_test.tolist() == [25, 0]
    ds = load_dataset(str(_plain_idx(tmp_path / "b", range(0, 62), [61])))
    assert len(ds.class_names) == 62 and ds.y_test.tolist() == [61]


def test_kmnist_folder_shows_its_class_names(tmp_path):
    ds = load_dataset(str(_plain_idx(tmp_path / "kmnist", range(10), [3])))
    assert ds.class_names == KMNIST_NAMES and ds.class_names[0].startswith("お")


def test_idx_files_win_over_class_folders(tmp_path):
    folder = _plain_idx(tmp_path / "both", range(10), [3])
    glyphs.write_folder(folder, ["x", "y"], 2)
    assert len(load_dataset(str(folder)).class_names) == 10


def test_model_sized_to_the_classes_and_its_file_keeps_them(tmp_path):
    names = glyphs.LETTERS
    model = Model(build_config("deep", class_names=names), seed=0)
    assert model.classes == 26 and model.params()["dense1.W"].shape[1] == 26
    assert model.predict_proba(np.zeros((3, 28, 28), np.float32)).shape == (3, 26)
    save_model(tmp_path / "m.npz", model, extra={"class_names": names})
    loaded, _, extra = load_model(tmp_path / "m.npz")
    assert model_class_names(loaded, extra) == names and loaded.classes == 26
    check_classes(names, list(names), "m.npz")
    with pytest.raises(CheckpointError, match=r"^m.npz: the model tells apart 26 classes "
                                              r"\(A, B, C, D, E, F, \.\.\.\), the data has 10"):
        check_classes(names, [str(i) for i in range(10)], "m.npz")


def test_old_model_files_are_digits_and_bad_names_are_refused(tmp_path):
    config = build_config("seed")
    old = {k: v for k, v in config.items() if k not in ("classes", "class_names")}
    model = Model(old, seed=0)
    assert model.classes == 10 and model.class_names == [str(i) for i in range(10)]
    with pytest.raises(ValueError, match="not all different"):
        build_config("seed", class_names=["a", "a"])
    with pytest.raises(ValueError, match="2 to 64"):
        build_config("seed", class_names=["a"])
    with pytest.raises(ValueError, match="not short printable text"):
        build_config("seed", class_names=["a", "b\x1b[2J"])
    bad = dict(config, classes=26)
    with pytest.raises(ValueError, match="must end with 26 outputs"):
        Model(bad)


@pytest.mark.parametrize("preset", ["seed", "deep", "lenet"])
def test_fast_passes_equal_the_layers_with_26_classes(preset):
    """The speed paths (engine/fast) sized to the classes: the same losses, probabilities
    and gradients as the plain layers, in float64."""
    config = build_config(preset, filters=4, class_names=glyphs.LETTERS)
    fast = Model(config, seed=3, dtype=np.float64)
    plain = fast.copy(fast=False)
    rng = np.random.default_rng(4)
    x = rng.uniform(-0.5, 0.5, (7, 28, 28))
    y = rng.integers(0, 26, 7)
    lf, pf = fast.loss_and_grads(x, y)
    lp, pp = plain.loss_and_grads(x, y)
    assert pf.shape == (7, 26)
    np.testing.assert_allclose(lf, lp, rtol=0, atol=1e-10)
    np.testing.assert_allclose(pf, pp, rtol=0, atol=1e-10)
    for key, g in plain.grads().items():
        np.testing.assert_allclose(fast.grads()[key], g, rtol=0, atol=1e-10, err_msg=key)
    np.testing.assert_allclose(fast.predict_proba(x), pp, rtol=0, atol=1e-10)
