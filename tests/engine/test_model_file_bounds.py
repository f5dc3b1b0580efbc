"""Model files are bounded before anything is decompressed or built: size bombs in members,
networks too costly to run, special files."""
from __future__ import annotations

import io
import json
import os
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

from convscope.engine.files.checkpoint import CheckpointError, load_model, save_model
from convscope.engine.files.limits import MAX_FILTERS, MAX_MULTIPLY_ADDS, config_shapes
from convscope.engine.net.model import PRESETS, Model, build_config
from convscope.engine.net.train import Trainer


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (16, 28, 28), np.uint8), rng.integers(0, 10, 16)
    model = Model(build_config("seed"), seed=1)
    trainer = Trainer(model, images, labels, lr=0.01, batch_size=4, momentum=0.9, seed=3)
    trainer.step()
    path = tmp_path / "model.npz"
    save_model(path, model, trainer.get_state(), {"dataset": "test"})
    return path


def _copy_with(src, dst, name, write, compress=zipfile.ZIP_DEFLATED, drop=()):
    """``src`` with member ``name`` (without .npy) written by ``write(file)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename[:-4] != name and info.filename[:-4] not in drop:
                zout.writestr(info, zin.read(info))
        info = zipfile.ZipInfo(name + ".npy")
        info.compress_type = compress
        with zout.open(info, "w", force_zip64=True) as f:
            write(f)
    return dst


def _npy_header(shape, dtype="<f4") -> bytes:
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


def _zeros_writer(header: bytes, size: int):
    def write(f):
        f.write(header)
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    return write


def _refused_cheaply(path, *words, max_mb=32, max_s=5.0):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(CheckpointError) as info:
            load_model(path)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message and os.path.basename(str(path)) in message
    for word in words:
        assert word in message, message
    assert peak < max_mb * 2**20, f"{peak / 2**20:.0f} MB to refuse {path}"
    assert seconds < max_s
    return message


@pytest.mark.slow
@pytest.mark.parametrize("name", ["state/meta", "notes", "param/conv1.W"])
def test_a_compressed_size_bomb_is_refused_unread(saved, tmp_path, name):
    """64 MB of zeros in a file of about 70 KB: refused from the zip header's size."""
    bomb = _copy_with(saved, tmp_path / "bomb.npz", name,
                      _zeros_writer(_npy_header((1 << 26,), "|u1"), 1 << 26))
    assert os.path.getsize(bomb) < 2**20
    _refused_cheaply(bomb, repr(name) if name == "notes" else name)


@pytest.mark.slow
def test_a_member_whose_npy_header_lies_is_refused(saved, tmp_path):
    """A small member whose .npy header claims 2^40 floats, and one whose zip size lies."""
    huge = _copy_with(saved, tmp_path / "huge.npz", "param/conv1.W",
                      lambda f: f.write(_npy_header((1 << 40,)) + bytes(64)))
    _refused_cheaply(huge, "param/conv1.W", "more than")
    short = _copy_with(saved, tmp_path / "short.npz", "param/conv1.W",
                       lambda f: f.write(_npy_header((3, 3, 1, 8)) + bytes(64)))
    _refused_cheaply(short, "param/conv1.W", "does not match")


@pytest.mark.slow
def test_many_members_are_refused_before_the_directory_is_read(saved, tmp_path):
    bad = tmp_path / "many.npz"
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        for i in range(2000):
            zout.writestr(f"param/x{i}.npy", b"")
    _refused_cheaply(bad, "2,0", "members")


