"""The Trainer: one sample, one batch or whole epochs, reporting through callbacks.

One flat loop: batch -> forward -> loss -> backward -> SGD step -> report. Seeded: the same
seed, data and hyperparameters give bit-identical losses. Hyperparameters (lr, batch_size,
momentum) may change between steps. Callbacks default to None and then cost nothing.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from convscope.engine.data.augment import Augmenter, parse_kinds
from convscope.engine.fast.ahead import Ahead
from convscope.engine.files.state import restore_state, training_state
from convscope.engine.net.model import Model, prepare_input
from convscope.engine.net.optim import SGD
from convscope.engine.schedules import LR_SCHEDULES, plain_now, schedule_lr  # noqa: F401

# A batch's mean loss above this has exploded (a uniform guess scores ln 10 = 2.3; a trained
# network's worst single digits score tens): the learning rate is far too high.
LOSS_LIMIT = 1000.0
_sum = np.add.reduce  # what ndarray.sum() runs, without its Python-level wrapper


class DivergenceError(RuntimeError):
    """The loss exploded (above LOSS_LIMIT) or a loss or gradient stopped being finite; the
    step was not applied."""


@dataclass(frozen=True)
class StepReport:
    step: int  # steps done so far (this one included)
    epoch: int  # epochs completed before this step
    samples_seen: int
    batch_size: int
    loss: float  # mean loss of this step's batch
    correct: int  # correctly classified samples of this batch
    epoch_loss: float  # running mean loss over this epoch so far
    epoch_accuracy: float  # running accuracy over this epoch so far
    lr: float


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based number of the epoch that just ended
    step: int
    train_loss: float
    train_accuracy: float
    test_loss: float | None
    test_accuracy: float | None


@dataclass(frozen=True)
class Snapshot:
    """Read-only copies for a viewer: weights and the probe digit's full trace."""
    step: int
    epoch: int
    params: dict = field(repr=False)
    probe_trace: dict | None = field(default=None, repr=False)


def evaluate(model: Model, images: np.ndarray, labels: np.ndarray, chunk: int | None = None,
             progress: Callable[[int, int], None] | None = None):
    """Mean loss, accuracy and probabilities (N, 10) of ``model`` on uint8 ``images``.
    ``chunk``: images per pass (default ``model.predict_chunk``); ``progress(done, total)``
    is called after each chunk (raising in it stops the evaluation)."""
    n = len(images)
    chunk = chunk or model.predict_chunk
    probs = np.empty((n, model.classes), dtype=np.float32)
    for i in range(0, n, chunk):
        probs[i:i + chunk] = model.predict_proba(prepare_input(images[i:i + chunk]), chunk)
        if progress is not None:
            progress(min(i + chunk, n), n)
    p = probs[np.arange(n), labels]
    loss = float(-np.log(np.maximum(p.astype(np.float64), 1e-300)).mean()) if n else float("nan")
    acc = float((probs.argmax(axis=1) == labels).mean()) if n else float("nan")
    return loss, acc, probs


