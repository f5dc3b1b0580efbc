"""Saliency: d(class score)/d(input) from the layers' backward pass, checked numerically."""
import numpy as np
import pytest

from convscope.engine.net.layers import softmax
from convscope.engine.net.model import Model, build_config
from convscope.engine.tools.saliency import saliency


def drawn_one() -> np.ndarray:
    """A vertical bar in network-input scale (28, 28), float64, with a little noise so that
    no max-pool window holds a tie (centred differences stay off the kinks)."""
    x = np.full((28, 28), -0.5)
    x[5:23, 13:16] = 0.5
    return x + np.random.default_rng(1).uniform(-0.01, 0.01, x.shape)


def score(model, x, c, kind):
    t = model.forward(x[None])
    return float((t if kind == "logit" else softmax(t))[0, c])


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["seed", "deep"])
@pytest.mark.parametrize("kind", ["logit", "prob"])
def test_matches_centred_differences(preset, kind):
    model = Model(build_config(preset), seed=3).copy(np.float64)
    x = drawn_one()
    c = 1
    g = saliency(model, x, c, kind)
    assert g.shape == x.shape
    eps = 1e-5
    for i, j in [(8, 14), (14, 13), (20, 15), (12, 11), (3, 3)]:
        xp, xm = x.copy(), x.copy()
        xp[i, j] += eps
        xm[i, j] -= eps
        numeric = (score(model, xp, c, kind) - score(model, xm, c, kind)) / (2 * eps)
        rel = abs(numeric - g[i, j]) / max(1e-8, abs(numeric) + abs(g[i, j]))
        assert rel < 1e-6, (i, j, numeric, g[i, j])


def test_shape_dtype_and_ink():
    model = Model(build_config("seed"), seed=0)
    x = drawn_one().astype(np.float32)
    g = saliency(model, x, 7)
    assert g.shape == (28, 28) and g.dtype == np.float32
    assert np.all(np.isfinite(g))
    ink = x > 0
    assert np.count_nonzero(g[ink]) == ink.sum()  # every ink pixel moves the score
    # a batch gives each image its own map
    batch = np.stack([x, np.zeros_like(x)])
    gb = saliency(model, batch, 7)
    assert gb.shape == (2, 28, 28)
    np.testing.assert_allclose(gb[0], g, rtol=1e-5, atol=1e-7)


def test_leaves_the_model_as_it_was():
    model = Model(build_config("deep"), seed=0)
    x = drawn_one().astype(np.float32)
    model.loss_and_grads(x[None], np.array([1]))
    weights = {k: v.copy() for k, v in model.params().items()}
    grads = {k: v.copy() for k, v in model.grads().items()}
    saliency(model, x, 4)
    assert model.layers[0].need_dx is False
    for k, v in model.params().items():
        np.testing.assert_array_equal(v, weights[k])
    assert set(model.grads()) == set(grads)
    for k, v in model.grads().items():
        np.testing.assert_array_equal(v, grads[k])


@pytest.mark.slow
def test_bad_arguments():
    model = Model(build_config("seed"), seed=0)
    x = np.zeros((28, 28), np.float32)
    with pytest.raises(ValueError, match="class_index"):
        saliency(model, x, 10)
    with pytest.raises(ValueError, match="score"):
        saliency(model, x, 1, score="loss")
