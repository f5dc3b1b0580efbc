"""The Trainer: one sample, one batch or whole epochs, reporting through callbacks.

One flat loop: batch -> forward -> loss -> backward -> SGD step -> report. Seeded: the same
seed, data and hyperparameters give bit-identical losses. Hyperparameters (lr, batch_size,
momentum) may change between steps. Callbacks default to None and then cost nothing.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from convscope.engine.data.augment import Augmenter, parse_kinds
from convscope.engine.net.model import INPUT_SHAPE, Model, prepare_input
from convscope.engine.net.optim import LR_SCHEDULES, SGD, schedule_lr  # noqa: F401

# A batch's mean loss above this has exploded (a uniform guess scores ln 10 = 2.3; a trained
# network's worst single digits score tens): the learning rate is far too high.
LOSS_LIMIT = 1000.0
# A batch (or an evaluation) larger than this many multiply-adds runs in chunks: memory stays
# bounded and ``Trainer.should_stop`` is asked between chunks (~0.1-0.4 s each on 2 cores).
CHUNK_MACS = 1e8
# The fused pass (engine/fused.py) gathers the conv patches of this many bytes of upcoming
# samples at once (256 digits of the seed net).
PATCH_CHUNK_BYTES = 6_300_000

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


def macs_per_sample(model: Model) -> int:
    """Multiply-adds of one sample's forward pass through the conv and dense layers."""
    shape, total = (*INPUT_SHAPE, 1), 0
    for layer in model.layers:
        out = layer.out_shape(shape)
        if layer.kind == "conv":
            total += out[0] * out[1] * layer.params["W"].size
        elif layer.kind == "dense":
            total += layer.params["W"].size
        shape = out
    return total


