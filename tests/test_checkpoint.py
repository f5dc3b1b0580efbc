"""Model files: exact round trip, exact resume, and refusal of every kind of bad file."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from engine.checkpoint import FORMAT_VERSION, CheckpointError, load_model, save_model
from engine.model import Model, build_config, prepare_input
from engine.train import Trainer


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[:, :4] = 0  # a constant border, as in real digits (tied pooling windows)
    return images, rng.integers(0, 10, n)


def _trainer(model, images, labels):
    return Trainer(model, images, labels, lr=0.01, batch_size=4, momentum=0.9, seed=3,
                   augment=True)


@pytest.fixture
def saved(tmp_path):
    """A deep model trained a few steps, saved with its trainer state mid-epoch."""
    images, labels = _data()
    model = Model(build_config("deep"), seed=1)
    trainer = _trainer(model, images, labels)
    for _ in range(7):
        trainer.step()
    path = tmp_path / "model.npz"
    save_model(path, model, trainer.get_state(), {"dataset": "test", "test_accuracy": 0.5})
    return path, model, trainer, images, labels


def _members(path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _rewrite(src, dst, change) -> str:
    arrays = _members(src)
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return str(dst)


def _refused(path, *words):
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and os.path.basename(str(path)) in message
    for word in words:
        assert word in message, message
    return message


# ---- round trip and resume ------------------------------------------------------------------
def test_round_trip_gives_identical_predictions(saved):
    path, model, _, images, _ = saved
    loaded, state, extra = load_model(path)
    assert loaded.config == model.config
    assert extra == {"dataset": "test", "test_accuracy": 0.5}
    for key, w in model.params().items():
        assert loaded.params()[key].dtype == w.dtype
        np.testing.assert_array_equal(loaded.params()[key], w)
    x = prepare_input(images)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert state is not None and state["meta"]["step"] == 7


def test_resume_gives_identical_losses(saved):
    path, _, trainer, images, labels = saved
    expected = [trainer.step().loss for _ in range(15)]  # crosses an epoch boundary
    model, state, _ = load_model(path)
    resumed = _trainer(model, images, labels)
    resumed.set_state(state)
    assert [resumed.step().loss for _ in range(15)] == expected
    assert resumed.step_count == trainer.step_count and resumed.epoch == trainer.epoch


def test_model_without_state_and_seed_preset(tmp_path):
    model = Model(build_config("seed", filters=4, pool="min"), seed=5)
    path = tmp_path / "plain"  # no .npz suffix: the name is kept as given
    save_model(path, model)
    loaded, state, extra = load_model(path)
    assert state is None and extra == {}
    assert loaded.config["pool"] == "min" and loaded.params()["conv1.W"].shape == (3, 3, 1, 4)
    assert os.listdir(tmp_path) == ["plain"]


def test_members_are_plain_arrays(saved):
    members = _members(saved[0])  # allow_pickle=False reads every member
    assert int(members["format_version"]) == FORMAT_VERSION
    assert all(a.dtype != object for a in members.values())
    assert members["model"].dtype == np.uint8


def test_save_is_atomic(saved, tmp_path, monkeypatch):
    path, model, trainer, _, _ = saved
    before = path.read_bytes()
    with pytest.raises(CheckpointError):
        save_model(path, model, extra={"bad": object()})  # not JSON: nothing written
    state = trainer.get_state()
    state["velocity"]["conv1.W"] = np.array([None])
    with pytest.raises(CheckpointError, match="numeric"):
        save_model(path, model, state)  # would need pickling: refused

    def crash(f, **arrays):  # a failure halfway through writing
        f.write(b"PK partial")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, model, trainer.get_state())
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left behind


# ---- bad files --------------------------------------------------------------------------------
def test_refuses_missing_text_and_npy_files(tmp_path):
    _refused(tmp_path / "absent.npz", "no such")
    _refused(tmp_path, "folder")
    text = tmp_path / "notes.npz"
    text.write_text("weights: 1 2 3\n")
    _refused(text, "not an .npz")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    _refused(npy, ".npy")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    _refused(empty, "not an .npz")


def test_refuses_truncated_file(saved, tmp_path):
    data = saved[0].read_bytes()
    for cut in (len(data) // 3, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        _refused(bad)


def test_refuses_pickled_objects(saved, tmp_path):
    bad = tmp_path / "pickled.npz"
    arrays = _members(saved[0])
    arrays["extra"] = np.array([{"evil": 1}], dtype=object)
    with open(bad, "wb") as f:
        np.savez(f, **arrays)  # savez pickles object arrays
    with zipfile.ZipFile(bad) as z:
        assert "extra.npy" in z.namelist()
    _refused(bad, "pickled")


def test_refuses_future_and_missing_versions(saved, tmp_path):
    def future(a):
        a["format_version"] = np.array(FORMAT_VERSION + 1)
    _refused(_rewrite(saved[0], tmp_path / "future.npz", future), "newer")
    _refused(_rewrite(saved[0], tmp_path / "nover.npz", lambda a: a.pop("format_version")),
             "format version")


@pytest.mark.parametrize("change, words", [
    (lambda a: a.__setitem__("param/conv1.W", np.zeros((3, 3, 1, 9), np.float32)), ["shape"]),
    (lambda a: a.__setitem__("param/dense1.b", a["param/dense1.b"].astype(np.float64)),
     ["dtype"]),
    (lambda a: a["param/dense1.W"].__setitem__((0, 0), np.nan), ["finite"]),
    (lambda a: a.pop("param/conv2.b"), ["missing", "conv2.b"]),
    (lambda a: a.__setitem__("param/conv9.W", np.zeros(3, np.float32)), ["unknown"]),
    (lambda a: a.pop("model"), ["model"]),
    (lambda a: a.__setitem__("model", np.frombuffer(b"{not json", np.uint8)), ["JSON"]),
    (lambda a: a.__setitem__("model", np.frombuffer(
        b'{"config": {"layers": [{"type": "warp"}]}}', np.uint8)), ["config"]),
    (lambda a: a.__setitem__("state/order", a["state/order"][:-1] * 0), ["permutation"]),
    (lambda a: a.__setitem__("state/meta", np.frombuffer(b'{"step": 1}', np.uint8)),
     ["lacks"]),
    (lambda a: a.__setitem__("state/velocity/conv1.W", np.zeros(2, np.float32)), ["shape"]),
])
def test_refuses_inconsistent_contents(saved, tmp_path, change, words):
    _refused(_rewrite(saved[0], tmp_path / "bad.npz", change), *words)


def test_refuses_a_bad_random_state(saved, tmp_path):
    import json

    def change(a):
        meta = json.loads(a["state/meta"].tobytes())
        meta["rng"] = {"bit_generator": "PCG64", "state": "nonsense"}
        a["state/meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    _refused(_rewrite(saved[0], tmp_path / "rng.npz", change), "training state")


def test_saved_model_files_have_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = tmp_path / "m.npz"
        save_model(path, Model(build_config("seed"), seed=0))
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert os.listdir(tmp_path) == ["m.npz"]
