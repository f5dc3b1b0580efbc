"""The loop reference itself: hand-checked values, the notes' formulas, numeric gradients."""
import math

import numpy as np
import pytest

from convscope.engine.net import notes as ref
from convscope.engine.net.model import PRESETS, Model, build_config


def test_iterate_regions_yields_every_window_in_row_major_order():
    image = np.arange(5 * 6, dtype=float).reshape(5, 6, 1)
    regions = list(ref.iterate_regions(image, 3))
    assert [(i, j) for _, i, j in regions] == [(i, j) for i in range(3) for j in range(4)]
    assert np.array_equal(regions[5][0], image[1:4, 1:4])
    strided = list(ref.iterate_regions(image, 2, stride=2))
    assert [(i, j) for _, i, j in strided] == [(i, j) for i in range(2) for j in range(3)]
    assert np.array_equal(strided[-1][0], image[2:4, 4:6])
    assert len(list(ref.iterate_regions(np.zeros((28, 28, 1)), 3))) == 26 * 26  # the notes


def test_conv_forward_by_hand():
    image = np.arange(16, dtype=float).reshape(4, 4)
    w = np.zeros((3, 3, 1, 2))
    w[1, 1, 0, 0] = 1.0  # filter 0 picks the centre pixel
    w[:, :, 0, 1] = 1.0  # filter 1 sums the region
    out = ref.conv_forward(image, w, bias=np.array([0.0, -1.0]))
    assert out.shape == (2, 2, 2)
    assert out[:, :, 0].tolist() == [[5.0, 6.0], [9.0, 10.0]]
    assert out[:, :, 1].tolist() == [[44.0, 53.0], [80.0, 89.0]]  # 45 - 1, ...
    padded = ref.conv_forward(image, w, stride=2, pad=1)
    assert padded.shape == (2, 2, 2)
    assert padded[:, :, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]
    assert padded[0, 0, 1] == 0 + 1 + 4 + 5


def test_conv_backward_by_hand():
    image = np.arange(9, dtype=float).reshape(3, 3)
    w = np.arange(9, dtype=float).reshape(3, 3, 1, 1)
    d_f, d_b, d_x = ref.conv_backward(image, w, np.array([[[2.0]]]))
    assert np.array_equal(d_f[:, :, 0, 0], 2 * image)  # region * d_L_d_out
    assert d_b.tolist() == [2.0]
    assert np.array_equal(d_x, 2 * w[:, :, 0, 0])  # weights * d_L_d_out


@pytest.mark.parametrize("mode, window, winner", [
    ("max", [[1, 3], [3, 0]], (0, 1)),  # two maxima: the first in row-major order
    ("max", [[2, 2], [2, 2]], (0, 0)),
    ("max", [[0, 1], [5, 5]], (1, 0)),
    ("min", [[2, 0], [0, 2]], (0, 1)),
    ("min", [[7, 7], [7, 7]], (0, 0)),
])
@pytest.mark.slow
def test_pool_keeps_the_first_winner(mode, window, winner):
    out, winners = ref.pool_forward(np.array(window, float)[:, :, None], mode)
    assert out[0, 0, 0] == np.array(window)[winner]
    assert tuple(winners[0, 0, 0]) == winner
    d_x = ref.pool_backward(np.array([[[4.0]]]), winners, (2, 2, 1), mode)
    expected = np.zeros((2, 2))
    expected[winner] = 4.0
    assert np.array_equal(d_x[:, :, 0], expected)


