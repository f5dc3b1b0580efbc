"""The numeric gradient check: it passes every network and catches injected bugs."""
import json

import numpy as np
import pytest

from convscope.engine.net import notes as ref
from convscope.engine.net.layers import softmax_cross_entropy
from convscope.engine.net.model import Model, build_config, prepare_input
from convscope.engine.tools.gradcheck import (
    CHECK_BUDGET,
    affordable_entries,
    check_cost,
    gradcheck,
    kink_margin,
    loss_change,
)

F64 = np.float64
POOLS = ("max", "avg", "min")
NETWORKS = ([("seed", pool, relu) for pool in POOLS for relu in (False, True)]
            + [(preset, pool, None) for preset in ("deep", "lenet") for pool in POOLS])
ENTRIES = {"seed": 150, "deep": 40, "lenet": 12}  # sampled entries per parameter


def digit_like(n, seed=0):
    """uint8 (n, 28, 28): a constant background and a blob of three grey levels (many ties)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for image in images:
        r, c = rng.integers(2, 10, 2)
        image[r:r + 16, c:c + 14] = rng.choice([0, 128, 255], (16, 14), p=[0.4, 0.2, 0.4])
    return images


@pytest.mark.slow
@pytest.mark.parametrize("preset, pool, relu", NETWORKS)
def test_gradcheck_passes_every_network(preset, pool, relu):
    config = build_config(preset, pool=pool, relu=relu)
    report = gradcheck(config, digit_like(2), [3, 8], seed=1, max_entries=ENTRIES[preset])
    assert report["passed"], report["layers"]
    assert report["max_rel_error"] < 1e-6 and report["kinks"] == 0
    names = {layer.name for layer in Model(config).layers if layer.params}
    assert set(report["layers"]) == names


def test_gradcheck_of_every_entry_on_a_real_digit(official_test_set):
    images, labels = official_test_set
    report = gradcheck(build_config("seed"), images[0], int(labels[0]), max_entries=None)
    assert report["passed"] and report["samples"] == 1
    assert {k: v["checked"] for k, v in report["params"].items()} == {
        "conv1.W": 72, "dense1.W": 13520, "dense1.b": 10}


@pytest.mark.slow
def test_every_entry_is_checked_when_affordable_and_the_big_preset_is_sampled():
    seed, deep, lenet = (Model(build_config(p)) for p in ("seed", "deep", "lenet"))
    assert affordable_entries(seed) is None and affordable_entries(deep) is None
    assert check_cost(seed) < check_cost(deep) < CHECK_BUDGET < check_cost(lenet)
    n = affordable_entries(lenet)  # a round number of entries per weight within the budget
    assert 100 <= n < 12800 and n % 100 == 0
    assert check_cost(lenet, n) <= CHECK_BUDGET < check_cost(lenet, n + 100)
    assert check_cost(lenet, n, samples=2) == 2 * check_cost(lenet, n)


@pytest.mark.slow
def test_progress_reports_every_entry_and_a_stop_ends_the_check():
    seen = []
    report = gradcheck(build_config("seed"), digit_like(1), 4, max_entries=30,
                       progress=lambda done, total: seen.append((done, total)))
    total = sum(v["checked"] for v in report["params"].values())
    assert total == 30 + 30 + 10 and seen == [(k, total) for k in range(1, total + 1)]
    with pytest.raises(InterruptedError):
        gradcheck(build_config("seed"), digit_like(1), 4, max_entries=None,
                  should_stop=lambda: len(seen) > total + 5,
                  progress=lambda done, total: seen.append(done))
    assert len(seen) == total + 6  # stopped before the next entry


@pytest.mark.slow
def test_report_is_plain_consistent_data():
    report = gradcheck(build_config("deep"), digit_like(1), 4, max_entries=30)
    json.dumps(report)  # plain data, for the CLI and the GUI
    shapes = {k: v.shape for k, v in Model(build_config("deep")).params().items()}
    for name, entry in report["params"].items():
        assert entry["size"] == np.prod(shapes[name])
        assert entry["checked"] == min(30, entry["size"])
        assert all(0 <= i < n for i, n in zip(entry["worst_index"], shapes[name], strict=True))
        assert entry["max_rel_error"] <= report["layers"][name.split(".")[0]]
    assert report["max_rel_error"] == max(report["layers"].values())
    assert report["threshold"] == 1e-6 and report["kink_margin"] > 0
    assert report["loss"] > 0 and report["samples"] == 1


@pytest.mark.slow
def test_gradcheck_is_deterministic_and_leaves_the_model_alone():
    model = Model(build_config("seed", relu=True), seed=4)
    before = {k: v.copy() for k, v in model.params().items()}
    first = gradcheck(model, digit_like(2), [1, 2], seed=3, max_entries=20)
    second = gradcheck(model, digit_like(2), [1, 2], seed=3, max_entries=20)
    assert first == second
    for key, w in model.params().items():
        assert w.dtype == np.float32 and np.array_equal(w, before[key])


@pytest.mark.slow
def test_gradcheck_accepts_float_inputs_and_one_image():
    x = prepare_input(digit_like(1))[0]  # float32 (28, 28)
    assert gradcheck(build_config("seed"), x, 7, max_entries=10)["passed"]
    with pytest.raises(ValueError, match="labels"):
        gradcheck(build_config("seed"), digit_like(2), [1])
    with pytest.raises(ValueError, match="order"):
        gradcheck(build_config("seed"), digit_like(1), [1], order=3)


@pytest.mark.slow
def test_plain_second_order_differences_pass_too():
    report = gradcheck(build_config("deep"), digit_like(2), [0, 9], order=2, eps=1e-5,
                       max_entries=30)
    assert report["passed"] and report["order"] == 2


# ---- injected bugs -------------------------------------------------------------------------
@pytest.mark.parametrize("bug, broken", [
    (lambda g: {**g, "dense1.W": g["dense1.W"] * 1.01}, "dense1"),  # 1% too large
    (lambda g: {**g, "dense1.b": -g["dense1.b"]}, "dense1"),  # wrong sign
    (lambda g: {**g, "conv1.W": g["conv1.W"][::-1, ::-1]}, "conv1"),  # flipped kernel
])
@pytest.mark.slow
def test_a_corrupted_gradient_fails(bug, broken):
    report = gradcheck(build_config("seed"), digit_like(2), [3, 8], grad_hook=bug,
                       max_entries=50)
    assert not report["passed"]
    assert report["layers"][broken] > 1e-3
    assert all(e < 1e-6 for name, e in report["layers"].items() if name != broken)


def tutorial_conv_gradient(config, images, labels):
    """dL/dfilter of the seed network when max-pooling routes dL/dout to *every* tied
    maximum of a window, as the tutorial behind the design notes does."""
    model = Model(config, seed=0, dtype=F64)
    net = ref.ReferenceNet(model.config, model.params())
    x = prepare_input(images).astype(F64)
    grad = np.zeros((3, 3, 1, 8))
    for image, label in zip(x, labels, strict=True):
        trace = net.forward(image)
        net.backward(trace, label)
        conv, d_pooled = trace["conv1"], trace["flatten.dx"]  # (26, 26, 8), (13, 13, 8)
        d_conv = np.zeros_like(conv)
        for region, i, j in ref.iterate_regions(conv, 2, 2):
            for f in range(8):
                tied = region[:, :, f] == region[:, :, f].max()
                d_conv[2 * i:2 * i + 2, 2 * j:2 * j + 2, f] += tied * d_pooled[i, j, f]
        grad += ref.conv_backward(image, net.params["conv1.W"], d_conv)[0] / len(x)
    return grad


@pytest.mark.slow
def test_routing_to_every_tie_is_not_the_derivative():
    """On an exact digit (no jitter; most windows tie), one winner per window passes the
    check and the tutorial's every-tie routing fails it."""
    config, images, labels = build_config("seed"), digit_like(2), [3, 8]
    exact = gradcheck(config, images, labels, jitter=0, max_entries=50)
    assert exact["passed"]
    wrong = tutorial_conv_gradient(config, images, labels)
    report = gradcheck(config, images, labels, jitter=0, max_entries=50,
                       grad_hook=lambda g: {**g, "conv1.W": wrong})
    assert report["layers"]["conv1"] > 1e-2 and report["layers"]["dense1"] < 1e-6


