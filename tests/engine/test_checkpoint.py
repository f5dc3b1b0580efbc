"""Model files: exact round trip, exact resume, and refusal of every kind of bad file."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from convscope.engine.files.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_model,
    save_model,
)
from convscope.engine.files.limits import config_shapes
from convscope.engine.net.model import PRESETS, Model, build_config, prepare_input
from convscope.engine.net.train import Trainer


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
@pytest.mark.slow
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


@pytest.mark.slow
def test_resume_gives_identical_losses(saved):
    path, _, trainer, images, labels = saved
    expected = [trainer.step().loss for _ in range(15)]  # crosses an epoch boundary
    model, state, _ = load_model(path)
    resumed = _trainer(model, images, labels)
    resumed.set_state(state)
    assert [resumed.step().loss for _ in range(15)] == expected
    assert resumed.step_count == trainer.step_count and resumed.epoch == trainer.epoch


@pytest.mark.slow
def test_model_without_state_and_seed_preset(tmp_path):
    model = Model(build_config("seed", filters=4, pool="min"), seed=5)
    path = tmp_path / "plain"  # no .npz suffix: the name is kept as given
    save_model(path, model)
    loaded, state, extra = load_model(path)
    assert state is None and extra == {}
    assert loaded.config["pool"] == "min" and loaded.params()["conv1.W"].shape == (3, 3, 1, 4)
    assert os.listdir(tmp_path) == ["plain"]


@pytest.mark.slow
def test_members_are_plain_arrays(saved):
    members = _members(saved[0])  # allow_pickle=False reads every member
    assert int(members["format_version"]) == FORMAT_VERSION
    assert all(a.dtype != object for a in members.values())
    assert members["model"].dtype == np.uint8


@pytest.mark.slow
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
    _refused(tmp_path / "absent.npz", "not found")
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


@pytest.mark.slow
def test_refuses_truncated_file(saved, tmp_path):
    data = saved[0].read_bytes()
    for cut in (len(data) // 3, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        _refused(bad)


@pytest.mark.slow
def test_refuses_pickled_objects(saved, tmp_path):
    bad = tmp_path / "pickled.npz"
    arrays = _members(saved[0])
    arrays["extra"] = np.array([{"evil": 1}], dtype=object)
    with open(bad, "wb") as f:
        np.savez(f, **arrays)  # savez pickles object arrays
    with zipfile.ZipFile(bad) as z:
        assert "extra.npy" in z.namelist()
    _refused(bad, "pickled")


@pytest.mark.slow
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
    (lambda a: a.__setitem__("foo", np.zeros(1)), ["unknown member 'foo'"]),
    (lambda a: a.__setitem__("state/foo", np.zeros(1)), ["unknown member 'state/foo'"]),
])
@pytest.mark.slow
def test_refuses_inconsistent_contents(saved, tmp_path, change, words):
    _refused(_rewrite(saved[0], tmp_path / "bad.npz", change), *words)


@pytest.mark.slow
def test_refuses_a_member_that_is_not_an_array(saved, tmp_path):
    bad = tmp_path / "notes.npz"
    bad.write_bytes(saved[0].read_bytes())
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("param/notes.txt", b"not an array")  # np.load hands it over as bytes
    _refused(bad, "'param/notes.txt' is not a NumPy array")


def _with_config(arrays, config) -> None:
    info = json.loads(arrays["model"].tobytes())
    info["config"] = config
    arrays["model"] = np.frombuffer(json.dumps(info).encode(), np.uint8)


def _config(layers):
    return {"preset": "seed", "filters": 8, "pool": "max", "relu": False, "layers": layers}


CONV = {"type": "conv", "filters": 8, "k": 3}
HEAD = [{"type": "pool", "size": 2, "stride": 2}, {"type": "flatten"}]


@pytest.mark.parametrize("config, words", [
    (_config([{**CONV, "filters": 10**6}, *HEAD, {"type": "dense", "units": 10}]),
     ["filters", "between 1 and 128", "1000000"]),
    (_config([CONV, *HEAD, {"type": "dense", "units": 10**7}, {"type": "dense", "units": 10}]),
     ["units", "between 1 and 1024"]),
    (_config([{**CONV, "filters": 128, "pad": 2}, {"type": "flatten"},
            {"type": "dense", "units": 1024}, {"type": "dense", "units": 10}]),
     ["weights is more than the 4,000,000 allowed"]),
    (_config([{**CONV, "k": 99}, *HEAD, {"type": "dense", "units": 10}]), ["k", "between 1 and 7"]),
    (_config([{**CONV, "filters": 8.5}, *HEAD, {"type": "dense", "units": 10}]),
     ["whole number"]),
    (_config([CONV] * 1000), ["1 to 32 layers"]),
    (_config([CONV, {"type": "dense", "units": 10}]), ["flat input"]),
    (_config("conv please"), ["list"]),
    (build_config("seed", filters=64), ["conv1.W has shape (3, 3, 1, 8)", "(3, 3, 1, 64)"]),
])
@pytest.mark.slow
def test_refuses_a_crafted_config_before_building_anything(tmp_path, monkeypatch, config,
                                                           words):
    def no_building(*args, **kwargs):
        raise AssertionError("a layer was built before the config was checked")
    path = tmp_path / "model.npz"
    save_model(path, Model(build_config("seed"), seed=0))
    bad = _rewrite(path, tmp_path / "crafted.npz", lambda a: _with_config(a, config))
    monkeypatch.setattr("convscope.engine.files.checkpoint.Model", no_building)
    _refused(bad, *words)


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("filters", [1, 64])
def test_config_shapes_are_the_shapes_a_model_builds(preset, filters):
    config = build_config(preset, filters)
    expected = {k: w.shape for k, w in Model(config, seed=0).params().items()}
    assert config_shapes(config) == expected


def _with_meta(arrays, **changes) -> None:
    meta = json.loads(arrays["state/meta"].tobytes())
    meta.update(changes)
    arrays["state/meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)


@pytest.mark.slow
def test_the_learning_rate_schedule_is_kept_and_checked(saved, tmp_path):
    cosine = {"name": "cosine", "base_lr": 0.05, "start_epoch": 0, "epochs": 2}
    good = _rewrite(saved[0], tmp_path / "good.npz", lambda a: _with_meta(a, lr_schedule=cosine))
    assert load_model(good)[1]["meta"]["lr_schedule"] == cosine
    for bad in ({**cosine, "name": "step"}, {**cosine, "epochs": 0}, {**cosine, "base_lr": -1},
                {**cosine, "start_epoch": True}, "cosine"):
        path = _rewrite(saved[0], tmp_path / "bad.npz",
                        lambda a, b=bad: _with_meta(a, lr_schedule=b))
        _refused(path, "learning-rate schedule")


@pytest.mark.slow
def test_refuses_a_bad_random_state(saved, tmp_path):
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
