"""Fine-tuning a run on the learner's own digits (engine/data/my_digits.py).

The run's own Trainer takes the steps, so they count as steps of the run like any others: for
each of ``epochs`` epochs its training data is replaced by a mixed epoch (every own training
digit once, dataset digits for the rest, ``mixed``); afterwards the run's data, order and place
in its epoch are put back. A mixed epoch is not one of the run's epochs: the epoch count stays
and no epoch report is made. Before and after, the network is measured on the held-back own
digits and on the test split.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convscope.engine.data.my_digits import Digits, mixed
from convscope.engine.net.train import Trainer, evaluate


@dataclass(frozen=True)
class FineTuneReport:
    epochs: int  # epochs done (fewer than asked when stopped)
    samples_before: int  # samples the run had seen when fine-tuning began
    steps: int  # training steps taken
    n_train: int  # own digits trained on
    n_held: int  # own digits held back for testing
    skipped: int  # own digits whose class the network does not have
    held_before: float | None  # accuracy on the held-back digits (None: none held back)
    held_after: float | None
    test_before: float | None  # accuracy on the test split (None: no test split)
    test_after: float | None


def own_arrays(own: Digits, class_names: list[str]):
    """(x_train, y_train, x_held, y_held, skipped): own digits as class indices of the run."""
    index = {name: i for i, name in enumerate(class_names)}
    known = np.array([name in index for name in own.labels], dtype=bool)
    y = np.array([index.get(name, -1) for name in own.labels], dtype=np.intp)
    held = own.held_back & known
    train = ~own.held_back & known
    return own.images[train], y[train], own.images[held], y[held], int((~known).sum())


def _accuracy(model, x, y) -> float | None:
    return None if x is None or len(x) == 0 else float(evaluate(model, x, y)[1])


def fine_tune(trainer: Trainer, own: Digits, class_names: list[str], own_share: float = 0.5,
              epochs: int = 5, should_stop: Callable[[], bool] | None = None) -> FineTuneReport:
    """Train ``trainer``'s network on ``own`` mixed with its dataset (see the module)."""
    x_own, y_own, x_held, y_held, skipped = own_arrays(own, class_names)
    if len(x_own) == 0:
        raise ValueError("no own digits to train on (of classes this network knows)")
    model = trainer.model
    held_before = _accuracy(model, x_held, y_held)
    test_before = _accuracy(model, trainer.x_test, trainer.y_test)
    saved = (trainer.x_train, trainer.y_train, trainer.order, trainer.cursor,
             trainer.epoch_loss_sum, trainer.epoch_correct, trainer.epoch_seen)
    # a mixed epoch is not an epoch of the run: it neither counts nor reports as one
    epoch, x_test, on_epoch_end = trainer.epoch, trainer.x_test, trainer.on_epoch_end
    last_report = trainer.last_epoch_report
    trainer.x_test, trainer.on_epoch_end = None, None
    first_step, first_samples, done = trainer.step_count, trainer.samples_seen, 0
    try:
        for _ in range(epochs):
            trainer.x_train, trainer.y_train = mixed(saved[0], saved[1], x_own, y_own,
                                                     own_share, trainer.rng)
            trainer._new_epoch()
            finished = trainer.run_epoch(should_stop) is not None
            trainer.epoch = epoch
            if not finished:
                break
            done += 1
    finally:
        (trainer.x_train, trainer.y_train, trainer.order, trainer.cursor,
         trainer.epoch_loss_sum, trainer.epoch_correct, trainer.epoch_seen) = saved
        trainer.epoch, trainer.x_test, trainer.on_epoch_end = epoch, x_test, on_epoch_end
        trainer._last_epoch_report = last_report
    return FineTuneReport(done, first_samples, trainer.step_count - first_step, len(x_own),
                          len(x_held), skipped, held_before, _accuracy(model, x_held, y_held),
                          test_before, _accuracy(model, trainer.x_test, trainer.y_test))