class Trainer:
    """Owns a model, its optimizer and the position in the data.

    x_train: uint8 (N, 28, 28), y_train: uint8/int (N,). Test data is optional.
    """

    def __init__(self, model: Model, x_train, y_train, x_test=None, y_test=None, *,
                 lr=0.005, batch_size=1, momentum=0.0, seed=0, augment=False,
                 nesterov=False, weight_decay=0.0, label_smoothing=0.0, schedule=None,
                 snapshot_interval=1 / 30):
        if len(x_train) == 0:
            raise ValueError("the training set is empty")
        self.model = model
        self.x_train, self.y_train = x_train, np.asarray(y_train, dtype=np.intp)
        self.x_test = x_test
        self.y_test = None if y_test is None else np.asarray(y_test, dtype=np.intp)
        self.optimizer = SGD(lr, momentum, nesterov, weight_decay)
        # a learning-rate schedule (see schedule_lr) sets lr before every step; None keeps lr
        self.schedule: dict | None = schedule
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = augment  # kinds of engine/data/augment.py, e.g. ("shift", "rotate")
        # the loss's label smoothing; a traced step keeps the notes' one-hot target, so that
        # every number the Inspector shows is the notes' arithmetic
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {label_smoothing}")
        self.snapshot_interval = snapshot_interval
        self.on_step: Callable[[StepReport], None] | None = None
        self.on_snapshot: Callable[[Snapshot], None] | None = None
        self.on_epoch_end: Callable[[EpochReport], None] | None = None
        # asked between the chunks of a large batch and of the end-of-epoch evaluation: True
        # abandons that step or evaluation (nothing changes) with InterruptedError
        self.should_stop: Callable[[], bool] | None = None
        self.probe: np.ndarray | None = None  # uint8 (28, 28) digit traced in snapshots
        self.probe_label: int | None = None
        self.rng = np.random.default_rng(self.seed)
        self.step_count = 0
        self.epoch = 0
        self.samples_seen = 0
        self._new_epoch()
        self._last_snapshot = -math.inf
        self._ahead = Ahead()  # the model's input of upcoming samples, prepared in advance

    # ---- hyperparameters ---------------------------------------------------------------
    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = float(value)

    @property
    def momentum(self) -> float:
        return self.optimizer.momentum

    @momentum.setter
    def momentum(self, value: float) -> None:
        self.optimizer.momentum = float(value)

    @property
    def augment(self) -> tuple[str, ...]:
        return self.augmenter.kinds

    @augment.setter
    def augment(self, kinds) -> None:
        """Kinds as a tuple or "shift,rotate"; True means shifts only, False or "none" none."""
        self.augmenter = Augmenter(parse_kinds(kinds))

    # ---- the loop ----------------------------------------------------------------------
    def _new_epoch(self) -> None:
        self.order = self.rng.permutation(len(self.x_train))
        self.cursor = 0
        self.epoch_loss_sum = 0.0
        self.epoch_correct = 0
        self.epoch_seen = 0

    def step(self, batch_size: int | None = None, trace: dict | None = None) -> StepReport:
        """One SGD step on the next ``batch_size`` samples (1 = the notes' per-sample step).
        Raises DivergenceError, with the weights untouched, if the loss or a gradient is not
        finite or the loss exploded (mean above LOSS_LIMIT)."""
        if self.cursor >= len(self.order):  # an epoch end that was interrupted
            self.end_epoch()
        if self.schedule is not None:  # the one place a schedule sets the learning rate
            self.optimizer.lr = schedule_lr(self.schedule,
                                            self.epoch + self.cursor / len(self.order))
        x, labels, rng_state = self._batch(batch_size, traced=trace is not None)
        try:  # forward, loss, backward: every gradient filled
            losses, probs = self.model.loss_and_grads(
                x, labels, trace, between=lambda: self._check_stop(rng_state),
                smoothing=self.label_smoothing if trace is None else 0.0)
        except (FloatingPointError, RuntimeWarning) as e:  # NumPy set to raise on overflow
            raise self._diverged("the network overflowed") from e
        n, loss_sum = len(labels), float(_sum(losses))
        if not (math.isfinite(loss_sum) and loss_sum <= LOSS_LIMIT * n
                and math.isfinite(self.model.grad_total())):
            raise self._diverged(f"the loss became {loss_sum / n:.4g}")
        self.optimizer.step(self.model)  # the only place weights change
        correct = (int(probs[0].argmax() == labels[0]) if n == 1
                   else int(np.count_nonzero(np.equal(probs.argmax(axis=1), labels))))
        report = self._count(n, loss_sum, correct)
        if self.cursor >= len(self.order):
            self.end_epoch()
        return report

    def _diverged(self, what: str) -> DivergenceError:
        return DivergenceError(f"{what} at step {self.step_count + 1} (learning rate "
                               f"{self.lr:g}); try a lower learning rate")

    def _batch(self, batch_size: int | None, traced: bool):
        """(input, labels, rng state before augmentation or None) of the next samples."""
        n = self.batch_size if batch_size is None else int(batch_size)
        idx = self.order[self.cursor:self.cursor + n]
        labels = self.y_train[idx]
        if self.augment and not plain_now(self.schedule, self.epoch):  # new each time
            rng_state = self.rng.bit_generator.state
            x = prepare_input(self.augmenter(self.x_train[idx], self.rng))
            return (x if traced else self.model.prepare(x)), labels, rng_state
        if traced:
            return prepare_input(self.x_train[idx]), labels, None
        return self._ahead.take(self.model, self.x_train, self.order, self.cursor, len(idx)), \
            labels, None

    def _count(self, n: int, loss_sum: float, correct: int) -> StepReport:
        """Move past ``n`` samples, add them to the epoch's figures and report the step."""
        self.step_count += 1
        self.cursor += n
        self.samples_seen += n
        self.epoch_loss_sum += loss_sum
        self.epoch_correct += correct
        self.epoch_seen += n
        report = StepReport(self.step_count, self.epoch, self.samples_seen, n, loss_sum / n,
                            correct, self.epoch_loss_sum / self.epoch_seen,
                            self.epoch_correct / self.epoch_seen, self.optimizer.lr)
        if self.on_step is not None:
            self.on_step(report)
        if self.on_snapshot is not None:
            now = time.perf_counter()
            if now - self._last_snapshot >= self.snapshot_interval:
                self._last_snapshot = now
                self.on_snapshot(self.snapshot())
        return report

    def _check_stop(self, rng_state=None) -> None:
        if self.should_stop is not None and self.should_stop():
            if rng_state is not None:  # the abandoned batch's augmentation is drawn again
                self.rng.bit_generator.state = rng_state
            raise InterruptedError("stopped in the middle of a step")

    def end_epoch(self) -> EpochReport:
        """Close the current epoch: evaluate on the test split and start a new permutation."""
        test_loss = test_acc = None
        if self.x_test is not None and len(self.x_test):
            test_loss, test_acc, _ = evaluate(self.model, self.x_test, self.y_test,
                                              progress=lambda done, total: self._check_stop())
        self.epoch += 1
        seen = max(self.epoch_seen, 1)
        report = EpochReport(self.epoch, self.step_count, self.epoch_loss_sum / seen,
                             self.epoch_correct / seen, test_loss, test_acc)
        self._new_epoch()
        self._last_epoch_report = report
        if self.on_epoch_end is not None:
            self.on_epoch_end(report)
        return report

    def run_epoch(self, should_stop: Callable[[], bool] | None = None,
                  on_step: Callable[[StepReport], None] | None = None) -> EpochReport | None:
        """Steps until the current epoch ends (returns its report) or ``should_stop()`` (None).
        ``on_step(report)`` follows every step."""
        epoch = self.epoch
        while self.epoch == epoch:
            if should_stop is not None and should_stop():
                return None
            report = self.step()
            if on_step is not None:
                on_step(report)
        return self.last_epoch_report

    def fit(self, epochs: int, should_stop: Callable[[], bool] | None = None) -> list:
        """Up to ``epochs`` epochs; their reports."""
        reports = []
        for _ in range(epochs):
            r = self.run_epoch(should_stop)
            if r is None:
                break
            reports.append(r)
        return reports

    @property
    def last_epoch_report(self) -> EpochReport | None:
        return getattr(self, "_last_epoch_report", None)

    # ---- snapshots and state -----------------------------------------------------------
    def probe_trace(self) -> dict | None:
        """Forward and backward trace of the probe digit under the current weights."""
        if self.probe is None:
            return None
        trace: dict = {}
        label = 0 if self.probe_label is None else int(self.probe_label)
        x = prepare_input(self.probe[None])
        saved = {k: v.copy() for k, v in self.model.grads().items()}
        self.model.loss_and_grads(x, np.array([label]), trace)
        for layer in self.model.layers:  # leave the training gradients as they were
            for k in list(layer.grads):
                if f"{layer.name}.{k}" in saved:
                    layer.grads[k] = saved[f"{layer.name}.{k}"]
                else:  # no training step yet: no gradient before, none after
                    del layer.grads[k]
        return trace

    def snapshot(self) -> Snapshot:
        params = {k: v.copy() for k, v in self.model.params().items()}
        return Snapshot(self.step_count, self.epoch, params, self.probe_trace())

    def get_state(self) -> dict:
        """Everything needed to resume exactly: weights, optimizer, position, rng."""
        return training_state(self)

    def set_state(self, state: dict, hyperparameters: bool = True) -> None:
        restore_state(self, state, hyperparameters)
