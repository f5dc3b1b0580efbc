"""The inspector's arithmetic equals an independent recomputation from the layer code."""
import numpy as np
import pytest

from convscope.engine.net.layers import Conv2D, Dense, Flatten, Pool2D, softmax
from convscope.engine.net.model import Model, build_config, prepare_input
from convscope.engine.net.train import Trainer
from convscope.engine.tools.explain import explain, explain_update, fmt, traced_step, wrap


def digits(n, seed=0):
    """uint8 (n, 28, 28): a few bright strokes on a black background (many pool ties)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for img in out:
        for _ in range(3):
            r, c = rng.integers(4, 24, 2)
            img[r - 3:r + 4, c - 1:c + 2] = rng.integers(120, 256)
    return out


@pytest.fixture(scope="module")
def seed_step():
    """One traced step of the notes' network on a fixed sample, and the independent layers."""
    model = Model(build_config("seed"), seed=7)
    before = {k: v.copy() for k, v in model.params().items()}
    trace = {}
    image, label = digits(1, seed=3), np.array([4])
    model.loss_and_grads(prepare_input(image), label, trace)
    # the same network rebuilt from the layer code with the same weights
    conv, pool, flat, dense = Conv2D(1, 8, need_dx=False), Pool2D("max"), Flatten(), Dense(1352, 10)
    conv.params["W"][...] = before["conv1.W"]
    dense.params["W"][...], dense.params["b"][...] = before["dense1.W"], before["dense1.b"]
    x = prepare_input(image)
    t = dense.forward(flat.forward(pool.forward(conv.forward(x))))
    probs = softmax(t)
    dt = probs.copy()
    dt[0, 4] -= 1
    d_conv = pool.backward(flat.backward(dense.backward(dt)))
    conv.backward(d_conv)
    ref = {"x": x[0].astype(np.float64), "conv": conv.forward(x)[0], "t": t[0], "probs": probs[0],
           "dt": dt[0], "d_conv": d_conv[0], "dW_conv": conv.grads["W"],
           "dW_dense": dense.grads["W"], "W": before["conv1.W"].astype(np.float64)}
    return model, trace, before, ref


@pytest.mark.slow
def test_conv_cell_is_the_sum_of_nine_products(seed_step):
    model, trace, before, ref = seed_step
    for i, j, f in [(0, 0, 0), (5, 7, 3), (12, 13, 7), (25, 25, 2)]:
        e = explain(model, trace, "conv1", (i, j, f), params=before)
        region = ref["x"][i:i + 3, j:j + 3]
        expected = np.sum(region * ref["W"][:, :, 0, f])
        assert len(e.terms) == 9
        assert np.allclose(e.terms, (region * ref["W"][:, :, 0, f]).ravel())
        assert e.value == pytest.approx(expected, abs=1e-6)
        assert e.value == pytest.approx(float(ref["conv"][i, j, f]), abs=1e-5)
        assert "9 products" in e.text()


@pytest.mark.slow
def test_pooled_value_is_the_max_of_its_window_and_ties_are_called_out(seed_step):
    model, trace, before, ref = seed_step
    ties = 0
    for i in range(13):
        for c in range(8):
            e = explain(model, trace, "pool1", (i, 6, c), params=before)
            window = ref["conv"][2 * i:2 * i + 2, 12:14, c]
            assert e.value == window.max() == e.stored
            assert sorted(e.terms) == sorted(window.ravel().astype(np.float64))
            tied = np.count_nonzero(window == window.max()) > 1
            ties += tied
            assert ("tie:" in e.text()) == tied
            win = np.argwhere(trace["pool1.mask"][0, 2 * i:2 * i + 2, 12:14, c])
            first = np.argwhere(window == window.max())[0]  # the first in row-major order
            assert (win[0] == first).all()
    assert ties > 0  # the black background gives tied windows


@pytest.mark.slow
def test_softmax_loss_and_softmax_backward_entries(seed_step):
    model, trace, before, ref = seed_step
    t = ref["t"].astype(np.float64)
    for k in range(10):
        e = explain(model, trace, "probs", (k,), params=before)
        assert e.value == pytest.approx(np.exp(t[k]) / np.exp(t).sum(), rel=1e-5)
        assert explain(model, trace, "logits", (k,), params=before).value == pytest.approx(
            float(t[k]), abs=1e-5)
        d_out = explain(model, trace, "dL_dout", (k,), params=before).value
        assert d_out == (pytest.approx(-1 / ref["probs"][4], rel=1e-5) if k == 4 else 0.0)
        dldt = explain(model, trace, "dL_dt", (k,), params=before)
        assert dldt.value == pytest.approx(float(ref["dt"][k]), abs=1e-6)
    loss = explain(model, trace, "loss", (), params=before)
    assert loss.value == pytest.approx(-np.log(ref["probs"][4]), rel=1e-5)