@pytest.mark.slow
def test_a_member_twice_is_refused(saved, tmp_path):
    bad = tmp_path / "twice.npz"
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(bad, "w") as zout:
        members = [(info.filename, zin.read(info)) for info in zin.infolist()]
        for name, data in members + [m for m in members if m[0] == "extra.npy"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
                zout.writestr(name, data)
    _refused_cheaply(bad, "'extra' appears twice")


def _config_file(tmp_path, config) -> str:
    """A model file whose config is ``config`` and whose weights are tiny placeholders."""
    path = tmp_path / "config.npz"
    info = {"config": config, "seed": 0, "dtype": "float32"}
    np.savez(path, format_version=np.array(1),
             model=np.frombuffer(json.dumps(info).encode(), np.uint8),
             **{"param/conv1.W": np.zeros(1, np.float32)})
    return str(path)


@pytest.mark.slow
def test_a_network_too_costly_to_run_is_refused_before_building(tmp_path, monkeypatch):
    """19 conv layers of 64 7x7 filters with padding 6: under the weight limit (3.9 million),
    but billions of multiply-adds per image."""
    monkeypatch.setattr("convscope.engine.files.checkpoint.Model", None)  # never built
    layers = ([{"type": "conv", "filters": 64, "k": 7, "pad": 6}] * 19
              + [{"type": "pool", "size": 7, "stride": 7}, {"type": "flatten"},
                 {"type": "dense", "units": 10}])
    _refused_cheaply(_config_file(tmp_path, {"preset": "seed", "layers": layers}),
                     "multiply-adds")
    # cheap in multiply-adds (7 million) but 0.9 million values per image: copies of a
    # 34x34x128 map through pools of size 1
    wide = ([{"type": "conv", "filters": 128, "k": 7, "pad": 6}]
            + [{"type": "pool", "size": 1, "stride": 1}] * 6
            + [{"type": "pool", "size": 7, "stride": 7}, {"type": "flatten"},
               {"type": "dense", "units": 10}])
    _refused_cheaply(_config_file(tmp_path, {"preset": "seed", "layers": wide}),
                     "activation values")


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_at_its_most_filters_is_within_the_limits(preset):
    assert config_shapes(build_config(preset, MAX_FILTERS))


def test_the_cost_limit_is_the_multiply_adds_of_one_image():
    """A config just over the multiply-add limit is refused, one just under accepted."""
    def config(filters):
        return {"layers": [{"type": "conv", "filters": filters, "k": 7, "pad": 3},
                           {"type": "pool", "size": 7, "stride": 7}, {"type": "flatten"},
                           {"type": "dense", "units": 10}]}
    per_filter = 28 * 28 * 49  # multiply-adds of one 7x7 filter over a padded 28x28 image
    assert per_filter * 128 < MAX_MULTIPLY_ADDS  # one conv layer alone stays cheap
    deep = {"layers": [{"type": "conv", "filters": 128, "k": 7, "pad": 3}] * 3
            + config(10)["layers"][1:]}
    with pytest.raises(ValueError, match="multiply-adds"):
        config_shapes(deep)
    assert config_shapes(config(128))


@pytest.mark.slow
@pytest.mark.parametrize("make", ["fifo", "folder", "device"])
def test_special_files_are_refused_without_blocking(tmp_path, make):
    path = {"fifo": tmp_path / "model.npz", "folder": tmp_path, "device": "/dev/zero"}[make]
    if make == "fifo":
        os.mkfifo(path)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="folder|FIFO|device"):
        load_model(path)
    assert time.perf_counter() - t0 < 2


@pytest.mark.slow
def test_a_symlink_to_a_model_file_is_followed(saved, tmp_path):
    link = tmp_path / "link.npz"
    link.symlink_to(saved)
    assert load_model(link)[0].config == load_model(saved)[0].config


@pytest.mark.slow
def test_bad_seeds_nesting_and_names_get_one_line(saved, tmp_path):
    def model_json(info):
        return _copy_with(saved, tmp_path / "m.npz", "model",
                          lambda f: np.lib.format.write_array(
                              f, np.frombuffer(info.encode(), np.uint8)),
                          compress=zipfile.ZIP_STORED)
    with zipfile.ZipFile(saved) as z:
        info = json.loads(np.lib.format.read_array(z.open("model.npy")).tobytes())
    for change, word in ((lambda i: i.update(seed=float("inf")), "seed"),
                         (lambda i: i["config"].update(preset="\x1b]0;x\x07seed"), "name")):
        bad = json.loads(json.dumps(info))
        change(bad)
        _refused_cheaply(model_json(json.dumps(bad)), word)
    _refused_cheaply(model_json("[" * 30_000 + "]" * 30_000), "nested too deeply")
