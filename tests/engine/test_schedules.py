"""Schedules made from a recipe (the CLI and the app build them the same way) and where one
ends: the epoch and the learning rate that training goes on from."""
import math

import numpy as np
import pytest

from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer
from convscope.engine.recipes import recipe
from convscope.engine.schedules import (
    final_lr,
    make_schedule,
    plain_now,
    schedule_end,
    schedule_lr,
)


def test_a_recipe_makes_its_schedule():
    r = recipe("deep")
    s = make_schedule(r["lr_schedule"], r["lr"], r["epochs"], start_epoch=3)
    assert s == {"name": "cosine", "base_lr": 0.05, "start_epoch": 3, "epochs": 12}
    assert schedule_end(s) == 15
    with pytest.raises(ValueError, match="no learning-rate schedule 'warm'"):
        make_schedule("warm", 0.1, 2)


def test_the_final_lr_is_the_last_step_s():
    assert final_lr(make_schedule("constant", 0.05, 4)) == 0.05
    cosine = make_schedule("cosine", 0.05, 12, start_epoch=2)
    assert final_lr(cosine) == schedule_lr(cosine, 13) == pytest.approx(
        0.05 * 0.5 * (1 + math.cos(math.pi * 11 / 12)))
    onecycle = make_schedule("onecycle", 0.05, 18)
    assert final_lr(onecycle) == pytest.approx(0.05 / 25 / 1e4, rel=1e-3)
    assert final_lr(onecycle) < schedule_lr(onecycle, 17.9)


def test_plain_epochs_are_the_last_ones_of_the_schedule():
    s = make_schedule("onecycle", 0.05, 5, start_epoch=2, plain_epochs=2)
    assert [e for e in range(10) if plain_now(s, e)] == [5, 6]
    assert not any(plain_now(make_schedule("cosine", 0.05, 5), e) for e in range(6))
    assert not plain_now(None, 0)
    with pytest.raises(ValueError, match="plain epochs must be between 0 and the 5 epochs"):
        make_schedule("cosine", 0.05, 5, plain_epochs=6)


def test_the_trainer_distorts_no_digit_in_the_plain_epochs():
    """Three epochs of five batches, the last plain: the augmenter sees exactly the batches
    of the first two."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 40)
    model = Model(build_config("seed", filters=2), seed=0)
    trainer = Trainer(model, x, y, lr=0.01, batch_size=8, augment=("rotate",),
                      schedule=make_schedule("constant", 0.01, 3, plain_epochs=1))
    seen = []
    distort = trainer.augmenter

    def counting(images, generator):
        seen.append(trainer.epoch)
        return distort(images, generator)
    counting.kinds = distort.kinds
    trainer.augmenter = counting
    for _ in range(3):
        trainer.run_epoch()
    assert trainer.epoch == 3 and trainer.augment == ("rotate",)
    assert seen == [0] * 5 + [1] * 5


def test_a_resumed_constant_schedule_keeps_its_plain_epochs_ahead():
    """Resumed without --lr-schedule, a constant schedule starts afresh over this run's
    epochs; the saved plain epochs this run reaches stay plain when it ends where the saved
    schedule ends or before."""
    from types import SimpleNamespace

    from convscope.cli.train_schedule import schedule_and_epochs
    saved = make_schedule("constant", 0.01, 5, plain_epochs=2)  # epochs 3 and 4 plain
    defaults = {"epochs": 1, "lr_schedule": "constant"}

    def resumed(epoch, epochs=None):
        args = SimpleNamespace(lr_schedule=None, epochs=epochs, plain_epochs=None, lr=None)
        meta = {"epoch": epoch, "lr_schedule": saved}
        return schedule_and_epochs(args, meta, 0.01, defaults)[0]
    assert resumed(3, 2) == make_schedule("constant", 0.01, 2, 3, plain_epochs=2)
    assert resumed(4, 1) == make_schedule("constant", 0.01, 1, 4, plain_epochs=1)
    assert resumed(2, 2) == make_schedule("constant", 0.01, 2, 2, plain_epochs=1)
    assert resumed(1, 2) == make_schedule("constant", 0.01, 2, 1)
    assert resumed(4, 3) == make_schedule("constant", 0.01, 3, 4)  # past its end
    assert resumed(5) == make_schedule("constant", 0.01, 1, 5)
