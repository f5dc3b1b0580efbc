"""The shipped best weights (assets/best.npz, written by scripts/train_best.py): labelled,
small, and reading the embedded test digits (never trained on) almost without a mistake."""
import numpy as np
import pytest

from convscope.engine.data.datasets import ASSETS, load_dataset
from convscope.engine.files.checkpoint import load_model
from convscope.engine.net.train import evaluate
from convscope.engine.recipes import recipe

BEST = ASSETS / "best.npz"


@pytest.fixture(scope="module")
def best():
    return load_model(BEST)


def test_the_file_is_small_float32_weights_without_a_training_state(best):
    model, state, _ = best
    assert BEST.stat().st_size < 2 * 1024 * 1024
    assert state is None
    assert all(w.dtype == np.float32 for w in model.params().values())
    assert model.config["preset"] == "best"


def test_the_file_says_what_it_is(best):
    model, _, extra = best
    assert extra["preset"] == "best" and "9,000 embedded digits" in extra["trained_on"]
    assert extra["recipe"] == {k: list(v) if isinstance(v, tuple) else v
                               for k, v in recipe("best").items()}
    assert model.config["filters"] == extra["recipe"]["filters"]
    assert isinstance(extra["seed"], int) and extra["dataset"] == "mini"
    assert 0.99 <= extra["official_test_accuracy"] <= 1


@pytest.mark.slow
def test_it_reads_the_embedded_test_digits(best):
    model, _, extra = best
    mini = load_dataset("mini")
    _, accuracy, _ = evaluate(model, mini.x_test, mini.y_test)
    assert accuracy >= 0.99
    assert accuracy == pytest.approx(extra["test_accuracy"], abs=1e-6)  # as it was measured