def chunk_size(model: Model, budget: float = CHUNK_MACS) -> int:
    """Samples per chunk for ``model``: 1,607 for the seed net, 2 for lenet with 64 filters."""
    return max(1, int(budget // max(1, macs_per_sample(model))))


def evaluate(model: Model, images: np.ndarray, labels: np.ndarray, chunk: int | None = None,
             progress: Callable[[int, int], None] | None = None):
    """Mean loss, accuracy and probabilities (N, 10) of ``model`` on uint8 ``images``.
    ``chunk``: images per pass (default 256, fewer for large networks); ``progress(done,
    total)`` is called after each chunk (raising in it stops the evaluation)."""
    n = len(images)
    chunk = chunk or min(256, chunk_size(model))
    probs = np.empty((n, 10), dtype=np.float32)
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
                 nesterov=False, weight_decay=0.0, schedule=None, snapshot_interval=1 / 30):
        if len(x_train) == 0:
            raise ValueError("the training set is empty")
        self.model = model
        self.x_train, self.y_train = x_train, np.asarray(y_train, dtype=np.intp)
        self.x_test = x_test
        self.y_test = None if y_test is None else np.asarray(y_test, dtype=np.intp)
        self.optimizer = SGD(lr, momentum, nesterov, weight_decay)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = augment  # kinds of engine/data/augment.py, e.g. ("shift", "rotate")
        # a learning-rate schedule (see schedule_lr) sets lr before every step; None keeps lr
        self.schedule = schedule
        self.snapshot_interval = snapshot_interval
        self.on_step: Callable[[StepReport], None] | None = None
        self.on_snapshot: Callable[[Snapshot], None] | None = None
        self.on_epoch_end: Callable[[EpochReport], None] | None = None
        # asked between the chunks of a large batch and of the end-of-epoch evaluation: True
        # abandons that step or evaluation (nothing changes) with InterruptedError
        self.should_stop: Callable[[], bool] | None = None
        self.chunk = chunk_size(model)  # larger batches run in chunks of this many samples
        self.probe: np.ndarray | None = None  # uint8 (28, 28) digit traced in snapshots
        self.probe_label: int | None = None
        self.rng = np.random.default_rng(self.seed)
        self.step_count = 0
        self.epoch = 0
        self.samples_seen = 0
        self._new_epoch()
        self._last_snapshot = -math.inf
        self._slots_model = None  # the model _weight_slots was built for
        self._patch_chunk = None  # (order, fused pass, first position, patches)

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
        if self.schedule is not None:
            self.lr = schedule_lr(self.schedule, self.epoch + self.cursor / len(self.order))
        bs = self.batch_size if batch_size is None else int(batch_size)
        idx = self.order[self.cursor:self.cursor + bs]
        n = len(idx)
        rng_state = self.rng.bit_generator.state if self.augment else None
        fused = self.model.fused
        if trace is not None or n > max(self.chunk, getattr(fused, "max_batch", 0)):
            fused = None
        images = None if fused is not None and not self.augment else self.x_train[idx]
        if self.augment:
            images = self.augmenter(images, self.rng)
        labels = self.y_train[idx]
        try:
            if fused is not None:
                patches = (fused.patches(prepare_input(images)) if self.augment
                           else self._patches(fused, n))
                losses, probs = fused.loss_and_grads(patches, labels)
            elif trace is None and n > self.chunk:
                losses, probs = self._chunked_loss_and_grads(prepare_input(images), labels,
                                                             rng_state)
            else:
                losses, probs = self.model.loss_and_grads(prepare_input(images), labels, trace)
        except (FloatingPointError, RuntimeWarning) as e:  # NumPy set to raise on overflow
            raise DivergenceError(
                f"the network overflowed at step {self.step_count + 1} (learning rate "
                f"{self.lr:g}); try a lower learning rate") from e
        loss_sum = float(_sum(losses))
        weights = None
        if fused is not None:
            grad_total = fused.grad_total()
        else:
            slots = self._weight_slots()
            weights = [(key, params[k], grads[k]) for key, params, grads, k in slots]
            # one finite check over every gradient: a sum of finite float32 sums stays finite
            # as a Python float, and an inf or nan in any of them carries through to the total
            grad_total = 0.0
            for _, _, g in weights:
                grad_total += float(_sum(g, axis=None))
        exploded = not (math.isfinite(loss_sum) and loss_sum <= LOSS_LIMIT * n)
        if exploded or not math.isfinite(grad_total):
            raise DivergenceError(
                f"the loss became {loss_sum / n:.4g} at step {self.step_count + 1} "
                f"(learning rate {self.lr:g}); try a lower learning rate")
        if weights is None:
            self.optimizer.update_flat(fused)
        else:
            self.optimizer.update(weights)
        if n == 1:
            correct = int(probs[0].argmax() == labels[0])
        else:
            correct = int(np.count_nonzero(np.equal(probs.argmax(axis=1), labels)))
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
        if self.cursor >= len(self.order):
            self.end_epoch()
        return report

    def _patches(self, fused, n: int) -> np.ndarray:
        """The fused pass's patches of the next ``n`` samples, gathered for up to
        PATCH_CHUNK_BYTES of upcoming samples at once (the input does not change)."""
        at, chunk = self.cursor, self._patch_chunk
        if (chunk is None or chunk[0] is not self.order or chunk[1] is not fused
                or not chunk[2] <= at <= at + n <= chunk[2] + len(chunk[3])):
            per_sample = fused.rows * fused.kk * fused.dtype.itemsize
            ahead = max(n, PATCH_CHUNK_BYTES // per_sample)
            images = self.x_train[self.order[at:at + ahead]]
            chunk = self._patch_chunk = (self.order, fused, at,
                                         fused.patches(prepare_input(images)))
        start = at - chunk[2]
        return chunk[3][start:start + n]

    def _weight_slots(self) -> list:
        """(key, layer.params, layer.grads, name) for every weight of the model, e.g.
        ("conv1.W", conv1.params, conv1.grads, "W"): built once per model, so a step does not
        rebuild the params()/grads() dicts (the arrays themselves are looked up every step)."""
        if self._slots_model is not self.model:
            self._slots = [(f"{layer.name}.{k}", layer.params, layer.grads, k)
                           for layer in self.model.layers for k in layer.params]
            self._slots_model = self.model
        return self._slots

    def _chunked_loss_and_grads(self, x, labels, rng_state):
        """loss_and_grads of a large batch, chunk by chunk: the same mean gradient (left in
        the model's grads), bounded memory, and ``should_stop`` asked between chunks."""
        n, chunk = len(labels), self.chunk
        losses, probs, total = [], [], None
        for i in range(0, n, chunk):
            self._check_stop(rng_state)
            part_losses, part_probs = self.model.loss_and_grads(x[i:i + chunk],
                                                                labels[i:i + chunk])
            losses.append(part_losses)
            probs.append(part_probs)
            weight = len(part_losses) / n  # each chunk's gradient is the mean over its samples
            if total is None:
                total = {k: g * g.dtype.type(weight) for k, g in self.model.grads().items()}
            else:
                for k, g in self.model.grads().items():
                    total[k] += g * g.dtype.type(weight)
        for k, g in self.model.grads().items():
            g[...] = total[k]
        return np.concatenate(losses), np.concatenate(probs)

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

    def run_epoch(self, should_stop: Callable[[], bool] | None = None) -> EpochReport | None:
        """Steps until the current epoch ends (returns its report) or ``should_stop()``."""
        epoch = self.epoch
        while self.epoch == epoch:
            if should_stop is not None and should_stop():
                return None
            self.step()
        return self.last_epoch_report

    def fit(self, epochs: int, should_stop: Callable[[], bool] | None = None) -> list:
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
        return {
            "params": {k: v.copy() for k, v in self.model.params().items()},
            "velocity": self.optimizer.state(),
            "order": self.order.copy(),
            "meta": {
                "step": self.step_count, "epoch": self.epoch, "cursor": self.cursor,
                "samples_seen": self.samples_seen, "lr": self.lr,
                "batch_size": self.batch_size, "momentum": self.momentum, "seed": self.seed,
                "epoch_loss_sum": self.epoch_loss_sum, "epoch_correct": self.epoch_correct,
                "epoch_seen": self.epoch_seen,
                "rng": copy.deepcopy(self.rng.bit_generator.state),
                "nesterov": self.optimizer.nesterov,
                "weight_decay": self.optimizer.weight_decay, "augment": list(self.augment),
                **({"lr_schedule": dict(self.schedule)} if self.schedule else {}),
            },
        }

    def set_state(self, state: dict, hyperparameters: bool = True) -> None:
        meta = state["meta"]
        if len(state["order"]) != len(self.x_train):
            raise ValueError("the saved position does not fit this training set")
        self.model.set_params(state["params"])
        self.optimizer.load_state(state["velocity"])
        self.order = np.array(state["order"])
        self.step_count, self.epoch = int(meta["step"]), int(meta["epoch"])
        self.cursor, self.samples_seen = int(meta["cursor"]), int(meta["samples_seen"])
        self.epoch_loss_sum = float(meta["epoch_loss_sum"])
        self.epoch_correct, self.epoch_seen = int(meta["epoch_correct"]), int(meta["epoch_seen"])
        self.rng.bit_generator.state = copy.deepcopy(meta["rng"])
        if hyperparameters:
            self.lr, self.momentum = meta["lr"], meta["momentum"]
            self.batch_size = int(meta["batch_size"])
            opt = self.optimizer
            opt.nesterov = bool(meta.get("nesterov", opt.nesterov))
            opt.weight_decay = float(meta.get("weight_decay", opt.weight_decay))
            self.augment = meta.get("augment", self.augment)
            self.schedule = meta.get("lr_schedule", self.schedule)
