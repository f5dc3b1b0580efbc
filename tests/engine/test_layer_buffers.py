"""Reused work buffers never change a result somebody still holds."""
from __future__ import annotations

import numpy as np
import pytest

from convscope.engine.fast.kernels import Buffers
from convscope.engine.fast.layers import Conv2D, Dense, Pool2D, ReLU
from convscope.engine.net.model import Model, build_config, prepare_input

RNG = np.random.default_rng(0)


def _batches(count, shape):
    return [RNG.standard_normal(shape).astype(np.float32) for _ in range(count)]


@pytest.mark.slow
def test_buffer_is_reused_only_when_nobody_holds_it():
    buffers = Buffers()
    shape, f32 = (64, 1024), np.dtype(np.float32)
    a = buffers.get("out", shape, f32)
    address = a.__array_interface__["data"][0]
    del a
    b = buffers.get("out", shape, f32)
    assert b.__array_interface__["data"][0] == address  # dropped: handed out again
    view = b[3:5]
    del b
    c = buffers.get("out", shape, f32)
    assert not np.shares_memory(c, view)  # a view still held keeps its array out of reuse
    d = buffers.get("out", shape, f32)
    assert not np.shares_memory(d, c) and not np.shares_memory(d, view)


@pytest.mark.slow
def test_kept_forward_outputs_stay_correct():
    conv, pool, relu = Conv2D(1, 8, 3, rng=RNG), Pool2D(), ReLU()
    xs = _batches(4, (40, 28, 28))
    outs = [conv.forward(x) for x in xs]  # a caller keeping every result
    pooled = [pool.forward(relu.forward(o)) for o in outs]
    fresh_conv, fresh_pool = Conv2D(1, 8, 3, rng=np.random.default_rng(9)), Pool2D()
    fresh_conv.params["W"][...] = conv.params["W"]
    for x, o, p in zip(xs, outs, pooled, strict=True):
        want = fresh_conv.forward(x).copy()
        np.testing.assert_array_equal(o, want)
        np.testing.assert_array_equal(p, fresh_pool.forward(np.maximum(want, 0)).copy())


@pytest.mark.slow
def test_kept_gradients_stay_correct():
    dense = Dense(1352, 10, RNG)
    xs, douts = _batches(3, (32, 1352)), _batches(3, (32, 10))
    kept = []
    for x, d in zip(xs, douts, strict=True):
        dense.forward(x)
        dx = dense.backward(d)
        kept.append((dense.grads["W"], dx))
    for (dw, dx), x, d in zip(kept, xs, douts, strict=True):
        np.testing.assert_allclose(dw, x.T @ d, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dx, d @ dense.params["W"].T, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_traces_are_not_touched_by_later_steps():
    model = Model(build_config("deep"), seed=0)
    images = RNG.integers(0, 256, (64, 28, 28), dtype=np.uint8)
    labels = RNG.integers(0, 10, 64)
    trace: dict = {}
    model.loss_and_grads(prepare_input(images[:32]), labels[:32], trace)
    frozen = {k: np.array(v, copy=True) for k, v in trace.items()}
    grads = model.grads()  # live arrays, still held
    frozen_grads = {k: g.copy() for k, g in grads.items()}
    for _ in range(3):
        model.loss_and_grads(prepare_input(images[32:]), labels[32:])
    for k, v in frozen.items():
        np.testing.assert_array_equal(trace[k], v)
    for k, g in frozen_grads.items():
        np.testing.assert_array_equal(grads[k], g)
