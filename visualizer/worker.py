"""The training worker: a QObject living on a QThread that owns the engine's Trainer.

Architecture invariant: the worker never touches a widget and the GUI thread never runs a
training step. The GUI talks to the worker through ``submit()`` (a thread-safe command queue,
read between steps, so pause and step take effect at the next sample); the worker talks back
through signals carrying copies:

- ``progress(StepBatch)``: every step's loss and accuracy, batched, at most ~30 per second;
- ``snapshot(Snapshot)``: weights and the probe digit's trace, at most ~30 per second;
- ``epoch_ended(EpochReport)``, ``evaluated(EvalReport)``, ``state_changed(bool running)``,
  ``run_started(RunInfo)`` after every Reset, ``error(str)`` for anything that went wrong
  (``DivergenceError`` pauses training and goes back to the newest Timeline state from
  before the blow-up, announced by ``resumed``).

Shut down with ``stop()`` then ``thread.quit(); thread.wait()`` (see ``start_worker``).
"""
from __future__ import annotations

import queue
import threading
import time
import traceback
from dataclasses import dataclass, replace

import numpy as np
from PyQt5.QtCore import QObject, QThread, pyqtSignal

from convscope.engine.data.idx import DataError
from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import DivergenceError, Trainer, evaluate
from convscope.engine.tools.explain import traced_step
from convscope.engine.tools.timeline import Timeline
from convscope.visualizer.history import RateMeter
from convscope.visualizer.model_files import restore_position, saved_run_of

EMIT_INTERVAL = 1 / 30  # seconds between two progress or snapshot signals
EVAL_INTERVAL = 2.0  # seconds between two test evaluations within an epoch, at least
EVAL_SHARE = 0.02  # and at most this share of the training time
# the Timeline keeps about this many training states (at most TIMELINE_MAX_BYTES): the seed
# net at batch 1 fills it within its first two epochs, and memory stays flat from then on
TIMELINE_STATES = 128
TIMELINE_MAX_BYTES = 64 * 2**20
# commands that abandon a long step (or evaluation) between two of its chunks
URGENT = frozenset({"stop", "pause", "toggle", "reset", "load", "resume"})


