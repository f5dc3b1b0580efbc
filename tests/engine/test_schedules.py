"""Schedules made from a recipe (the CLI and the app build them the same way) and where one
ends: the epoch and the learning rate that training goes on from."""
import math

import pytest

from convscope.engine.recipes import recipe
from convscope.engine.schedules import final_lr, make_schedule, schedule_end, schedule_lr


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
