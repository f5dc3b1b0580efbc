"""A bounded history of training states, to scrub back through and resume from.

``Timeline`` keeps ``Trainer.get_state()`` every ``every`` steps and the loss of every step.
Memory is bounded by ``max_bytes``: when the snapshots outgrow it every second one is dropped
(and ``every`` doubles), so a long run stays covered from start to end; when the loss curve
outgrows a quarter of it, neighbouring points are averaged in pairs.

Every snapshot also keeps the smoothed loss of the moment it was taken (an exponential average
over about ``SMOOTH_SAMPLES`` samples) and, when one was measured there, its test loss. Thinning
never drops the run's best snapshot (lowest test loss, else lowest smoothed loss), and
``last_good_step`` finds the newest snapshot whose smoothed loss is within ``GOOD_MARGIN`` of the
best so far: where to go back to after a divergence, rather than to the newest finite state,
which may already be ruined.

``resume(step, lr)`` returns the state to give ``Trainer.set_state`` and forks the run: the
losses after that step are kept as an abandoned ``Branch`` (drawn beside the new run) and the
snapshots after it are dropped. Thread-safe: the worker records, the GUI reads.
"""
from __future__ import annotations

import copy
import functools
import math
import threading
from dataclasses import dataclass

import numpy as np

STATE_OVERHEAD = 1024  # bytes counted for the small dicts of a state (meta, rng)
SMOOTH_SAMPLES = 500.0  # samples the smoothed loss of a snapshot averages over
GOOD_MARGIN = 0.10  # a "good" state: smoothed loss at most 10% above the best so far


@dataclass(frozen=True)
class Branch:
    """The loss curve of an abandoned run: steps (M,) int64, losses (M,) float64."""
    steps: np.ndarray
    losses: np.ndarray
    lr: float
    fork_step: int

    @property
    def label(self) -> str:
        return f"lr {self.lr:g} (left at step {self.fork_step})"


@functools.lru_cache(maxsize=64)
def _smoothing(batch: int) -> float:
    """Weight of a step of ``batch`` samples in the smoothed loss (SMOOTH_SAMPLES samples)."""
    return 1.0 - (1.0 - 1.0 / SMOOTH_SAMPLES) ** max(1, int(batch))


def _compact_order(order: np.ndarray) -> np.ndarray:
    dtype = np.uint16 if len(order) <= 1 << 16 else np.uint32
    return order.astype(dtype)


