"""Label smoothing: the loss is -sum_k target[k] log probs[k] with the target 1 - s on the
label plus s/K on every class, its gradient is what softmax_cross_entropy returns, and the
fast passes follow the layers with it (float64, 1e-10)."""
import numpy as np
import pytest
from test_model import assert_same, digit_like

from convscope.engine.fast import fused, stack
from convscope.engine.files.state import restore_state, training_state
from convscope.engine.net import names
from convscope.engine.net.layers import softmax, softmax_cross_entropy
from convscope.engine.net.model import Model, build_config, prepare_input
from convscope.engine.net.train import Trainer

F64 = np.float64


def mean_loss(t, labels, s):
    """The smoothed loss written out: the mean over the batch of -sum target * log softmax."""
    n, k = t.shape
    target = np.full((n, k), s / k)
    target[np.arange(n), labels] += 1 - s
    return float((-(target * np.log(softmax(t))).sum(axis=1)).mean())


@pytest.mark.parametrize("s", [0.0, 0.1, 0.5])
def test_the_loss_and_its_gradient(s):
    rng = np.random.default_rng(3)
    t = rng.normal(0, 3, (5, 10))
    labels = rng.integers(0, 10, 5)
    losses, probs, dt = softmax_cross_entropy(t, labels, s)
    assert_same(losses.mean(), mean_loss(t, labels, s))
    assert_same(probs, softmax(t))
    numeric = np.zeros_like(t)
    h = 1e-6
    for idx in np.ndindex(t.shape):
        up, down = t.copy(), t.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (mean_loss(up, labels, s) - mean_loss(down, labels, s)) / (2 * h)
    np.testing.assert_allclose(dt, numeric, atol=1e-8)
    np.testing.assert_allclose(dt.sum(axis=1), 0, atol=1e-15)  # the target sums to 1, as probs do


def layered(model, x, labels, s):
    saved, model.fast_pass = model.fast_pass, None
    try:
        losses, probs = model.loss_and_grads(x, labels, smoothing=s)
        return losses, probs, {k: g.copy() for k, g in model.grads().items()}
    finally:
        model.fast_pass = saved


@pytest.mark.parametrize("preset,kind", [("seed", fused.FusedNet), ("lenet", stack.StackNet)])
@pytest.mark.parametrize("n", [1, 4])
def test_the_fast_passes_smooth_as_the_layers_do(preset, kind, n):
    model = Model(build_config(preset, 3), seed=2, dtype=F64)
    assert isinstance(model.fast_pass, kind)
    x = prepare_input(digit_like(n, seed=n)).astype(F64)
    labels = np.random.default_rng(n).integers(0, 10, n)
    want_losses, want_probs, want_grads = layered(model, x, labels, 0.1)
    plain_grads = layered(model, x, labels, 0.0)[2]
    losses, probs = model.loss_and_grads(x, labels, smoothing=0.1)
    assert_same(losses, want_losses)
    assert_same(probs, want_probs)
    for key, g in model.grads().items():
        assert_same(g, want_grads[key])
    assert any(np.abs(want_grads[k] - plain_grads[k]).max() > 1e-6 for k in plain_grads)


def test_a_traced_step_keeps_the_notes_one_hot_target():
    """The Inspector explains dL/dt = out - onehot(label): a traced step records exactly that,
    while the steps around it train with the smoothed target."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 16)
    trainer = Trainer(Model(build_config("seed", 2), seed=0), x, y, lr=0.01,
                      label_smoothing=0.2)
    trace: dict = {}
    trainer.step(trace=trace)
    onehot = np.eye(10)[trace[names.LABELS]]
    assert_same(trace[names.DL_DT], trace[names.PROBS] - onehot, rel=1e-6)


def test_a_state_from_before_smoothing_resumes_without_it():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 16)
    old = Trainer(Model(build_config("seed", 2), seed=0), x, y, lr=0.01)
    state = training_state(old)
    del state["meta"]["label_smoothing"]  # as files saved before it existed
    smoothed = Trainer(Model(build_config("seed", 2), seed=0), x, y, lr=0.01,
                       label_smoothing=0.1)
    restore_state(smoothed, state)
    assert smoothed.label_smoothing == 0.0
    state["meta"]["label_smoothing"] = 0.2
    restore_state(smoothed, state)
    assert smoothed.label_smoothing == 0.2
    with pytest.raises(ValueError, match="label smoothing must be in"):
        Trainer(Model(build_config("seed", 2), seed=0), x, y, label_smoothing=1.5)
