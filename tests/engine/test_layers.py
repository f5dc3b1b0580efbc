"""Each vectorised layer (float64) against the loop reference: forward and every gradient."""
import numpy as np
import pytest

from convscope.engine.net import notes as ref
from convscope.engine.net.layers import (
    Conv2D,
    Dense,
    Flatten,
    Pool2D,
    ReLU,
    cross_entropy,
    softmax,
    softmax_cross_entropy,
)

F64 = np.float64


def assert_same(a, b, rel=1e-10):
    """Equal to ``rel`` relative to the largest magnitude of ``b`` (and element by element)."""
    a, b = np.asarray(a, F64), np.asarray(b, F64)
    assert a.shape == b.shape
    scale = max(float(np.abs(b).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(a, b, rtol=rel, atol=rel * scale)


def tied_maps(rng, shape, levels=3):
    """Maps with a constant background and quantised blobs: most pooling windows are ties."""
    x = np.zeros(shape)
    n, h, w = shape[:3]
    for s in range(n):
        r, c = rng.integers(0, h // 2), rng.integers(0, w // 2)
        x[s, r:r + h // 2, c:c + w // 2] = rng.integers(0, levels, (h // 2, w // 2) + shape[3:])
    return x


# ---- convolution ---------------------------------------------------------------------------
CONV_CASES = [  # (c_in, c_out, k, stride, pad, bias, h, w)
    (1, 8, 3, 1, 0, False, 28, 28),  # the design notes' layer
    (3, 4, 3, 2, 1, True, 9, 11),  # multi-channel, stride 2, padding 1
    (2, 5, 5, 1, 2, True, 8, 8),
    (4, 3, 3, 2, 0, False, 10, 10),  # stride 2 leaving the last row and column unused
    (3, 2, 1, 1, 0, True, 5, 6),  # 1 x 1
    (2, 3, 4, 3, 1, False, 12, 13),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_reference(case):
    c_in, c_out, k, stride, pad, bias, h, w = case
    rng = np.random.default_rng(sum(case[:6]))
    layer = Conv2D(c_in, c_out, k, stride, pad, bias, rng, dtype=F64)
    if bias:
        layer.params["b"][...] = rng.standard_normal(c_out)
    squeeze = c_in == 1
    x = rng.standard_normal((3, h, w) if squeeze else (3, h, w, c_in))
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    W, b = layer.params["W"], layer.params.get("b")
    dW, db = np.zeros_like(W), np.zeros(c_out)
    for s in range(len(x)):
        assert_same(out[s], ref.conv_forward(x[s], W, b, stride, pad))
        dW_s, db_s, dx_s = ref.conv_backward(x[s], W, dout[s], stride, pad)
        assert_same(dx[s], dx_s)
        dW, db = dW + dW_s, db + db_s
    assert_same(layer.grads["W"], dW)
    if bias:
        assert_same(layer.grads["b"], db)
    assert set(layer.grads) == set(layer.params)
    assert all(layer.grads[k].shape == layer.params[k].shape for k in layer.params)


@pytest.mark.slow
def test_conv_without_input_gradient_still_fills_weight_gradients():
    rng = np.random.default_rng(0)
    layer = Conv2D(1, 2, 3, rng=rng, dtype=F64, need_dx=False)
    x = rng.standard_normal((2, 6, 6))
    dout = rng.standard_normal(layer.forward(x).shape)
    assert layer.backward(dout) is None
    want = sum(ref.conv_backward(x[s], layer.params["W"], dout[s])[0] for s in range(2))
    assert_same(layer.grads["W"], want)


@pytest.mark.slow
def test_conv_backward_does_not_change_weights():
    rng = np.random.default_rng(1)
    layer = Conv2D(2, 3, 3, 1, 1, True, rng, dtype=F64)
    before = {k: v.copy() for k, v in layer.params.items()}
    out = layer.forward(rng.standard_normal((2, 5, 5, 2)))
    layer.backward(rng.standard_normal(out.shape))
    for k in before:
        assert np.array_equal(layer.params[k], before[k])


# ---- pooling -------------------------------------------------------------------------------
POOL_CASES = [  # (size, stride, h, w, c)
    (2, 2, 26, 26, 8),  # the design notes' pool
    (2, 2, 7, 9, 2),  # odd sizes: the last row/column belong to no window
    (3, 2, 9, 9, 2),  # overlapping windows
    (2, 1, 6, 6, 3),  # overlapping windows
    (3, 3, 9, 12, 1),
]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["max", "avg", "min"])
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("data", ["random", "tied"])
def test_pool_matches_reference(mode, case, data):
    size, stride, h, w, c = case
    rng = np.random.default_rng(h * w + c)
    shape = (3, h, w, c)
    x = rng.standard_normal(shape) if data == "random" else tied_maps(rng, shape)
    layer = Pool2D(mode, size, stride)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    for s in range(len(x)):
        want, winners = ref.pool_forward(x[s], mode, size, stride)
        assert_same(out[s], want)
        assert_same(dx[s], ref.pool_backward(dout[s], winners, x[s].shape, mode, size, stride))
        if mode != "avg":
            assert np.array_equal(layer.mask()[s], ref.pool_mask(winners, x[s].shape))
            rows = winners[..., 0] - stride * np.arange(out.shape[1])[:, None, None]
            cols = winners[..., 1] - stride * np.arange(out.shape[2])[None, :, None]
            assert np.array_equal(layer.cache["arg"][s], rows * size + cols)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["max", "min"])
def test_pool_mask_has_one_winner_per_window_the_first_in_row_major_order(mode):
    rng = np.random.default_rng(7)
    x = tied_maps(rng, (4, 26, 26, 8), levels=2)
    layer = Pool2D(mode, 2, 2)
    out = layer.forward(x)
    mask = layer.mask()
    windows = x.reshape(4, 13, 2, 13, 2, 8).transpose(0, 1, 3, 5, 2, 4).reshape(4, 13, 13, 8, 4)
    in_window = mask.reshape(4, 13, 2, 13, 2, 8).transpose(0, 1, 3, 5, 2, 4).reshape(
        4, 13, 13, 8, 4)
    best = windows.max(axis=-1) if mode == "max" else windows.min(axis=-1)
    ties = (windows == best[..., None]).sum(axis=-1) > 1
    assert ties.mean() > 0.5  # the test is about ties: most windows have several winners
    assert np.all(in_window.sum(axis=-1) == 1)  # exactly one True per window
    first = np.argmax(windows == best[..., None], axis=-1)  # first equal in row-major order
    assert np.array_equal(np.argmax(in_window, axis=-1), first)
    assert np.array_equal(out, best)


def test_pool_routes_a_tied_window_to_its_first_pixel_only():
    x = np.ones((1, 2, 2, 1))
    for mode in ("max", "min"):
        layer = Pool2D(mode, 2, 2)
        layer.forward(x)
        dx = layer.backward(np.full((1, 1, 1, 1), 5.0))
        assert dx[0, :, :, 0].tolist() == [[5.0, 0.0], [0.0, 0.0]]
        assert layer.mask()[0, :, :, 0].tolist() == [[True, False], [False, False]]


def test_pool_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown pooling mode"):
        Pool2D("median")


# ---- ReLU, flatten, dense ------------------------------------------------------------------
@pytest.mark.slow
def test_relu_matches_reference_including_exact_zeros():
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, (4, 5, 5, 3)).astype(F64)  # many exact zeros
    dout = rng.standard_normal(x.shape)
    layer = ReLU()
    assert_same(layer.forward(x), ref.relu_forward(x))
    assert_same(layer.backward(dout), ref.relu_backward(x, dout))
    assert np.all(layer.backward(dout)[x == 0] == 0)


def test_flatten_is_row_major_and_backward_restores_the_shape():
    x = np.arange(2 * 3 * 4 * 5, dtype=F64).reshape(2, 3, 4, 5)
    layer = Flatten()
    out = layer.forward(x)
    assert np.array_equal(out[1], x[1].reshape(-1))
    assert np.array_equal(layer.backward(out), x)


def test_dense_matches_reference():
    rng = np.random.default_rng(4)
    layer = Dense(12, 5, rng, dtype=F64)
    layer.params["b"][...] = rng.standard_normal(5)
    x = rng.standard_normal((3, 12))
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    W, b = layer.params["W"], layer.params["b"]
    dW, db = np.zeros_like(W), np.zeros_like(b)
    for s in range(3):
        assert_same(out[s], ref.dense_forward(x[s], W, b))
        dW_s, db_s, dx_s = ref.dense_backward(x[s], W, dout[s])
        assert_same(dx[s], dx_s)
        dW, db = dW + dW_s, db + db_s
    assert_same(layer.grads["W"], dW)
    assert_same(layer.grads["b"], db)


@pytest.mark.slow
def test_notes_init_scales():
    rng = np.random.default_rng(5)
    conv = Conv2D(1, 64, 3, rng=rng, dtype=F64)
    dense = Dense(1352, 10, rng, dtype=F64)
    assert conv.params["W"].shape == (3, 3, 1, 64) and "b" not in conv.params
    assert abs(conv.params["W"].std() * 9 - 1) < 0.1  # N(0, 1) / 9
    assert abs(dense.params["W"].std() * 1352 - 1) < 0.05  # N(0, 1) / 1352
    assert np.all(dense.params["b"] == 0)
    assert conv.params["W"].dtype == F64 and Dense(3, 2).params["W"].dtype == np.float32


# ---- softmax and cross-entropy -------------------------------------------------------------
def test_softmax_cross_entropy_matches_the_notes_formulas():
    rng = np.random.default_rng(6)
    t = rng.standard_normal((5, 10)) * 3
    labels = rng.integers(0, 10, 5)
    losses, probs, dt = softmax_cross_entropy(t, labels)
    for s in range(5):
        loss, out, _, _, d_L_d_t = ref.softmax_cross_entropy_backward(t[s], labels[s])
        assert_same(losses[s], loss)
        assert_same(probs[s], out)
        assert_same(dt[s] * 5, d_L_d_t)  # the batch gradient is the mean: dL/dt / N
    assert_same(softmax(t), probs)
    assert_same(cross_entropy(probs, labels), losses)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    t = np.array([[1000.0, 0.0, -1000.0] + [0.0] * 7, [-800.0] * 9 + [800.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        losses, probs, dt = softmax_cross_entropy(t, np.array([2, 9]))
        p = softmax(t)
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(dt))
    assert losses[0] == pytest.approx(2000.0) and losses[1] == 0.0
    assert_same(probs.sum(axis=1), np.ones(2))
    assert_same(p, probs)
    assert np.isfinite(cross_entropy(p.astype(np.float32), np.array([2, 9]))).all()