@pytest.mark.slow
def test_average_pool_spreads_the_gradient():
    x = np.arange(16, dtype=float).reshape(4, 4, 1)
    out, winners = ref.pool_forward(x, "avg")
    assert out[:, :, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    d_x = ref.pool_backward(np.ones((2, 2, 1)), winners, x.shape, "avg")
    assert np.all(d_x == 0.25)


@pytest.mark.slow
def test_the_notes_softmax_gradient_is_probs_minus_onehot():
    t = np.array([0.5, -1.0, 2.0, 0.0, 0.1, 0.2, -0.3, 1.5, 0.0, -2.0])
    for label in (2, 7):
        loss, out, d_out, d_out_d_t, d_t = ref.softmax_cross_entropy_backward(t, label)
        assert out.sum() == pytest.approx(1.0)
        assert loss == pytest.approx(-math.log(math.exp(t[label]) / np.exp(t).sum()))
        assert np.count_nonzero(d_out) == 1 and d_out[label] == pytest.approx(-1 / out[label])
        onehot = np.eye(10)[label]
        np.testing.assert_allclose(d_t, out - onehot, rtol=1e-12, atol=1e-15)
        # d_out_d_t is the label's row of the softmax Jacobian: check it numerically
        h = 1e-6
        numeric = [(ref.softmax(t + h * e)[label] - ref.softmax(t - h * e)[label]) / (2 * h)
                   for e in np.eye(10)]
        np.testing.assert_allclose(d_out_d_t, numeric, rtol=1e-7, atol=1e-10)


def test_softmax_does_not_overflow():
    with np.errstate(over="raise", invalid="raise"):
        p = ref.softmax(np.array([1000.0, 0.0, -1000.0]))
    assert p.tolist() == [1.0, 0.0, 0.0]


def _tiny_config(pool):
    """Multi-channel, stride 2, padding, ReLU, overlapping pools: every generalisation."""
    return {"layers": [
        {"type": "conv", "filters": 2, "k": 3, "stride": 2, "pad": 1, "bias": True},
        {"type": "relu"},
        {"type": "pool", "mode": pool, "size": 2, "stride": 1},
        {"type": "conv", "filters": 3, "k": 2, "stride": 1, "pad": 0, "bias": False},
        {"type": "pool", "mode": pool, "size": 2, "stride": 1},
        {"type": "flatten"},
        {"type": "dense", "units": 4},
    ]}


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["max", "avg", "min"])
def test_reference_gradients_match_centred_differences(pool):
    rng = np.random.default_rng(11)
    shapes = {"conv1.W": (3, 3, 1, 2), "conv1.b": (2,), "conv2.W": (2, 2, 2, 3),
              "dense1.W": (2 * 2 * 3, 4), "dense1.b": (4,)}
    params = {k: rng.standard_normal(shape) * 0.5 for k, shape in shapes.items()}
    net = ref.ReferenceNet(_tiny_config(pool), params)
    x = rng.standard_normal((2, 10, 10))  # continuous values: no ties, no ReLU zeros
    labels = np.array([1, 3])
    _, _, grads, _ = net.loss_and_grads(x, labels)
    h = 1e-6
    for key, w in net.params.items():
        numeric = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            old = w[idx]
            w[idx] = old + h
            plus = net.loss_and_grads(x, labels)[0].mean()
            w[idx] = old - h
            minus = net.loss_and_grads(x, labels)[0].mean()
            w[idx] = old
            numeric[idx] = (plus - minus) / (2 * h)
        err = np.abs(grads[key] - numeric) / np.maximum(1e-8, np.abs(grads[key]) + np.abs(numeric))
        assert err.max() < 1e-6, key


@pytest.mark.slow
def test_train_step_is_forward_backward_and_sgd():
    model = Model(build_config("seed"), seed=3)
    net = ref.ReferenceNet(model.config, model.params())
    image = np.random.default_rng(0).uniform(-0.5, 0.5, (28, 28))
    trace = net.forward(image)
    grads = net.backward(trace, 4)
    before = {k: v.copy() for k, v in net.params.items()}
    loss = net.train_step(image, 4, lr=0.005)
    assert loss == trace["loss"]
    for key, g in grads.items():
        np.testing.assert_array_equal(net.params[key], before[key] - 0.005 * g)
    losses = [net.train_step(image, 4, lr=0.005) for _ in range(3)]
    assert losses[0] < loss and losses[2] < losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_reference_names_weights_and_shapes_like_the_model(preset):
    model = Model(build_config(preset), seed=0)
    net = ref.ReferenceNet(model.config, model.params())
    assert [name for name, _ in net.specs] == [layer.name for layer in model.layers]
    assert set(net.params) == set(model.params())
    assert all(net.params[k].dtype == np.float64 for k in net.params)
