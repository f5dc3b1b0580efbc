"""The fused pass (engine/fused.py) against the layers it stands for: same losses,
probabilities and gradients, float64 to 1e-10, on inputs with many tied pooling windows."""
import numpy as np
import pytest
from test_model import assert_same, digit_like

from convscope.engine.fast import fused
from convscope.engine.net.model import Model, build_config, prepare_input
from convscope.engine.net.train import Trainer

F64 = np.float64


def first_block(conv: dict, pool: dict, relu: bool = False) -> dict:
    conv = {"type": "conv", "filters": 4, "k": 3, "stride": 1, "pad": 0, "bias": False,
            "init": "he", **conv}
    layers = [conv] + ([{"type": "relu"}] if relu else []) + [
        {"type": "pool", "mode": "max", "size": 2, "stride": 2, **pool},
        {"type": "flatten"}, {"type": "dense", "units": 10, "init": "he"}]
    return {"preset": "custom", "layers": layers}


CONFIGS = {
    **{f"seed-{pool}{'-relu' if relu else ''}": build_config("seed", pool=pool, relu=relu)
       for pool in ("max", "min", "avg") for relu in (False, True)},
    "k5-pad2-bias": first_block({"k": 5, "pad": 2, "bias": True}, {}),
    "stride2-pad1-relu": first_block({"stride": 2, "pad": 1, "bias": True}, {}, relu=True),
    "pool3-uncovered-rows": first_block({"filters": 3}, {"size": 3, "stride": 3, "mode": "min"}),
    "one-filter": first_block({"filters": 1}, {}),
    "k7-pool1": first_block({"k": 7, "filters": 2}, {"size": 1, "stride": 1}),
    "pool7-stride3": first_block({"k": 2, "stride": 3, "filters": 6}, {"size": 7, "stride": 7}),
}


def layered(model, x, labels):
    """loss_and_grads through the layers (the fused pass switched off)."""
    saved, model.fast_pass = model.fast_pass, None
    try:
        losses, probs = model.loss_and_grads(x, labels)
        return losses, probs, {k: g.copy() for k, g in model.grads().items()}
    finally:
        model.fast_pass = saved


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("n", [1, 3, 40])
def test_fused_pass_equals_the_layers_in_float64(name, n):
    model = Model(CONFIGS[name], seed=4, dtype=F64)
    assert model.fast_pass is not None
    for layer in model.layers:  # non-zero biases, so the bias paths count
        if "b" in layer.params:
            b = layer.params["b"]
            b[...] = np.random.default_rng(1).normal(0, 0.1, b.shape)
    x = prepare_input(digit_like(n, seed=n)).astype(F64)
    labels = np.random.default_rng(n).integers(0, 10, n)
    want_losses, want_probs, want_grads = layered(model, x, labels)
    losses, probs = model.loss_and_grads(x, labels)
    assert_same(losses, want_losses)
    assert_same(probs, want_probs)
    grads = model.grads()
    assert set(grads) == set(want_grads)
    for key, g in want_grads.items():
        assert grads[key].shape == g.shape
        assert_same(grads[key], g)
        assert np.abs(g).max() > 0, key  # every gradient is exercised


def test_ties_go_to_the_first_position_of_the_window():
    """A constant image makes every window a four-way tie: the gradient of each window
    must land on its top-left pixel only, as the layers route it."""
    model = Model(build_config("seed"), seed=0, dtype=F64)
    x = np.full((1, 28, 28), 0.25)
    _, _, want = layered(model, x, np.array([3]))
    model.loss_and_grads(x, np.array([3]))
    assert_same(model.grads()["conv1.W"], want["conv1.W"])
    b = model.fast_pass._buffers(1)
    mask = b["mask"][0]  # (4, 169, 8): window offset first
    assert mask[0].all() and not mask[1:].any()


def test_float32_pass_is_close_to_the_layers():
    model = Model(build_config("seed"), seed=0)
    x = prepare_input(digit_like(32))
    labels = np.arange(32) % 10
    want_losses, _, want_grads = layered(model, x, labels)
    losses, _ = model.loss_and_grads(x, labels)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for key, g in want_grads.items():
        scale = np.abs(g).max()
        np.testing.assert_allclose(model.grads()[key], g, atol=1e-5 * scale)


def test_weights_are_views_of_one_flat_array():
    model = Model(build_config("seed"), seed=0)
    net = model.fast_pass
    for key, w in model.params().items():
        assert np.shares_memory(w, net.flat_w), key
    before = model.params()["dense1.W"].copy()
    model.set_params({k: v * 2 for k, v in model.params().items()})
    np.testing.assert_array_equal(model.params()["dense1.W"], before * 2)
    copy = model.copy()
    np.testing.assert_array_equal(copy.params()["dense1.W"], before * 2)
    assert not np.shares_memory(copy.fast_pass.flat_w, net.flat_w)


def test_other_networks_use_the_layers():
    for preset in ("deep", "lenet"):  # conv stacks have their own pass (engine/fast/stack.py)
        assert not fused.supports(Model(build_config(preset), seed=0))
    general = first_block({}, {"size": 3, "stride": 2})  # overlapping windows
    assert not fused.supports(Model(general, seed=0))


def trainer_pair(n: int, data_seed: int, **options) -> tuple[Trainer, Trainer]:
    """Trainers on ``n`` digit-like images from the same seed: the first with the fused
    pass, the second with it switched off (through the layers)."""
    images = digit_like(n, seed=data_seed)
    labels = np.arange(n) % 10
    pair = []
    for use_fused in (True, False):
        model = Model(build_config("seed"), seed=0)
        if not use_fused:
            model.fast_pass = None
        pair.append(Trainer(model, images, labels, **options))
    return pair[0], pair[1]


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("momentum,augment", [(0.0, False), (0.9, False), (0.0, True)])
def test_training_with_the_fused_pass_follows_the_layers(batch, momentum, augment):
    """Two trainers from the same seed, one with the fused pass switched off: the same
    losses (to float32 rounding) for 60 steps across a chunk of gathered patches (with
    augmentation, the same random shifts)."""
    lr = 0.005 if momentum else 0.05
    pair = trainer_pair(300, 2, lr=lr, batch_size=batch, momentum=momentum, seed=3,
                        augment=augment)
    fast, slow = ([trainer.step().loss for _ in range(60)] for trainer in pair)
    np.testing.assert_allclose(fast, slow, rtol=2e-4)
    fast_w, slow_w = (trainer.model.params() for trainer in pair)
    for key in slow_w:
        np.testing.assert_allclose(fast_w[key], slow_w[key], atol=1e-4)


@pytest.mark.slow
def test_patches_follow_the_position_in_the_data():
    """A resumed position, a new epoch's order and a changed batch size each get the
    patches of the samples they train on: the losses equal the layers' at every step."""
    fast, slow = trainer_pair(40, 5, lr=0.05, batch_size=3, seed=1)
    saved = None
    for i in range(70):
        if i == 10:
            saved = (fast.get_state(), slow.get_state())
        if i == 25:  # go back to step 10 (the order is a new array, same values)
            fast.set_state(saved[0])
            slow.set_state(saved[1])
        size = 1 + i % 4
        a, b = fast.step(size), slow.step(size)
        assert (a.epoch, a.samples_seen) == (b.epoch, b.samples_seen)
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-4)
    assert fast.epoch >= 2  # crossed epoch ends, each with a new order