@pytest.mark.slow
def test_gradient_entries_match_the_layer_backward(seed_step):
    model, trace, before, ref = seed_step
    for di, dj, f in [(0, 0, 0), (1, 2, 4), (2, 2, 7)]:
        e = explain(model, trace, "conv1.dW", (di, dj, 0, f), params=before)
        # sum over every region of region value x dL/dout
        expected = np.sum(ref["x"][di:di + 26, dj:dj + 26] * ref["d_conv"][:, :, f])
        assert e.value == pytest.approx(expected, abs=1e-7)
        assert e.value == pytest.approx(float(ref["dW_conv"][di, dj, 0, f]), abs=1e-6)
        assert len(e.terms) == 26 * 26
    for r, k in [(0, 4), (700, 1), (1351, 9)]:
        e = explain(model, trace, "dense1.dW", (r, k), params=before)
        assert e.value == pytest.approx(float(ref["dW_dense"][r, k]), abs=1e-7)
    for i, j, c in [(0, 0, 0), (4, 5, 3), (25, 24, 6)]:
        e = explain(model, trace, "pool1.dx", (i, j, c), params=before)
        assert e.value == pytest.approx(float(ref["d_conv"][i, j, c]), abs=1e-9)
        won = trace["pool1.mask"][0, i, j, c]
        assert (e.value == 0) or won


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["seed", "deep", "lenet"])
@pytest.mark.parametrize("pool", ["max", "avg", "min"])
def test_every_traced_cell_is_explained_with_its_stored_value(preset, pool):
    model = Model(build_config(preset, pool=pool), seed=1)
    trace = {}
    model.loss_and_grads(prepare_input(digits(1, seed=5)), np.array([2]), trace)
    rng = np.random.default_rng(0)
    for key, arr in trace.items():
        if key in ("input", "labels") or key.endswith(".mask"):
            continue
        weights = key.endswith((".dW", ".db"))
        shape = () if key == "loss" else arr.shape if weights else arr.shape[1:]
        for _ in range(3):
            index = tuple(int(rng.integers(s)) for s in shape)
            e = explain(model, trace, key, index)
            assert e.value == pytest.approx(e.stored, rel=1e-4, abs=1e-7), (key, index)
            assert e.lines and e.title


@pytest.mark.slow
def test_traced_step_keeps_the_weights_of_the_forward_pass_and_explains_the_update():
    model = Model(build_config("seed"), seed=2)
    trainer = Trainer(model, digits(20), np.arange(20) % 10, lr=0.05, seed=1)
    start = {k: v.copy() for k, v in model.params().items()}
    st = traced_step(trainer)
    assert st.step == 1 and st.trace["input"].shape == (1, 28, 28)
    for k in start:
        assert np.array_equal(st.params_before[k], start[k])
        assert np.array_equal(st.params_after[k], model.params()[k])
    assert st.loss == pytest.approx(float(st.trace["loss"][0]))
    # the conv cell explained with the pre-step weights equals the traced value exactly
    e = explain(model, st.trace, "conv1", (10, 10, 0), params=st.params_before)
    assert e.value == pytest.approx(e.stored, abs=1e-6)
    for key, index in [("conv1.W", (1, 1, 0, 3)), ("dense1.W", (500, 7)), ("dense1.b", (2,))]:
        u = explain_update(key, index, st.params_before, st.params_after,
                           st.trace[key.replace(".", ".d")], st.lr)
        assert u.value == u.stored  # float32 w - lr * grad, bit for bit
        assert "after" in u.text()


@pytest.mark.slow
@pytest.mark.parametrize("width", [24, 30, 40, 64])
def test_conv_arithmetic_fits_the_width_with_whole_matrix_rows_and_products(seed_step, width):
    model, trace, before, ref = seed_step
    i, j, f = 9, 14, 5
    lines = explain(model, trace, "conv1", (i, j, f), params=before).text(width).split("\n")
    assert max(len(line) for line in lines) <= width
    words = [line.split() for line in lines]
    region, w = ref["x"][i:i + 3, j:j + 3], ref["W"][:, :, 0, f]
    for m in (region, w):  # every row's three numbers together on one line
        for row in m:
            shown = [[f"{v:.{d}g}" for v in row] for d in (3, 2)]  # 2 digits if 3 are too wide
            assert any(ws[k:k + 3] in shown for ws in words for k in range(len(ws))), row
    for a, b in zip(region.ravel(), w.ravel(), strict=True):  # a product is never split
        assert any(f"{fmt(a)} * {fmt(b)}" in line for line in lines)


def test_long_lines_break_between_terms_never_inside_one():
    line = "average = (0.01017 + 0.101 + 0.1245 + 0.1626) / 4 = 0.09957"
    assert wrap(line, 64) == [line]
    assert wrap(line, 50) == ["average = (0.01017 + 0.101 + 0.1245 + 0.1626) / 4",
                              "    = 0.09957"]  # at an " = " when that is enough
    for width in (20, 30, 40):
        parts = wrap(line, width)
        assert all(len(p) <= width for p in parts)
        assert " ".join(p.strip() for p in parts) == line  # nothing lost, no token cut
        assert all(p.startswith("    ") for p in parts[1:])
    assert wrap("  x[9,14] * W[0,0] = -0.5 * 0.04018 = -0.02009", 30) == [
        "  x[9,14] * W[0,0]", "      = -0.5 * 0.04018", "      = -0.02009"]
