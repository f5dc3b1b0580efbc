"""Commands facing hostile files: save targets that are not regular files or cannot be
written, model files carrying terminal escapes or endless schedules, special files and
oversized pictures as input. Each gets one line on stderr and the right exit status, fast."""
from __future__ import annotations

import errno
import json
import os
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from convscope import cli
from convscope.engine.files import atomic
from convscope.engine.files.checkpoint import load_model, save_model
from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer

QUICK = ["--train-size", "64", "--test-size", "16", "--epochs", "1", "--batch-size", "16"]


def call(capsys, *argv):
    code = cli.run([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, *words) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, lines
    for word in words:
        assert word in lines[0], lines[0]
    assert "\x1b" not in err and "\x07" not in err
    return lines[0]


@pytest.fixture
def epochs_run(monkeypatch):
    """How many epochs the commands trained."""
    count = []
    real = Trainer.run_epoch
    monkeypatch.setattr(Trainer, "run_epoch", lambda self: count.append(1) or real(self))
    return count


# ---- save targets -------------------------------------------------------------------------
def test_an_empty_save_name_is_a_usage_error(capsys, epochs_run):
    code, _, err = call(capsys, "train", *QUICK, "--save", "")
    assert code == 2 and not epochs_run
    one_line(err, "--save needs a file name")


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_special_save_targets_are_refused_before_training(capsys, tmp_path, kind, epochs_run):
    target = {"fifo": tmp_path / "model.npz", "device": "/dev/null", "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    code, _, err = call(capsys, "train", *QUICK, "--save", target)
    assert code == 1 and not epochs_run
    one_line(err, "not a regular file")
    if kind == "fifo":
        assert os.path.exists(target) and not os.path.isfile(target)  # still a FIFO


@pytest.mark.parametrize("code_, words", [(errno.EROFS, "read-only"),
                                          (errno.EACCES, "permission denied")])
def test_an_unwritable_folder_is_found_before_training(capsys, tmp_path, monkeypatch,
                                                       epochs_run, code_, words):
    def refuse(*args, **kwargs):
        raise OSError(code_, os.strerror(code_))
    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    code, _, err = call(capsys, "train", *QUICK, "--save", tmp_path / "m.npz")
    assert code == 1 and not epochs_run
    one_line(err, "cannot save to", words)


def test_a_full_disk_is_found_before_training(capsys, tmp_path, monkeypatch, epochs_run):
    def full(f, **arrays):
        f.write(b"PK")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(np, "savez", full)
    code, _, err = call(capsys, "train", *QUICK, "--save", tmp_path / "m.npz")
    assert code == 1 and not epochs_run
    one_line(err, "the disk is full")
    assert os.listdir(tmp_path) == []  # the trial file is gone too


def test_a_symlink_is_written_through(capsys, tmp_path):
    real, link = tmp_path / "real.npz", tmp_path / "link.npz"
    link.symlink_to(real)
    code, _, err = call(capsys, "train", *QUICK, "--save", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert load_model(real)[0].config["preset"] == "seed"
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real.npz"]


def test_an_interrupted_saves_temporary_file_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "m.npz"
    old = tmp_path / f".m.npz{atomic.MARK}dead1.tmp"
    recent = tmp_path / f".m.npz{atomic.MARK}busy2.tmp"
    other = tmp_path / ".notes.tmp"
    for p in (old, recent, other):
        p.write_bytes(b"partial")
    t = time.time() - 2 * atomic.STALE_SECONDS
    os.utime(old, (t, t))
    os.utime(other, (t, t))
    save_model(path, Model(build_config("seed")))
    assert not old.exists() and recent.exists() and other.exists()


# ---- model files that carry trouble ----------------------------------------------------------
def _saved(tmp_path, change_extra=None, change_meta=None, change_config=None):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (32, 28, 28), np.uint8), rng.integers(0, 10, 32)
    model = Model(build_config("seed"), 0)
    trainer = Trainer(model, images, labels, lr=0.01, batch_size=4)
    trainer.step()
    state = trainer.get_state()
    state["meta"]["lr_schedule"] = {"name": "cosine", "base_lr": 0.01, "start_epoch": 0,
                                    "epochs": 2}
    extra = {"dataset": "mini", "train_size": 32, "class_names": [str(i) for i in range(10)]}
    (change_extra or (lambda e: None))(extra)
    (change_meta or (lambda m: None))(state["meta"])
    if change_config:
        change_config(model.config)
    path = tmp_path / "m.npz"
    save_model(path, model, state, extra)
    return path


def _png(tmp_path, name="digit.png"):
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 12:16] = 255
    Image.fromarray(a).save(tmp_path / name)
    return tmp_path / name


def test_class_names_with_escapes_are_printed_plain(capsys, tmp_path):
    names = [f"\x1b[31mred{i}\x1b]0;title\x07\u3072" for i in range(10)]
    path = _saved(tmp_path, change_extra=lambda e: e.update(class_names=names))
    code, out, err = call(capsys, "predict", "--model", path, _png(tmp_path))
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\u3072" in out  # hiragana kept
    assert "red" in out and "[31m" not in out


@pytest.mark.parametrize("change, words", [
    (lambda m: m["lr_schedule"].update(epochs=10**9), "learning-rate schedule"),
    (lambda m: m.update(batch_size=0), "batch_size"),
    (lambda m: m.update(seed=float("inf")), "seed"),
])
def test_a_resumed_file_is_held_to_the_options_limits(capsys, tmp_path, change, words,
                                                      epochs_run):
    t0 = time.perf_counter()
    code, _, err = call(capsys, "train", "--resume", _saved(tmp_path, change_meta=change))
    assert code == 1 and not epochs_run and time.perf_counter() - t0 < 10
    one_line(err, "m.npz", words)


@pytest.mark.parametrize("name, value, words", [
    ("weight_decay", 1e9, "weight decay"), ("nesterov", "yes", "nesterov"),
    ("augment", ["warp"], "augmentation")])
def test_a_resumed_files_free_form_facts_are_held_to_the_states_checks(
        capsys, tmp_path, name, value, words, epochs_run):
    """A setting missing from the checked state and found only among the file's free-form
    facts passes the same check before anything trains."""
    path = _saved(tmp_path, change_extra=lambda e: e.update({name: value}),
                  change_meta=lambda m: m.pop(name))
    code, _, err = call(capsys, "train", "--resume", path)
    assert code == 1 and not epochs_run
    one_line(err, "m.npz", words)


def test_a_resumed_preset_with_escapes_is_refused(capsys, tmp_path):
    path = _saved(tmp_path, change_config=lambda c: c.update(preset="\x1b[2Jseed"))
    code, _, err = call(capsys, "train", "--resume", path, "--epochs", "1")
    assert code == 1
    one_line(err, "m.npz", "name")


def test_a_config_without_a_preset_name_resumes(capsys, tmp_path):
    path = _saved(tmp_path, change_config=lambda c: c.pop("preset"))
    code, out, err = call(capsys, "train", "--resume", path, "--data", "mini", "--train-size",
                          "32", "--test-size", "0", "--lr-schedule", "constant", "--json")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["preset"] is None


def test_a_resumed_files_own_defects_blame_the_file(capsys, tmp_path):
    """A saved training-set size larger than the dataset: the file is named, exit 1."""
    path = _saved(tmp_path, change_extra=lambda e: e.update(train_size=10**6))
    code, _, err = call(capsys, "train", "--resume", path)
    assert code == 1
    line = one_line(err, "m.npz")
    assert "--train-size" not in line


def test_three_class_names_are_refused(capsys, tmp_path):
    path = _saved(tmp_path, change_extra=lambda e: e.update(class_names=["a", "b", "c"]))
    code, _, err = call(capsys, "predict", "--model", path, _png(tmp_path))
    assert code == 1
    one_line(err, "m.npz", "10 names")


# ---- inputs that are not what they claim ------------------------------------------------------
@pytest.mark.parametrize("which", ["model", "image"])
def test_fifos_as_inputs_do_not_hang(capsys, tmp_path, which):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    model = fifo if which == "model" else _saved(tmp_path)
    image = fifo if which == "image" else _png(tmp_path)
    t0 = time.perf_counter()
    code, _, err = call(capsys, "predict", "--model", model, image)
    assert code == 1 and time.perf_counter() - t0 < 5
    one_line(err, "FIFO")


def test_a_postscript_file_named_png_is_never_opened(capsys, tmp_path):
    fake = tmp_path / "digit.png"
    fake.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    code, _, err = call(capsys, "predict", "--model", _saved(tmp_path), fake)
    assert code == 1
    one_line(err, "digit.png", "not an image file ConvScope reads")


@pytest.mark.slow
def test_a_picture_over_the_pixel_budget_is_refused_before_decoding(capsys, tmp_path):
    big = tmp_path / "big.png"
    Image.new("1", (8000, 6000)).save(big)  # 48 million pixels, a few kilobytes
    assert big.stat().st_size < 2**20
    t0 = time.perf_counter()
    code, _, err = call(capsys, "predict", "--model", _saved(tmp_path), big)
    assert code == 1 and time.perf_counter() - t0 < 5
    one_line(err, "big.png", "8000x6000 pixels")


@pytest.mark.slow
def test_a_large_photo_is_reduced_while_decoded(capsys, tmp_path):
    """A 6000x4000 JPEG (24 million pixels, under the budget) is read at a reduced scale."""
    from convscope.engine.data.preprocess import MAX_SIDE, load_image
    photo = tmp_path / "photo.jpg"
    a = np.full((4000, 6000), 255, np.uint8)
    a[1000:3000, 2800:3200] = 0
    Image.fromarray(a).save(photo, quality=80)
    image = load_image(photo)
    assert max(image.shape) <= MAX_SIDE and image.min() < 0.1
    code, out, err = call(capsys, "predict", "--model", _saved(tmp_path), photo)
    assert code == 0, err


def test_a_truncated_or_swapped_model_gets_one_line(capsys, tmp_path):
    good = _saved(tmp_path)
    swapped = tmp_path / "swapped.npz"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(swapped, "w") as zout:
        for info in zin.infolist():
            name = {"model.npy": "extra.npy", "extra.npy": "model.npy"}.get(info.filename,
                                                                            info.filename)
            zout.writestr(name, zin.read(info))
    code, _, err = call(capsys, "predict", "--model", swapped, _png(tmp_path))
    assert code == 1
    one_line(err, "swapped.npz")
