"""The conv-stack pass with its helper thread (engine/fast/pair.py) against the layers:
every product split in two, the same losses, probabilities and gradients (float64, 1e-10)."""
import threading

import numpy as np
import pytest
from test_model import assert_same, digit_like
from test_stack import CONFIGS, layered, with_biases

from convscope.engine.fast import pair
from convscope.engine.net.model import Model, prepare_input

F64 = np.float64


@pytest.fixture
def every_product_paired(monkeypatch):
    monkeypatch.setattr(pair, "PAIR_MNK", 0)
    monkeypatch.setattr(pair, "SPLIT_MNK", 0)
    calls = []
    real = pair._pool

    def counting_pool():
        calls.append(threading.current_thread().name)
        return real()

    monkeypatch.setattr(pair, "_pool", counting_pool)
    return calls


@pytest.mark.parametrize("name", ["lenet-max-relu", "deep-avg", "three-blocks-no-bias",
                                  "uncovered-rows-pool3", "pad-less-than-k-1"])
def test_split_pass_equals_the_layers_in_float64(name, every_product_paired):
    model = with_biases(Model(CONFIGS[name], seed=4, dtype=F64))
    x = prepare_input(digit_like(5, seed=2)).astype(F64)  # odd: halves of 2 and 3
    labels = np.random.default_rng(2).integers(0, 10, 5)
    want_losses, want_probs, want_grads = layered(model, x, labels)
    losses, probs = model.loss_and_grads(x, labels)
    assert every_product_paired, "the helper thread was never asked"
    assert_same(losses, want_losses)
    assert_same(probs, want_probs)
    for key, g in want_grads.items():
        assert_same(model.grads()[key], g)


def test_split_and_single_thread_give_the_same_step(every_product_paired):
    model = with_biases(Model(CONFIGS["lenet-max-relu"], seed=1, dtype=F64))
    x = prepare_input(digit_like(8, seed=3)).astype(F64)
    labels = np.arange(8) % 10
    model.loss_and_grads(x, labels)
    split = {k: g.copy() for k, g in model.grads().items()}
    asked = len(every_product_paired)
    pair.use_pair(False)
    try:
        model.loss_and_grads(x, labels)
    finally:
        pair.use_pair(True)
    assert len(every_product_paired) == asked  # switched off: the helper is not asked
    for key, g in split.items():
        assert_same(model.grads()[key], g)


def test_small_products_stay_on_one_thread(monkeypatch):
    monkeypatch.setattr(pair, "_pool", lambda: pytest.fail("small products were split"))
    a, b = np.ones((4, 3)), np.ones((3, 2))
    assert pair.dot(a, b, np.empty((4, 2))).tolist() == [[3.0, 3.0]] * 4


@pytest.mark.parametrize("name", ["lenet-max-relu", "deep-avg", "three-blocks-no-bias",
                                  "pad-less-than-k-1"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_whole_halves_of_the_batch_equal_the_layers(name, smoothing, monkeypatch,
                                                   every_product_paired):
    """Each half of the batch runs the whole pass on its own thread (its own work arrays and
    gradient), and the two gradients are averaged: the same as the layers on the batch."""
    monkeypatch.setattr(pair, "SPLIT_MIN", 2)
    model = with_biases(Model(CONFIGS[name], seed=4, dtype=F64))
    x = prepare_input(digit_like(5, seed=2)).astype(F64)  # odd: halves of 2 and 3
    labels = np.random.default_rng(2).integers(0, 10, 5)
    saved, model.fast_pass = model.fast_pass, None
    want_losses, want_probs, _ = (*model.loss_and_grads(x, labels, smoothing=smoothing), None)
    want_grads = {k: g.copy() for k, g in model.grads().items()}
    model.fast_pass = saved
    for _ in range(2):  # the second time on the work arrays of the first
        losses, probs = model.loss_and_grads(x, labels, smoothing=smoothing)
        assert len(every_product_paired) == 1  # one hand-over: the whole second half
        every_product_paired.clear()
        assert_same(losses, want_losses)
        assert_same(probs, want_probs)
        for key, g in want_grads.items():
            assert_same(model.grads()[key], g)
    twin = model.fast_pass.twin
    assert twin.flat_g is not model.fast_pass.flat_g and twin.flat_w is model.fast_pass.flat_w


def test_the_helper_never_hands_work_to_itself(monkeypatch):
    """A pass run on the helper thread (another thread's half, say) keeps its products to
    itself: handing one over would wait on the helper's own queue for ever."""
    monkeypatch.setattr(pair, "PAIR_MNK", 0)
    monkeypatch.setattr(pair, "SPLIT_MNK", 0)
    model = with_biases(Model(CONFIGS["lenet-max-relu"], seed=1, dtype=F64))
    for n in (4, pair.SPLIT_MIN):  # products, then a batch worth two whole halves
        x = prepare_input(digit_like(n, seed=1)).astype(F64)
        labels = np.arange(n) % 10
        want = layered(model, x, labels)[2]
        done = pair._pool().submit(model.loss_and_grads, x, labels)
        done.result(timeout=20)
        for key, g in want.items():
            assert_same(model.grads()[key], g)


def test_a_split_holds_back_only_the_thread_running_it(monkeypatch):
    """While this thread runs a half of a split batch it hands nothing over; another thread
    (an evaluation beside training, say) still may."""
    monkeypatch.setattr(pair, "PAIR_MNK", 0)
    seen = {}

    class Half:
        flat_g = np.zeros(3)

        def __init__(self, name):
            self.name = name

        def _loss_and_grads(self, *args):
            seen[self.name] = pair.paired(10)
            if self.name == "this thread, inside the split":
                other = threading.Thread(target=lambda: seen.update(
                    {"another thread, meanwhile": pair.paired(10)}))
                other.start()
                other.join(timeout=20)
            return np.zeros(1), np.zeros((1, 10))
    monkeypatch.setattr(pair, "_twin", lambda net: Half("the helper, with the other half"))
    pair.whole_halves(Half("this thread, inside the split"), np.zeros((2, 1)),
                      np.zeros(2, int), 0.0)
    assert seen == {"this thread, inside the split": False, "another thread, meanwhile": True,
                    "the helper, with the other half": False}
    assert pair.paired(10)  # and after it, this thread again
