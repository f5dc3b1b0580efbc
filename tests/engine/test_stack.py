"""The conv-stack pass (engine/fast/stack.py) against the layers it stands for: same losses,
probabilities and gradients, float64 to 1e-10, on inputs with many tied pooling windows."""
import numpy as np
import pytest
from test_model import assert_same, digit_like

from convscope.engine.fast import predict, stack
from convscope.engine.fast.predict import Predictor
from convscope.engine.net.model import Model, build_config, prepare_input
from convscope.engine.net.train import Trainer

F64 = np.float64


def conv(filters, k=3, pad=1, bias=True):
    return {"type": "conv", "filters": filters, "k": k, "pad": pad, "bias": bias, "init": "he"}


def pool(size=2, mode="max"):
    return {"type": "pool", "mode": mode, "size": size, "stride": size}


RELU, FLAT = {"type": "relu"}, {"type": "flatten"}


def dense(units):
    return {"type": "dense", "units": units, "init": "he"}


def custom(*layers):
    return {"preset": "custom", "layers": list(layers)}


CONFIGS = {
    **{f"{preset}-{mode}{'-relu' if relu else ''}": build_config(preset, 3, mode, relu)
       for preset in ("deep", "lenet") for mode in ("max", "min", "avg") for relu in (True, False)},
    "three-blocks-no-bias": custom(conv(2, bias=False), RELU, pool(), conv(3, 5, 2), RELU, pool(),
                                   conv(5, 3, 0), pool(), FLAT, dense(10)),
    "uncovered-rows-pool3": custom(conv(2, 3, 0), RELU, pool(3, "min"), conv(4, 3, 0), RELU,
                                   pool(2), FLAT, dense(7), RELU, dense(10)),
    "no-padding-k5": custom(conv(3, 5, 0), pool(), conv(4, 5, 0), RELU, pool(), FLAT, dense(10)),
    "pad-less-than-k-1": custom(conv(2, 5, 1), RELU, pool(), conv(3, 5, 3), RELU, pool(3),
                                FLAT, dense(12), RELU, dense(9), RELU, dense(10)),
    "pool1": custom(conv(2, 3, 1), pool(1), conv(2, 3, 1), RELU, pool(4), FLAT, dense(10)),
}


def with_biases(model):
    for layer in model.layers:  # non-zero biases, so the bias paths count
        if "b" in layer.params:
            b = layer.params["b"]
            b[...] = np.random.default_rng(1).normal(0, 0.1, b.shape)
    return model


def layered(model, x, labels):
    """loss_and_grads through the layers (the fast pass switched off)."""
    saved, model.fast_pass = model.fast_pass, None
    try:
        losses, probs = model.loss_and_grads(x, labels)
        return losses, probs, {k: g.copy() for k, g in model.grads().items()}
    finally:
        model.fast_pass = saved


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("n", [1, 4])
def test_stack_pass_equals_the_layers_in_float64(name, n):
    model = with_biases(Model(CONFIGS[name], seed=4, dtype=F64))
    assert isinstance(model.fast_pass, stack.StackNet)
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
    saved, model.fast_pass = model.fast_pass, None
    want = model.predict_proba(x)
    model.fast_pass = saved
    assert_same(model.predict_proba(x), want)
    saved.predictor = Predictor(saved, chunk=1, group=2)  # one image per conv pass, 2 threads
    assert_same(model.predict_proba(x), want)


@pytest.mark.parametrize("helper", [True, False])
@pytest.mark.parametrize("chunk", [1, 4, 64])
def test_predictions_in_chunks_equal_the_layers(chunk, helper):
    """Chunks on two threads (or one), a shorter last chunk, arrays reused between calls."""
    model = with_biases(Model(build_config("lenet", 2), seed=1, dtype=F64))
    model.fast_pass.predictor = Predictor(model.fast_pass, chunk=chunk)
    saved, model.fast_pass = model.fast_pass, None
    xs = [prepare_input(digit_like(n, seed=n)).astype(F64) for n in (21, 3, 21)]
    wants = [model.predict_proba(x) for x in xs]
    model.fast_pass = saved
    predict.use_helper(helper)
    try:
        for x, want in zip(xs, wants, strict=True):
            assert_same(model.predict_proba(x), want)
    finally:
        predict.use_helper(True)
    assert len(model.predict_proba(xs[0][:0])) == 0


