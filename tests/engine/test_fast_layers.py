"""The fast layers and passes (engine/fast) against the plain layers (engine/net/layers.py):
the same losses, traces and gradients in float64 to 1e-10, close in float32; and the model
runs a fast pass only where one applies."""
import numpy as np
import pytest
from test_model import CUSTOM, NETWORKS, assert_same, digit_like

from convscope.engine.fast import Prepared, fused, plan, stack
from convscope.engine.fast import layers as fast_layers
from convscope.engine.net import layers as plain_layers
from convscope.engine.net.model import Model, build_config, layer_info, prepare_input

F64 = np.float64


def config_of(preset, pool, relu):
    return CUSTOM if preset == "custom" else build_config(preset, pool=pool, relu=relu)


def pair(config, dtype=F64):
    """The same network twice: fast layers (the default) and plain ones."""
    fast = Model(config, seed=3, dtype=dtype)
    plain = Model(config, seed=3, dtype=dtype, fast=False)
    for model in (fast, plain):  # non-zero biases, so the bias paths count
        for layer in model.layers:
            if "b" in layer.params:
                b = layer.params["b"]
                b[...] = np.random.default_rng(1).normal(0, 0.1, b.shape)
    return fast, plain


@pytest.mark.parametrize("preset,pool,relu", NETWORKS)
def test_fast_layers_equal_the_plain_ones_in_float64(preset, pool, relu):
    fast, plain = pair(config_of(preset, pool, relu))
    assert all(type(layer).__module__ == fast_layers.__name__ or layer.kind == "flatten"
               for layer in fast.layers)
    assert all(type(layer).__module__ == plain_layers.__name__ for layer in plain.layers)
    # continuous input: the only pooling ties are exact (ReLU's zeros), for both alike; a
    # near-tie could fall either way with the products summed in another order
    x = np.random.default_rng(2).normal(0, 0.5, (5, 28, 28))
    labels = np.array([3, 1, 4, 1, 5])
    traces = [{}, {}]
    for model, trace in zip((fast, plain), traces, strict=True):
        model.loss_and_grads(x, labels, trace)
    assert set(traces[0]) == set(traces[1])
    for key, want in traces[1].items():
        if want.dtype == bool:
            assert np.array_equal(traces[0][key], want), key
        else:
            assert_same(traces[0][key], want)
    untraced = [model.loss_and_grads(x, labels) for model in (fast, plain)]
    assert_same(untraced[0][0], untraced[1][0])
    for key, g in plain.grads().items():
        assert_same(fast.grads()[key], g)


@pytest.mark.parametrize("preset", ["seed", "deep"])
def test_fast_layers_are_close_to_the_plain_ones_in_float32(preset):
    fast, plain = pair(build_config(preset), np.float32)
    x = prepare_input(digit_like(16, seed=4))
    labels = np.arange(16) % 10
    want_losses, _ = plain.loss_and_grads(x, labels)
    losses, _ = fast.loss_and_grads(x, labels)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for key, g in plain.grads().items():
        np.testing.assert_allclose(fast.grads()[key], g, atol=1e-5 * np.abs(g).max())


def test_the_fused_pass_is_planned_only_where_it_applies():
    for pool in ("max", "avg", "min"):
        for relu in (False, True):
            model = Model(build_config("seed", pool=pool, relu=relu))
            assert isinstance(model.fast_pass, fused.FusedNet)
    for preset in ("deep", "lenet"):  # conv stacks: the stack pass
        assert isinstance(plan(Model(build_config(preset))), stack.StackNet)
    overlapping = build_config("seed")
    overlapping["layers"][1].update(size=3, stride=2)
    assert Model(overlapping).fast_pass is None
    assert Model(build_config("seed"), fast=False).fast_pass is None


def test_a_traced_pass_runs_the_layers_and_an_untraced_one_the_fused_pass():
    model = Model(build_config("seed"), seed=0, dtype=F64)
    x = prepare_input(digit_like(4)).astype(F64)
    labels = np.arange(4)
    model.loss_and_grads(x, labels)
    flat = model.flat_pass()
    assert flat is not None and np.shares_memory(model.grads()["dense1.W"], flat.flat_g)
    trace = {}
    model.loss_and_grads(x, labels, trace)
    assert model.flat_pass() is None  # the layers' own gradients now
    assert_same(model.grads()["conv1.W"], trace["conv1.dW"])
    prepared = model.prepare(x)
    assert isinstance(prepared, Prepared) and len(prepared[1:3]) == 2
    losses, _ = model.loss_and_grads(prepared[1:3], labels[1:3])
    assert_same(losses, trace["loss"][1:3])


def test_a_large_batch_runs_in_chunks_with_the_same_mean_gradient():
    whole, chunked = (Model(build_config("deep"), seed=0, dtype=F64, fast=False)
                      for _ in range(2))
    chunked.chunk = 3
    x = prepare_input(digit_like(8)).astype(F64)
    labels = np.arange(8)
    calls = []
    want, _ = whole.loss_and_grads(x, labels)
    losses, _ = chunked.loss_and_grads(x, labels, between=lambda: calls.append(1))
    assert len(calls) == 3  # before each of the chunks 3 + 3 + 2
    assert_same(losses, want)
    for key, g in whole.grads().items():
        assert_same(chunked.grads()[key], g)


def test_layer_info_names_kinds_and_shapes_without_building():
    config = build_config("deep", filters=4)
    assert layer_info(config) == Model(config).layer_info() == [
        ("conv1", "conv", (28, 28, 4)), ("relu1", "relu", (28, 28, 4)),
        ("pool1", "pool", (14, 14, 4)), ("conv2", "conv", (14, 14, 8)),
        ("relu2", "relu", (14, 14, 8)), ("pool2", "pool", (7, 7, 8)),
        ("flatten", "flatten", (392,)), ("dense1", "dense", (10,))]
