"""The whole vectorised network (float64) against the loop reference, and the Model API."""
import numpy as np
import pytest

from convscope.engine.net.layers import softmax
from convscope.engine.net.model import PRESETS, Model, build_config, prepare_input
from convscope.engine.net.notes import ReferenceNet

F64 = np.float64
TRACE_KEYS = {"input", "conv1", "pool1", "flatten", "dense1", "logits", "probs", "labels",
              "loss", "dL_dout", "dout_dt", "dL_dt", "dense1.dW", "dense1.db", "dense1.dx",
              "flatten.dx", "pool1.dx", "conv1.dW"}


def assert_same(a, b, rel=1e-10):
    """Equal to ``rel`` relative to the largest magnitude of ``b`` (and element by element)."""
    a, b = np.asarray(a, F64), np.asarray(b, F64)
    assert a.shape == b.shape
    scale = max(float(np.abs(b).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(a, b, rtol=rel, atol=rel * scale)


def digit_like(n, seed=0):
    """uint8 (n, 28, 28): a constant 0 background and a blob of a few grey levels, so most
    pooling windows of the maps are ties (as with real digits)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for image in images:
        r, c = rng.integers(2, 10, 2)
        image[r:r + 16, c:c + 14] = rng.choice([0, 128, 255], (16, 14), p=[0.4, 0.2, 0.4])
    return images


CUSTOM = {"preset": "custom", "layers": [  # stride 2, padding 1, bias, multi-channel input
    {"type": "conv", "filters": 4, "k": 3, "stride": 2, "pad": 1, "bias": True, "init": "he"},
    {"type": "relu"},
    {"type": "pool", "mode": "avg", "size": 2, "stride": 2},
    {"type": "conv", "filters": 6, "k": 3, "stride": 1, "pad": 1, "bias": True, "init": "he"},
    {"type": "pool", "mode": "min", "size": 3, "stride": 2},
    {"type": "conv", "filters": 5, "k": 2, "stride": 2, "pad": 1, "bias": False},
    {"type": "flatten"},
    {"type": "dense", "units": 10, "init": "he"},
]}

POOLS = ("max", "avg", "min")
NETWORKS = ([("seed", pool, relu) for pool in POOLS for relu in (False, True)]
            + [(preset, pool, None) for preset in ("deep", "lenet") for pool in POOLS]
            + [("custom", None, None)])


def compare_with_reference(model, images, labels):
    x = prepare_input(images).astype(F64)
    trace = {}
    losses, probs = model.loss_and_grads(x, labels, trace)
    net = ReferenceNet(model.config, model.params())
    ref_losses, ref_probs, ref_grads, ref_trace = net.loss_and_grads(x, labels)
    assert set(trace) == {k for k in ref_trace if not k.endswith(".winners")}
    for key, value in trace.items():
        if value.dtype == bool:
            assert np.array_equal(value, ref_trace[key]), key
        else:
            assert_same(value, ref_trace[key])
    assert_same(losses, ref_losses)
    assert_same(probs, ref_probs)
    grads = model.grads()
    assert set(grads) == set(ref_grads)
    for key, g in grads.items():
        assert_same(g, ref_grads[key])
    return trace


@pytest.mark.slow
@pytest.mark.parametrize("preset, pool, relu", NETWORKS)
def test_network_matches_reference(preset, pool, relu):
    config = CUSTOM if preset == "custom" else build_config(preset, pool=pool, relu=relu)
    model = Model(config, seed=5, dtype=F64)
    rng = np.random.default_rng(1)
    for layer in model.layers:  # non-zero biases, so that they matter
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(0, 0.1, layer.params["b"].shape)
    trace = compare_with_reference(model, digit_like(2), np.array([3, 8]))
    if preset == "seed" and pool != "avg":
        windows = trace["conv1"].reshape(2, 13, 2, 13, 2, 8).transpose(0, 1, 3, 5, 2, 4)
        windows = windows.reshape(-1, 4)
        best = windows.max(1) if pool == "max" else windows.min(1)
        assert ((windows == best[:, None]).sum(axis=1) > 1).mean() > 0.4  # many tied windows


def test_seed_network_matches_reference_on_real_digits(official_test_set):
    images, labels = official_test_set
    model = Model(build_config("seed"), seed=0, dtype=F64)
    trace = compare_with_reference(model, images[:3], labels[:3].astype(np.intp))
    assert set(trace) == TRACE_KEYS | {"pool1.mask"}


def test_trace_holds_every_intermediate_and_gradient_as_copies():
    model = Model(build_config("seed", relu=True), seed=0)
    x = prepare_input(digit_like(2))
    trace = {}
    model.loss_and_grads(x, np.array([1, 2]), trace)
    assert set(trace) == TRACE_KEYS | {"pool1.mask", "relu1", "relu1.dx"}
    assert trace["conv1"].shape == (2, 26, 26, 8) and trace["pool1"].shape == (2, 13, 13, 8)
    assert trace["pool1.mask"].shape == (2, 26, 26, 8) and trace["pool1.mask"].dtype == bool
    assert trace["flatten"].shape == (2, 1352) and trace["probs"].shape == (2, 10)
    assert trace["dense1.dW"].shape == (1352, 10) and trace["conv1.dW"].shape == (3, 3, 1, 8)
    live = [a for layer in model.layers
            for a in (*layer.params.values(), *layer.grads.values(), *layer.cache.values())
            if isinstance(a, np.ndarray)]
    for key, value in trace.items():
        assert not any(np.shares_memory(value, a) for a in live), key
    np.testing.assert_allclose(trace["probs"].sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(trace["dL_dt"], trace["probs"] - np.eye(10)[[1, 2]], atol=1e-7)


def test_float32_engine_agrees_with_float64():
    model = Model(build_config("deep"), seed=2)
    model64 = model.copy(dtype=F64)
    x = prepare_input(digit_like(3, seed=4))
    labels = np.array([0, 5, 9])
    l32, p32 = model.loss_and_grads(x, labels)
    l64, p64 = model64.loss_and_grads(x.astype(F64), labels)
    assert l32.dtype == np.float32 and l64.dtype == F64
    np.testing.assert_allclose(l32, l64, rtol=1e-4)
    for key, g in model.grads().items():
        g64 = model64.grads()[key]
        assert np.abs(g - g64).max() <= 1e-3 * np.abs(g64).max(), key


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_same_seed_same_weights(preset):
    a, b = Model(build_config(preset), seed=7), Model(build_config(preset), seed=7)
    c = Model(build_config(preset), seed=8)
    for key, w in a.params().items():
        assert w.dtype == np.float32
        assert np.array_equal(w, b.params()[key])
    assert not np.array_equal(a.params()["conv1.W"], c.params()["conv1.W"])


def test_seed_preset_is_the_notes_network():
    config = build_config("seed")
    model = Model(config, seed=0)
    assert [layer.kind for layer in model.layers] == ["conv", "pool", "flatten", "dense"]
    shapes = {k: v.shape for k, v in model.params().items()}
    assert shapes == {"conv1.W": (3, 3, 1, 8), "dense1.W": (1352, 10), "dense1.b": (10,)}
    assert np.all(model.params()["dense1.b"] == 0)
    assert model.layer("pool1").mode == "max" and model.layer("pool1").size == 2
    big = Model(build_config("seed", filters=64), seed=0)  # enough weights to see the scales
    assert abs(big.params()["conv1.W"].std() * 9 - 1) < 0.1  # N(0, 1) / 9
    assert abs(big.params()["dense1.W"].std() * 13 * 13 * 64 - 1) < 0.05  # N(0, 1) / n_in


def test_copy_is_independent_and_keeps_values():
    model = Model(build_config("lenet"), seed=1)
    other = model.copy(dtype=F64)
    for key, w in model.params().items():
        assert other.params()[key].dtype == F64
        assert np.array_equal(other.params()[key], w.astype(F64))
        assert not np.shares_memory(other.params()[key], w)
    other.params()["conv1.W"][...] = 0
    assert np.any(model.params()["conv1.W"] != 0)


def test_set_params_copies_and_checks():
    model = Model(build_config("seed"), seed=0)
    values = {k: np.ones_like(v) for k, v in model.params().items()}
    model.set_params(values)
    values["conv1.W"][...] = 5
    assert np.all(model.params()["conv1.W"] == 1)
    with pytest.raises(ValueError, match="shape"):
        model.set_params({**values, "dense1.b": np.zeros(11)})
    with pytest.raises(ValueError, match="do not match"):
        model.set_params({k: v for k, v in values.items() if k != "dense1.b"})


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        build_config("resnet")
    with pytest.raises(ValueError, match="filters"):
        build_config("seed", filters=0)
    with pytest.raises(ValueError, match="unknown pooling mode"):
        Model(build_config("seed", pool="median"))
    with pytest.raises(ValueError, match="10 outputs"):
        Model({"layers": [{"type": "flatten"}, {"type": "dense", "units": 7}]})
    with pytest.raises(ValueError, match="unknown layer type"):
        Model({"layers": [{"type": "dropout"}]})


def test_predict_proba_in_chunks_equals_one_pass():
    model = Model(build_config("seed"), seed=0)
    x = prepare_input(digit_like(7))
    probs = model.predict_proba(x, chunk=3)
    np.testing.assert_allclose(probs, softmax(model.forward(x)), rtol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)


def test_prepare_input_is_the_notes_scaling():
    x = prepare_input(np.array([[[0, 255, 51]]], np.uint8))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [[[-0.5, 0.5, -0.3]]], atol=1e-7)