def test_a_constant_image_sends_each_window_gradient_to_its_first_pixel():
    """Every window a tie: the layers route the gradient to the top-left pixel; so must the
    pass, whose pooling mask holds exactly the first window offset."""
    model = Model(custom(conv(2, 3, 0, bias=False), pool(), conv(3, 3, 0, bias=False), pool(),
                         FLAT, dense(10)), seed=0, dtype=F64)
    for name in ("conv1", "conv2"):
        model.layer(name).params["W"][...] = 0.1
    x = np.full((1, 28, 28), 0.25)
    _, _, want = layered(model, x, np.array([3]))
    model.loss_and_grads(x, np.array([3]))
    for key, g in want.items():
        assert_same(model.grads()[key], g)
    for block in model.fast_pass._buffers(1)[:2]:
        mask = block["mask"][0]  # (4, Hq, Wq, C): window offset first
        assert mask[0].all() and not mask[1:].any()


@pytest.mark.slow
def test_float32_pass_is_close_to_the_layers():
    model = Model(build_config("lenet"), seed=0)
    x = prepare_input(digit_like(32))
    labels = np.arange(32) % 10
    want_losses, _, want_grads = layered(model, x, labels)
    losses, _ = model.loss_and_grads(x, labels)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for key, g in want_grads.items():
        scale = np.abs(g).max()
        np.testing.assert_allclose(model.grads()[key], g, atol=1e-5 * scale)


def test_networks_it_does_not_take_use_the_layers():
    first = (conv(2), pool())
    strided = custom(*first, {**conv(2), "stride": 2}, pool(), FLAT, dense(10))
    overlapping = custom(*first, conv(2), {"type": "pool", "mode": "max", "size": 3,
                                           "stride": 2}, FLAT, dense(10))
    conv_after_conv = custom(*first, conv(2), conv(2), pool(), FLAT, dense(10))
    relu_at_the_end = custom(*first, conv(2), pool(), FLAT, dense(10), RELU)
    for config in (strided, overlapping, conv_after_conv, relu_at_the_end):
        model = Model(config, seed=0)
        assert model.fast_pass is None


def test_input_of_the_wrong_shape_is_refused_before_the_strided_view_reads_it():
    """The pass reads its zero-bordered input through a strided view: an input of any other
    shape (unbordered digits, say) is refused rather than read past its end."""
    net = Model(build_config("lenet", 4), seed=0).fast_pass
    x = prepare_input(digit_like(2, seed=1))
    labels = np.array([1, 2])
    xp = net.prepare(x)
    assert xp.shape == (2, 32, 32, 1)
    for wrong in (x[..., None], xp[:, 1:], xp[:, :, :, :0]):
        with pytest.raises(ValueError, match="do not fit"):
            net.loss_and_grads(wrong, labels)
    net.loss_and_grads(xp, labels)  # the right one goes through


def test_weights_are_views_of_one_flat_array():
    model = Model(build_config("lenet"), seed=0)
    for key, w in model.params().items():
        assert np.shares_memory(w, model.fast_pass.flat_w), key
    before = model.params()["dense2.W"].copy()
    model.set_params({k: v * 2 for k, v in model.params().items()})
    np.testing.assert_array_equal(model.params()["dense2.W"], before * 2)
    copy = model.copy()
    np.testing.assert_array_equal(copy.params()["dense2.W"], before * 2)
    assert not np.shares_memory(copy.fast_pass.flat_w, model.fast_pass.flat_w)


@pytest.mark.slow
@pytest.mark.parametrize("preset,batch", [("deep", 1), ("lenet", 6)])
@pytest.mark.parametrize("momentum,augment", [(0.0, False), (0.9, False), (0.9, True)])
def test_training_with_the_stack_pass_follows_the_layers(preset, batch, momentum, augment):
    """Two trainers from the same seed, one with the pass switched off: the same losses (to
    float32 rounding) for 40 steps, across a momentum state saved and loaded again."""
    images = digit_like(200, seed=2)
    labels = np.arange(200) % 10
    pair = []
    for use_pass in (True, False):
        model = Model(build_config(preset, 4), seed=0)
        if not use_pass:
            model.fast_pass = None
        pair.append(Trainer(model, images, labels, lr=0.01, batch_size=batch,
                            momentum=momentum, seed=3, augment=augment))
    losses = ([], [])
    for i in range(40):
        if i == 20:
            for trainer in pair:  # velocities replaced from a saved state
                trainer.set_state(trainer.get_state())
        for trainer, out in zip(pair, losses, strict=True):
            out.append(trainer.step().loss)
    np.testing.assert_allclose(losses[0], losses[1], rtol=2e-4)
    fast_w, slow_w = (trainer.model.params() for trainer in pair)
    for key in slow_w:
        np.testing.assert_allclose(fast_w[key], slow_w[key], atol=1e-4)
    if momentum:
        for key, v in pair[1].optimizer.velocity.items():
            np.testing.assert_allclose(pair[0].optimizer.velocity[key], v, atol=1e-5)
