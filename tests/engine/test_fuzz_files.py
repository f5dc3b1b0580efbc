"""Seeded fuzzing of a valid model file and a valid IDX folder: truncations, bit flips, member
swaps, header edits. Every case either loads correctly or fails with one line naming the
file, quickly and within a memory bound, never hanging."""
from __future__ import annotations

import gzip
import io
import json
import shutil
import signal
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from convscope.engine.data.datasets import load_dir
from convscope.engine.data.idx import DataError, idx_bytes, write_idx
from convscope.engine.files.checkpoint import CheckpointError, load_model, save_model
from convscope.engine.files.limits import config_shapes
from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer

MODEL_CASES = 300
IDX_CASES = 200
CASE_SECONDS = 5  # one case may take this long before it counts as a hang
CASE_MB = 96  # and allocate at most this much while it is refused or loaded

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM")


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def _checked(load, path: Path, error, check_result) -> str:
    """Run ``load(path)`` under a time and memory bound; "ok" or "refused"."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        try:
            result = load(path)
            outcome = "ok"
        except error as e:
            message, outcome = str(e), "refused"
        peak = tracemalloc.get_traced_memory()[1]
    except Hang:
        pytest.fail(f"{path.name}: no answer within {CASE_SECONDS} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        tracemalloc.stop()
    assert peak < CASE_MB * 2**20, f"{path.name}: {peak / 2**20:.0f} MB"
    assert time.perf_counter() - t0 < CASE_SECONDS
    if outcome == "ok":
        check_result(result)
    else:
        assert "\n" not in message and str(path.parent.name) in message or \
            path.name in message, message
    return outcome


# ---- model files ---------------------------------------------------------------------------
def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def _zip(members: list[tuple[str, bytes]], deflate: bool) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicated name
        for name, data in members:
            z.writestr(name, data)
    return out.getvalue()


def _flip(rng, data: bytes, count: int) -> bytes:
    data = bytearray(data)
    for _ in range(count):
        if data:
            i = int(rng.integers(len(data)))
            data[i] ^= 1 << int(rng.integers(8))
    return bytes(data)


def _edit_npy_header(rng, data: bytes) -> bytes:
    """A number in the .npy header (shape or descr) replaced by a random or huge one."""
    end = data.find(b"\n", 10)
    header = data[:end].decode("latin-1")
    digits = [i for i, ch in enumerate(header) if ch.isdigit() and i > 10]
    if not digits:
        return data
    i = digits[int(rng.integers(len(digits)))]
    new = str(rng.choice([0, 1, 2**31, 2**62, int(rng.integers(1, 10**6))]))
    return (header[:i] + new + header[i + 1:]).encode("latin-1") + data[end:]


def _edit_json(rng, data: bytes) -> bytes:
    """A value inside a JSON member (npy of uint8) replaced by something else."""
    header_end = data.find(b"\n", 10) + 1
    text = data[header_end:].decode("utf-8", errors="replace")
    swaps = ['"layers": 7', '"filters": 100000', '"k": 99', '"epochs": 1000000000',
             '"batch_size": 0', '"seed": 1e999', '"class_names": ["a"]', '"preset": "\\u001b[2J"',
             '"type": "dropout"', '"rng": {}', '"lr": -1', '"cursor": 99999999']
    key = rng.choice(swaps).split(":")[0]
    if key in text:
        i = text.index(key)
        j = text.find(",", i)
        text = text[:i] + rng.choice(swaps) + (text[j:] if j > 0 else "}")
    else:
        text = text[:int(rng.integers(len(text) + 1))]
    body = text.encode()
    return np.lib.format.magic(1, 0) + _npy_header_for(len(body)) + body


def _npy_header_for(n: int) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False,
                                               "shape": (n,)})
    return out.getvalue()[8:]


def _mutate_model(rng, members: dict[str, bytes], raw: bytes) -> bytes:
    kind = int(rng.integers(7))
    items = list(members.items())
    if kind == 0:  # the file cut short
        return raw[:int(rng.integers(len(raw)))]
    if kind == 1:  # bits flipped anywhere in the file
        return _flip(rng, raw, int(rng.integers(1, 9)))
    i, j = rng.choice(len(items), 2, replace=False)
    if kind == 2:  # two members' contents swapped
        items[i], items[j] = (items[i][0], items[j][1]), (items[j][0], items[i][1])
    elif kind == 3:  # a member's .npy header edited
        items[i] = (items[i][0], _edit_npy_header(rng, items[i][1]))
    elif kind == 4:  # a member's contents with bits flipped (a valid zip around them)
        items[i] = (items[i][0], _flip(rng, items[i][1], int(rng.integers(1, 5))))
    elif kind == 5:  # a JSON member edited
        json_members = [k for k, (n, _) in enumerate(items)
                        if n in ("model.npy", "extra.npy", "state/meta.npy")]
        k = json_members[int(rng.integers(len(json_members)))]
        items[k] = (items[k][0], _edit_json(rng, items[k][1]))
    else:  # a member dropped, renamed or duplicated
        choice = int(rng.integers(3))
        if choice == 0:
            del items[i]
        elif choice == 1:
            items[i] = (rng.choice(["notes.npy", "param/x.npy", "state/velocity/y.npy",
                                    "model", "../model.npy"]), items[i][1])
        else:
            items.append(items[i])
    return _zip(items, deflate=bool(rng.integers(2)))


def _sane_model(result) -> None:
    model, state, extra = result
    shapes = config_shapes(model.config)
    for name, w in model.params().items():
        assert w.shape == shapes[name] and np.isfinite(w).all()
    assert isinstance(extra, dict)
    if state is not None:
        assert 0 <= state["meta"]["cursor"] <= len(state["order"])


@pytest.mark.slow
def test_fuzzed_model_files(tmp_path):
    rng = np.random.default_rng(20261202)
    images, labels = rng.integers(0, 256, (24, 28, 28), np.uint8), rng.integers(0, 10, 24)
    model = Model(build_config("deep", 4), 0)
    trainer = Trainer(model, images, labels, lr=0.01, batch_size=4, momentum=0.9)
    trainer.step()
    good = tmp_path / "good.npz"
    save_model(good, model, trainer.get_state(), {"class_names": [str(i) for i in range(10)]})
    raw, members = good.read_bytes(), _members(good)
    outcomes = {"ok": 0, "refused": 0}
    for case in range(MODEL_CASES):
        path = tmp_path / f"case{case}.npz"
        path.write_bytes(_mutate_model(rng, members, raw))
        outcomes[_checked(load_model, path, CheckpointError, _sane_model)] += 1
        path.unlink()
    assert outcomes["refused"] > MODEL_CASES // 2  # the mutations do reach the checks
    print(outcomes)


# ---- IDX folders ---------------------------------------------------------------------------
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def _mutate_idx(rng, data: bytes) -> bytes:
    """``data``: a decompressed IDX file. Returns the bytes to store (gzipped or raw)."""
    kind = int(rng.integers(5))
    if kind == 0:
        data = data[:int(rng.integers(len(data)))]
    elif kind == 1:  # a header field set to a random or huge value
        field = int(rng.integers(min(4, len(data) // 4)))
        value = int(rng.choice([0, 1, 255, 2**20, 2**31, 2**32 - 1, 3 * 10**6]))
        data = data[:4 * field] + value.to_bytes(4, "big") + data[4 * field + 4:]
    elif kind == 2:
        data = _flip(rng, data, int(rng.integers(1, 9)))
    elif kind == 3:  # garbage appended: a little or a lot of zeros
        data = data + bytes(int(rng.choice([1, 100, 2 * 2**20])))
    stored = gzip.compress(data, 1) if rng.integers(2) else data
    if kind == 4:  # bits flipped in the stored (maybe compressed) bytes
        stored = _flip(rng, stored, int(rng.integers(1, 5)))
    return stored


def _sane_dataset(ds) -> None:
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == np.uint8 and x.shape[1:] == (28, 28) and len(x) == len(y)
        assert y.dtype == np.uint8 and (y < len(ds.class_names)).all()


@pytest.mark.slow
def test_fuzzed_idx_folders(tmp_path):
    rng = np.random.default_rng(7)
    good = tmp_path / "good"
    good.mkdir()
    contents = {}
    for name, n in zip(NAMES, (20, 20, 10, 10), strict=True):
        array = (rng.integers(0, 256, (n, 28, 28), np.uint8) if "images" in name
                 else (np.arange(n) % 10).astype(np.uint8))
        write_idx(good / (name + ".gz"), array)
        contents[name] = idx_bytes(array)
    outcomes = {"ok": 0, "refused": 0}
    for case in range(IDX_CASES):
        folder = tmp_path / f"case{case}"
        shutil.copytree(good, folder)
        victim = NAMES[int(rng.integers(4))]
        (folder / (victim + ".gz")).unlink()
        stored = _mutate_idx(rng, contents[victim])
        target = folder / (victim + (".gz" if stored[:2] == b"\x1f\x8b" else ""))
        target.write_bytes(stored)
        outcomes[_checked(load_dir, folder, DataError, _sane_dataset)] += 1
        shutil.rmtree(folder)
    assert outcomes["refused"] > IDX_CASES // 2
    print(outcomes)


def test_the_fuzzers_starting_points_load(tmp_path):
    """The unmutated files pass, so a refusal above is the mutation's doing."""
    folder = tmp_path / "set"
    folder.mkdir()
    for name in NAMES:
        write_idx(folder / (name + ".gz"), np.zeros((3, 28, 28) if "images" in name else 3,
                                                   np.uint8))
    _sane_dataset(load_dir(folder))
    path = tmp_path / "m.npz"
    save_model(path, Model(build_config("deep", 4), 0))
    _sane_model(load_model(path))
    assert json.loads(np.load(path)["model"].tobytes())["config"]["preset"] == "deep"