@pytest.mark.slow
def test_exact_kinks_are_reported_without_jitter_and_avoided_with_it():
    """A blank input and the deep network's zero biases: every ReLU input is exactly 0.
    Without jitter no step avoids the kinks, and the check says so instead of passing."""
    config, blank = build_config("deep"), np.zeros((1, 28, 28))
    exact = gradcheck(config, blank, [5], jitter=0, max_entries=20)
    assert exact["kinks"] > 0 and not exact["passed"]
    assert exact["layers"]["conv2"] > 0.1  # one-sided slopes against ReLU'(0) = 0
    jittered = gradcheck(config, blank, [5], max_entries=20)
    assert jittered["passed"] and jittered["kinks"] == 0


# ---- helpers -------------------------------------------------------------------------------
@pytest.mark.slow
def test_loss_change_is_exact_where_subtraction_is_not():
    rng = np.random.default_rng(0)
    t, labels = rng.standard_normal((4, 10)), np.array([0, 3, 3, 9])

    def loss(logits):
        return softmax_cross_entropy(logits, labels)[0].mean()

    d = rng.standard_normal((4, 10)) * 1e-2
    assert loss_change(t, t + d, labels) == pytest.approx(loss(t + d) - loss(t), rel=1e-10)
    assert loss_change(t, t, labels) == 0.0
    t_to = t + rng.standard_normal((4, 10)) * 1e-14
    d = t_to - t  # exact; the first-order change is the mean of (p - onehot) . d
    first_order = np.mean(((softmax_cross_entropy(t, labels)[1] - np.eye(10)[labels]) * d).sum(1))
    assert loss_change(t, t_to, labels) == pytest.approx(first_order, rel=1e-6)
    assert abs((loss(t_to) - loss(t)) / first_order - 1) > 1e-3  # subtraction loses it


@pytest.mark.slow
def test_kink_margin():
    model = Model(build_config("seed", relu=True), seed=0, dtype=F64)
    x = prepare_input(digit_like(1)).astype(F64)
    jittered = x + np.random.default_rng(0).uniform(-0.01, 0.01, x.shape)
    margin = kink_margin(model, jittered)
    assert 0 < margin < 0.01
    assert np.abs(model.layers[0].forward(jittered)).min() >= margin  # ReLU inputs
    assert kink_margin(Model(build_config("seed", pool="avg"), dtype=F64), x) == np.inf