@dataclass(frozen=True)
class RunSettings:
    """What Reset builds: architecture, data and seed (hyperparameters live in Hyper)."""
    preset: str = "seed"
    filters: int | None = None  # None: the preset's default
    pool: str = "max"
    relu: bool | None = None  # None: the preset's default
    dataset: str = "mini"
    seed: int = 0


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters applied at the next step."""
    lr: float = 0.005
    batch_size: int = 1
    momentum: float = 0.0


@dataclass(frozen=True)
class RunInfo:
    """Sent after a Reset: what is now training. x_test/y_test are read-only arrays."""
    settings: RunSettings
    config: dict
    dataset: str
    class_names: list
    n_train: int
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class StepBatch:
    """Steps done since the last progress signal. Arrays have one entry per step."""
    step: np.ndarray  # (n,) int64, step number after the step
    samples: np.ndarray  # (n,) int64, samples seen after the step
    loss: np.ndarray  # (n,) float32, mean loss of the step's batch
    accuracy: np.ndarray  # (n,) float32, fraction of the batch classified right
    batch: np.ndarray  # (n,) int32, batch size of the step
    epoch: int
    lr: float
    samples_per_s: float  # over the span of this batch (0 when unknown)


@dataclass(frozen=True)
class EvalReport:
    step: int
    samples: int
    test_loss: float
    test_accuracy: float


class TrainWorker(QObject):
    """Owns the Trainer. Create it, move it to a QThread, connect thread.started to run()."""

    progress = pyqtSignal(object)  # StepBatch
    snapshot = pyqtSignal(object)  # engine.train.Snapshot
    epoch_ended = pyqtSignal(object)  # engine.train.EpochReport
    evaluated = pyqtSignal(object)  # EvalReport
    state_changed = pyqtSignal(bool)  # True while training continuously
    run_started = pyqtSignal(object)  # RunInfo
    loading = pyqtSignal(str)  # dataset spec being loaded
    error = pyqtSignal(str)
    finished = pyqtSignal()
    traced = pyqtSignal(object)  # engine.explain.StepTrace of a single-sample step
    resumed = pyqtSignal(int)  # the step training went back to ("resume")
    state_ready = pyqtSignal(object)  # model_files.SavedRun (or None) after "save_state"

    def __init__(self, loader=None, hyper: Hyper | None = None):
        super().__init__()
        self._loader = loader
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._urgent = 0  # URGENT commands queued and not handled yet
        self._urgent_lock = threading.Lock()
        self.hyper = hyper or Hyper()
        self.trainer: Trainer | None = None  # touched only on the worker thread
        self.settings: RunSettings | None = None
        self.steps_per_s = 0.0  # 0 = full speed
        self._running = False
        self._pending: tuple | None = None  # ("steps", n, batch) or ("epoch", epoch)
        self._stopping = False
        self._datasets: dict = {}
        self._probe: tuple | None = None  # ("probe", image, label) or ("probe_test", i)
        self._next_due = 0.0
        self._next_eval = 0.0  # no test evaluation before this time
        self._eval_samples = 0  # samples seen at the last one
        self._reset_buffer()
        self.timeline = Timeline()  # states to scrub back to and resume from

    # ---- called from any thread ----------------------------------------------------------
    def submit(self, command: str, *args) -> None:
        """Queue a command for the worker thread: train, pause, toggle, step_samples(n),
        step_batch, step_epoch, steps(n), evaluate, reset(RunSettings), hyper(Hyper),
        speed(steps/s or 0), probe(image uint8 (28, 28), label or None), probe_test(index), stop,
        save_state (answered by ``state_ready``), load(RunSettings, model_files.LoadedModel)."""
        if command in URGENT:
            with self._urgent_lock:
                self._urgent += 1
        self._commands.put((command, args))

    def stop(self) -> None:
        self._stopping = True
        self.submit("stop")

    # ---- the loop (worker thread) --------------------------------------------------------
    def run(self) -> None:
        # divergence is detected by the Trainer (DivergenceError), not by numpy warnings
        self._thread = QThread.currentThread()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._loop()
        self._flush()
        self.finished.emit()

    def _loop(self) -> None:
        while not self._stopping:
            try:
                command = self._next_command()
                if command is not None:
                    self._handle(*command)
                elif self._busy():
                    self._work()
            except InterruptedError:  # a long step given up between chunks: nothing changed
                pass
            except DivergenceError as e:
                self._halt()
                self.error.emit(self._roll_back(e))
            except DataError as e:  # a dataset that cannot be used: the current run goes on
                self._halt()
                self.error.emit(f"Cannot use this dataset: {e}")
            except Exception as e:  # never let an exception escape the thread
                traceback.print_exc()
                self._halt()
                self.error.emit(f"{type(e).__name__}: {e}")

    def _busy(self) -> bool:
        return self.trainer is not None and (self._running or self._pending is not None)

    def _next_command(self):
        """The next queued command, or None when it is time for a step (runs between every
        two steps: kept cheap)."""
        if self._thread.isInterruptionRequested():
            return ("stop", ())
        if not self._busy():  # idle: sleep until told something (or interrupted)
            try:
                return self._commands.get(timeout=0.25)
            except queue.Empty:
                return None
        delay = self._next_due - time.perf_counter() if self._running and self.steps_per_s \
            else 0.0
        if delay <= 0:
            return None if self._commands.empty() else self._commands.get_nowait()
        try:
            return self._commands.get(timeout=delay)
        except queue.Empty:
            return None

    def _interrupted(self) -> bool:
        """Asked between the chunks of a long step or evaluation: give it up for a command?"""
        return (self._stopping or self._urgent > 0
                or QThread.currentThread().isInterruptionRequested())

    def _check_interrupted(self, *_) -> None:
        if self._interrupted():
            raise InterruptedError("a command is waiting")

    def _handle(self, command: str, args: tuple) -> None:
        if command in URGENT:
            with self._urgent_lock:
                self._urgent = max(0, self._urgent - 1)
        if command == "stop":
            self._stopping = True
        elif command in ("train", "pause", "toggle"):
            run = {"train": True, "pause": False}.get(command, not self._running)
            self._set_running(run and self.trainer is not None)
            self._pending = None
            self._flush()
        elif command == "hyper":
            self.hyper = args[0]
            self._apply_hyper()
        elif command == "speed":
            self.steps_per_s = float(args[0])
        elif command == "reset":
            self._reset(args[0])
        elif command == "load":  # a validated model file: its weights and position
            self._reset(args[0], loaded=args[1])
        elif command == "save_state":
            self.state_ready.emit(self.trainer and saved_run_of(
                self.trainer, self.settings.dataset, self._datasets.get(self.settings.dataset)))
        elif command in ("probe", "probe_test"):
            self._probe = (command, *args)
            self._apply_probe()
            self._emit_snapshot()
        elif self.trainer is None:
            return
        elif command == "resume":  # back to the timeline's snapshot at a step
            self._halt()
            self.trainer.set_state(self.timeline.resume(int(args[0]), self.hyper.lr),
                                   hyperparameters=False)
            self._reset_buffer()
            self.resumed.emit(self.trainer.step_count)
            self._emit_snapshot()
        elif command == "step_samples":
            self._start_pending(("steps", int(args[0]), 1))
        elif command == "step_batch":
            self._start_pending(("steps", 1, None))
        elif command == "steps":
            self._start_pending(("steps", int(args[0]), None))
        elif command == "evaluate":
            self._evaluate_now()
        elif command == "step_epoch":
            self._start_pending(("epoch", self.trainer.epoch))
        else:
            raise ValueError(f"unknown worker command {command!r}")

    def _start_pending(self, pending: tuple) -> None:
        """Pause and queue discrete steps; repeated step requests add up (12 quick clicks on
        "1 sample" are 12 samples)."""
        self._set_running(False)
        old = self._pending
        if old is not None and old[0] == pending[0] == "steps" and old[2] == pending[2]:
            pending = ("steps", old[1] + pending[1], pending[2])
        self._pending = pending

    def _work(self) -> None:
        """One training step, then whatever the step finished."""
        trainer = self.trainer
        if self._running:
            if self.steps_per_s > 0:
                self._next_due = time.perf_counter() + 1 / self.steps_per_s
            trainer.step()
            self._maybe_evaluate()
            return
        kind = self._pending[0]
        if kind == "steps":
            _, left, batch = self._pending
            if left == 1 and (batch or trainer.batch_size) == 1:  # for the inspector
                self.traced.emit(traced_step(trainer))
            else:
                trainer.step(batch)
            if left > 1:
                self._maybe_evaluate()
            self._pending = ("steps", left - 1, batch) if left > 1 else None
        else:
            trainer.step()
            if trainer.epoch != self._pending[1]:
                self._pending = None
        if self._pending is None:  # a discrete step just ended: show exactly this state
            self._flush()
            self._emit_snapshot()

    def _set_running(self, running: bool) -> None:
        if running == self._running:
            return
        self._running = running
        if running:
            self._next_due = self._t_last = time.perf_counter()
            self._samples_last = self.trainer.samples_seen
            self._rate.restart(self._t_last, self._samples_last)
        else:  # show exactly the state training stopped at
            self._flush()
            self._emit_snapshot()
        self.state_changed.emit(running)

    def _halt(self) -> None:
        self._pending = None
        self._set_running(False)

    def _roll_back(self, error: DivergenceError) -> str:
        """After a divergence: back to the newest Timeline state from before the last applied
        step (those weights already gave the exploding loss). Returns what to tell the user."""
        trainer = self.trainer
        what = str(error).split("; try")[0]
        advice = (f"lower the learning rate (try {min(trainer.lr / 10, 0.01):g}), then Train, "
                  f"or Reset for new weights.")
        if trainer.step_count == 0:
            return f"Training diverged: {what}; {advice}"
        step = self.timeline.nearest_step(trainer.step_count - 1)
        if step >= trainer.step_count:
            return f"Training diverged: {what}. The weights were left as they were; {advice}"
        trainer.set_state(self.timeline.resume(step, trainer.lr), hyperparameters=False)
        self._reset_buffer()
        self.resumed.emit(trainer.step_count)
        self._emit_snapshot()
        return (f"Training diverged: {what}. Paused and went back to step {step:,}, the last "
                f"finite state kept before it; {advice}")

    # ---- reset ---------------------------------------------------------------------------
    def _load(self, spec: str):
        if spec not in self._datasets:
            self.loading.emit(spec)
            loader = self._loader
            if loader is None:
                from convscope.engine.data.datasets import load_dataset
                loader = load_dataset
            result: dict = {}

            def target():
                try:
                    result["data"] = loader(spec)
                except BaseException as e:  # reported below, on the worker thread
                    result["error"] = e

            # a download may be long: load aside so a stop request is still honoured
            loading = threading.Thread(target=target, name="dataset-loader", daemon=True)
            loading.start()
            while loading.is_alive():
                loading.join(0.05)
                if (self._stopping or QThread.currentThread().isInterruptionRequested()
                        or not self._commands.empty() and self._stop_queued()):
                    raise InterruptedError("closing")
            if "error" in result:
                raise result["error"]
            self._datasets = {spec: result["data"]}  # keep one: full MNIST is 47 MB
        return self._datasets[spec]

    def _stop_queued(self) -> bool:
        """Look for a stop among queued commands without losing the others."""
        kept, stop = [], False
        while True:
            try:
                item = self._commands.get_nowait()
            except queue.Empty:
                break
            stop = stop or item[0] == "stop"
            kept.append(item)
        for item in kept:
            self._commands.put(item)
        if stop:
            self._stopping = True
        return stop

    def _reset(self, settings: RunSettings, loaded=None) -> None:
        self._halt()
        fallback = None
        try:
            data = self._load(settings.dataset)
        except InterruptedError:
            return
        except DataError as e:  # keep the current run; with none yet (or for a model file)
            if settings.dataset == "mini" or (self.trainer is not None and loaded is None):
                raise
            fallback = (f"Cannot use the dataset {settings.dataset}: {e}. Using the embedded "
                        f"mini MNIST instead.")
            settings = replace(settings, dataset="mini")
            data = self._load("mini")
        if loaded is None:
            config = build_config(settings.preset, settings.filters, settings.pool, settings.relu)
            model = Model(config, settings.seed)
        else:
            model, config = loaded.model, loaded.model.config
        for layer in model.layers:  # Trainer.probe_trace needs gradients to exist before step 1
            for k, v in layer.params.items():
                layer.grads.setdefault(k, np.zeros_like(v))
        hyper = self.hyper
        trainer = Trainer(model, data.x_train, data.y_train, data.x_test, data.y_test,
                          lr=hyper.lr, batch_size=self._clamp_batch(hyper.batch_size, data),
                          momentum=hyper.momentum, seed=settings.seed,
                          snapshot_interval=EMIT_INTERVAL)
        note = None if loaded is None else restore_position(trainer, loaded.trainer_state)
        trainer.on_step = self._on_step
        trainer.on_snapshot = self.snapshot.emit
        trainer.on_epoch_end = self.epoch_ended.emit
        trainer.should_stop = self._interrupted
        self.trainer, self.settings = trainer, settings
        self._next_eval = time.perf_counter() + EVAL_INTERVAL
        self._eval_samples = trainer.samples_seen
        self._reset_buffer()
        self._apply_probe()
        x_test, y_test = _read_only(data.x_test), _read_only(data.y_test)
        weights = sum(w.nbytes for w in model.params().values())
        self.timeline.max_bytes = min(TIMELINE_MAX_BYTES, max(2**21, TIMELINE_STATES * weights))
        self.timeline.start(trainer)
        self.run_started.emit(RunInfo(settings, config, data.name, list(data.class_names),
                                      len(data.x_train), x_test, y_test))
        try:  # where the network starts (chance level for new weights)
            if len(x_test):
                loss, acc, _ = evaluate(model, x_test, y_test, progress=self._check_interrupted)
                self.evaluated.emit(EvalReport(trainer.step_count, trainer.samples_seen, loss,
                                               acc))
        except InterruptedError:
            pass
        self._emit_snapshot()
        if note or fallback:  # after run_started, which clears the last message
            self.error.emit(" ".join(m for m in (fallback, note) if m))

    def _maybe_evaluate(self) -> None:
        """While training runs, evaluate on the test split now and then between epochs (the
        epoch's end evaluates anyway), so the test curve keeps up: at most every
        EVAL_INTERVAL seconds and at most EVAL_SHARE of the time."""
        trainer = self.trainer
        if (time.perf_counter() >= self._next_eval and trainer.cursor != 0
                and trainer.samples_seen != self._eval_samples):
            self._evaluate_now()

    def _evaluate_now(self) -> None:
        """Evaluate on the test split and emit ``evaluated`` (given up if a command waits)."""
        now = time.perf_counter()
        trainer = self.trainer
        if trainer is None or trainer.x_test is None or not len(trainer.x_test):
            return
        try:
            loss, acc, _ = evaluate(trainer.model, trainer.x_test, trainer.y_test,
                                    progress=self._check_interrupted)
        except InterruptedError:  # a command is waiting: try again later
            self._next_eval = now + EVAL_INTERVAL
            return
        spent = time.perf_counter() - now
        self._next_eval = now + max(EVAL_INTERVAL, spent / EVAL_SHARE)
        self._eval_samples = trainer.samples_seen
        self._flush()  # the curves get the steps before the evaluation first
        self.evaluated.emit(EvalReport(trainer.step_count, trainer.samples_seen, loss, acc))

    @staticmethod
    def _clamp_batch(batch_size: int, data) -> int:
        return max(1, min(int(batch_size), len(data.x_train)))

    def _apply_hyper(self) -> None:
        if self.trainer is not None:
            self.trainer.lr = self.hyper.lr
            self.trainer.momentum = self.hyper.momentum
            self.trainer.batch_size = max(1, min(int(self.hyper.batch_size),
                                                 len(self.trainer.x_train)))

    def _apply_probe(self) -> None:
        """("probe", image, label) or ("probe_test", index into the test split)."""
        trainer = self.trainer
        if trainer is None or self._probe is None:
            return
        if self._probe[0] == "probe_test":
            if trainer.x_test is None or not len(trainer.x_test):
                return
            index = min(max(int(self._probe[1]), 0), len(trainer.x_test) - 1)
            image, label = trainer.x_test[index], trainer.y_test[index]
        else:
            image, label = self._probe[1], self._probe[2]
        trainer.probe = np.ascontiguousarray(image, dtype=np.uint8).reshape(28, 28)
        trainer.probe_label = None if label is None else int(label)

    def _emit_snapshot(self) -> None:
        if self.trainer is not None:
            self.snapshot.emit(self.trainer.snapshot())

    # ---- batched step reports ----------------------------------------------------------
    def _reset_buffer(self) -> None:
        self._rate = RateMeter()  # samples/s over the last two seconds
        self._buf: list = []
        self._t_last = time.perf_counter()
        self._samples_last = 0

    def _on_step(self, report) -> None:
        self.timeline.after_step(self.trainer, report)
        self._buf.append((report.step, report.samples_seen, report.loss,
                          report.correct / report.batch_size, report.batch_size))
        slow_motion = self._running and 0 < self.steps_per_s <= 1 / EMIT_INTERVAL
        if slow_motion or time.perf_counter() - self._t_last >= EMIT_INTERVAL:
            self._flush()

    def _flush(self) -> None:
        if not self._buf or self.trainer is None:
            return
        now = time.perf_counter()
        rows = self._buf
        self._buf = []
        seen = self.trainer.samples_seen
        rate = self._rate.add(now, seen) if self._running else 0.0
        self._t_last, self._samples_last = now, seen
        cols = list(zip(*rows, strict=True))
        self.progress.emit(StepBatch(
            np.array(cols[0], np.int64), np.array(cols[1], np.int64),
            np.array(cols[2], np.float32), np.array(cols[3], np.float32),
            np.array(cols[4], np.int32), self.trainer.epoch, self.trainer.lr, rate))


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def start_worker(worker: TrainWorker, parent=None) -> QThread:
    """Move ``worker`` to a new QThread running its loop, and start it."""
    thread = QThread(parent)
    thread.setObjectName("training")
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    thread.start()
    return thread


def stop_worker(worker: TrainWorker, thread: QThread, timeout_ms: int = 3000) -> bool:
    """Ask the loop to end at the next sample, then join the thread. True when it ended."""
    worker.stop()
    thread.requestInterruption()
    thread.quit()
    return thread.wait(timeout_ms)