class Timeline:
    def __init__(self, every: int = 100, max_bytes: int = 64 * 2**20, max_branches: int = 4):
        if every < 1 or max_bytes < 1:
            raise ValueError("every and max_bytes must be positive")
        self.first_every = int(every)
        self.max_bytes = int(max_bytes)
        self.max_branches = int(max_branches)
        # True while the Trainer's data is not the run's own (fine-tuning on a mixed set): the
        # losses are recorded, states are not (a resume would need that data)
        self.holding = False
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.every = self.first_every
            self._states: dict[int, dict] = {}  # step -> compacted state
            self._steps = np.zeros(1024, dtype=np.int64)
            self._losses = np.zeros(1024, dtype=np.float64)
            self._n = 0  # points in the curve
            self._stride = 1  # steps averaged per curve point
            self._pending: list[float] = []  # losses of steps not yet in a curve point
            self._lr = float("nan")
            self._branches: list[Branch] = []
            self._owed = False  # a snapshot is due at the next step
            self._smooth: float | None = None  # smoothed loss of the latest step
            self._quality: dict[int, dict] = {}  # step -> {"smooth": ..., "test": ...}

    # ---- recording (worker side) -------------------------------------------------------
    def start(self, trainer) -> None:
        """Forget everything and keep the trainer's current state as the first snapshot."""
        self.clear()
        self.add(trainer.get_state())

    def after_step(self, trainer, report) -> None:
        """Call after every ``trainer.step`` (or from its ``on_step``): records the loss and,
        every ``every`` steps, the state. Inside ``on_step`` of an epoch's last step the epoch
        has not been closed yet, so that snapshot waits for the next step."""
        self.record(report.step, report.loss, report.lr, report.batch_size)
        if (self.wants(report.step) or self._owed) and not self.holding:
            self._owed = trainer.cursor >= len(trainer.order)
            if not self._owed:
                self.add(trainer.get_state())

    def wants(self, step: int) -> bool:
        return step % self.every == 0

    def record(self, step: int, loss: float, lr: float | None = None, batch: int = 1) -> None:
        with self._lock:
            if lr is not None:
                self._lr = float(lr)
            if math.isfinite(loss):  # (NumPy's isfinite on a float costs 10x more)
                a = _smoothing(batch)
                self._smooth = loss if self._smooth is None else self._smooth + a * (
                    loss - self._smooth)
            else:
                self._smooth = float("inf")
            losses = self._pending
            losses.append(loss)
            if len(losses) < self._stride:
                return
            self._pending = []
            if self._n == len(self._steps):
                if self._curve_bytes() * 2 > self.max_bytes // 4:
                    self._halve_curve()
                else:
                    self._steps = np.concatenate([self._steps, np.zeros_like(self._steps)])
                    self._losses = np.concatenate([self._losses, np.zeros_like(self._losses)])
            self._steps[self._n] = step
            self._losses[self._n] = sum(losses) / len(losses)
            self._n += 1

    def _halve_curve(self) -> None:
        m = self._n // 2 * 2
        self._steps[:m // 2] = self._steps[1:m:2]
        self._losses[:m // 2] = (self._losses[0:m:2] + self._losses[1:m:2]) / 2
        if self._n % 2:
            self._steps[m // 2] = self._steps[m]
            self._losses[m // 2] = self._losses[m]
        self._n = self._n - m // 2
        self._stride *= 2

    def add(self, state: dict) -> None:
        """Keep a copy of ``Trainer.get_state()`` (thinning older ones to stay under the cap)."""
        step = int(state["meta"]["step"])
        kept = {"params": {k: v.copy() for k, v in state["params"].items()},
                "velocity": {k: v.copy() for k, v in state["velocity"].items()},
                "meta": copy.deepcopy(state["meta"])}
        order = _compact_order(np.asarray(state["order"]))
        with self._lock:
            # one epoch shares one order: the newest state's, as a rule (compared first)
            for other in reversed(self._states.values()):
                if np.array_equal(other["order"], order):
                    order = other["order"]
                    break
            kept["order"] = order
            self._states[step] = kept
            self._quality[step] = {"smooth": self._smooth, "test": None}
            while self._state_bytes() > self._snapshot_budget() and self._thin():
                pass

    def _thin(self) -> bool:
        """Drop every second snapshot (never the first nor the best). False: none to drop."""
        steps = sorted(self._states)
        best = self._best()
        droppable = [s for s in steps[1:] if s != best]
        if not droppable:
            return False
        self.every *= 2
        keep = {steps[0], best} | {s for s in steps if s % self.every == 0}
        if keep.issuperset(steps):  # nothing on the grid to drop: the oldest but one
            keep.discard(droppable[0])
        for s in steps:
            if s not in keep:
                del self._states[s]
                self._quality.pop(s, None)
        return True

    # ---- quality -----------------------------------------------------------------------
    def note_test(self, trainer, test_loss: float) -> None:
        """The test loss of the trainer's current state: kept with its snapshot (one is
        taken now if this is the best test loss so far, so the best state is always kept)."""
        step = int(trainer.step_count)
        if not np.isfinite(test_loss):
            return
        with self._lock:
            tests = [q["test"] for q in self._quality.values() if q["test"] is not None]
            have = step in self._states
        if not have and (not tests or test_loss < min(tests)) \
                and trainer.cursor < len(trainer.order):
            self.add(trainer.get_state())
        with self._lock:
            if step in self._quality:
                self._quality[step]["test"] = float(test_loss)

    def _best(self) -> int:
        """The best snapshot's step: lowest test loss if any was measured, else lowest
        smoothed loss, else the first (called with the lock held)."""
        q = self._quality
        tested = [(v["test"], s) for s, v in q.items() if v["test"] is not None]
        if tested:
            return min(tested)[1]
        smooth = [(v["smooth"], s) for s, v in q.items() if v["smooth"] is not None]
        return min(smooth)[1] if smooth else min(self._states)

    def best_step(self) -> int:
        """The step of the run's best kept state (see ``_best``)."""
        with self._lock:
            if not self._states:
                raise LookupError("the timeline holds no snapshot yet")
            return self._best()

    def quality(self, step: int) -> dict:
        """{"smooth": smoothed loss or None, "test": test loss or None} of a snapshot."""
        with self._lock:
            return dict(self._quality.get(step, {"smooth": None, "test": None}))

    def last_good_step(self, before: int) -> int:
        """The newest snapshot at or before ``before`` that is good: its smoothed loss within
        GOOD_MARGIN of the best smoothed loss of the snapshots up to it, and so its test
        loss where one was measured. The first snapshot when none has a loss yet."""
        with self._lock:
            steps = [s for s in sorted(self._states) if s <= before] or sorted(self._states)[:1]
            if not steps:
                raise LookupError("the timeline holds no snapshot yet")
            q = [self._quality.get(s, {}) for s in steps]
            bars = {}
            for key in ("smooth", "test"):
                known = [v[key] for v in q if v.get(key) is not None and np.isfinite(v[key])]
                bars[key] = min(known) * (1 + GOOD_MARGIN) if known else None
            if bars["smooth"] is None:
                return steps[0]
            good = [s for s, v in zip(steps, q, strict=True)
                    if v.get("smooth") is not None and v["smooth"] <= bars["smooth"]
                    and (v.get("test") is None or v["test"] <= bars["test"])]
            if good:
                return good[-1]
            key = "test" if bars["test"] is not None else "smooth"  # none good: the best
            return min((v[key], s) for s, v in zip(steps, q, strict=True)
                       if v.get(key) is not None and np.isfinite(v[key]))[1]

    # ---- memory ------------------------------------------------------------------------
    def _state_bytes(self) -> int:
        seen, total = set(), 0
        for st in self._states.values():
            arrays = list(st["params"].values()) + list(st["velocity"].values()) + [st["order"]]
            for a in arrays:
                if id(a) not in seen:
                    seen.add(id(a))
                    total += a.nbytes
            total += STATE_OVERHEAD
        return total

    def _curve_bytes(self) -> int:
        own = self._steps.nbytes + self._losses.nbytes
        return own + sum(b.steps.nbytes + b.losses.nbytes for b in self._branches)

    def _snapshot_budget(self) -> int:
        return self.max_bytes - self._curve_bytes()

    @property
    def memory_used(self) -> int:
        """Bytes held by snapshots and loss curves."""
        with self._lock:
            return self._state_bytes() + self._curve_bytes()

    @property
    def snapshot_bytes(self) -> int:
        with self._lock:
            return self._state_bytes()

    # ---- reading (GUI side) ------------------------------------------------------------
    def snapshot_steps(self) -> list[int]:
        with self._lock:
            return sorted(self._states)

    def nearest_step(self, step: int) -> int:
        """The latest snapshot at or before ``step`` (the first one if none is)."""
        steps = self.snapshot_steps()
        if not steps:
            raise LookupError("the timeline holds no snapshot yet")
        before = [s for s in steps if s <= step]
        return before[-1] if before else steps[0]

    def state_at(self, step: int) -> dict:
        """A full copy of the snapshot ``nearest_step(step)``, ready for ``Trainer.set_state``."""
        s = self.nearest_step(step)
        with self._lock:
            st = self._states[s]
            return {"params": {k: v.copy() for k, v in st["params"].items()},
                    "velocity": {k: v.copy() for k, v in st["velocity"].items()},
                    "order": st["order"].astype(np.intp),
                    "meta": copy.deepcopy(st["meta"])}

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The current run's (steps, losses) copies."""
        with self._lock:
            return self._steps[:self._n].copy(), self._losses[:self._n].copy()

    def branches(self) -> list[Branch]:
        with self._lock:
            return list(self._branches)

    @property
    def lr(self) -> float:
        return self._lr

    # ---- forking -----------------------------------------------------------------------
    def resume(self, step: int, lr: float | None = None) -> dict:
        """The state of snapshot ``nearest_step(step)``, with ``lr`` if given, for
        ``Trainer.set_state``. The losses recorded after it become an abandoned branch."""
        state = self.state_at(step)
        s = int(state["meta"]["step"])
        if lr is not None:
            state["meta"]["lr"] = float(lr)
        with self._lock:
            cut = int(np.searchsorted(self._steps[:self._n], s, side="right"))
            if cut < self._n:
                tail = Branch(self._steps[cut:self._n].copy(), self._losses[cut:self._n].copy(),
                              self._lr, s)
                self._branches = (self._branches + [tail])[-self.max_branches:]
            self._n = cut
            self._pending = []
            self._owed = False
            for other in [t for t in self._states if t > s]:
                del self._states[other]
                self._quality.pop(other, None)
            self._smooth = self._quality.get(s, {}).get("smooth")
            self._lr = float(state["meta"]["lr"])
        return state
