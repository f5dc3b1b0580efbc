"""The training worker: a QObject living on a QThread that owns the engine's Trainer.

Architecture invariant: the worker never touches a widget and the GUI thread never runs a
training step. The GUI calls its command methods (``train()``, ``steps(n)``, ``reset(s)``...),
which only queue the command; the worker carries it out between two steps. It talks back by
signals carrying copies (``messages.py``): ``progress(StepBatch)`` and ``snapshot`` at most ~30
per second, and while training no faster than the window takes them up (``snapshot_taken``);
``epoch_ended``, ``evaluated``, ``state_changed(running)``, ``run_started(RunInfo)`` after a
Reset, ``error(str)`` (``DivergenceError`` pauses and goes back to the last good Timeline
state: ``resumed``), ``busy(str)`` while "1 epoch" or a job runs ("" after),
``recipe_done(RecipeDone)`` when the recipe's epochs are done (paused). Its thread:
``commands.start_worker`` and ``commands.stop_worker``.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import replace

import numpy as np
from PyQt5.QtCore import QObject, QThread, pyqtSignal

from convscope.engine.data.idx import DataError
from convscope.engine.net.train import DivergenceError, Trainer, evaluate
from convscope.engine.tools.explain import traced_step
from convscope.engine.tools.timeline import Timeline
from convscope.visualizer.commands import CommandQueue, WorkerCommands
from convscope.visualizer.messages import EvalReport, Hyper, Resumed, RunInfo, RunSettings
from convscope.visualizer.model_files import saved_run_of
from convscope.visualizer.reports import EvalPacing, StepReports
from convscope.visualizer.run_setup import (
    apply_hyper,
    build_trainer,
    finish_recipe,
    load_aside,
    probe_digit,
    read_only,
    roll_back,
    timeline_bytes,
)

EMIT_INTERVAL = 1 / 30  # seconds between two progress or snapshot signals
# While training runs, the steps so far and a snapshot go out once the window has taken up
# the last ones (it hands a token back on each of its frames: ``snapshot_taken``), or after
# SNAPSHOT_WAIT: the window paints 7-30 frames a second, and each signal it receives makes
# its thread take the interpreter lock from the worker.
SNAPSHOT_WAIT = 0.5


class TrainWorker(WorkerCommands, QObject):
    """Owns the Trainer. Create it, move it to a QThread, connect thread.started to run().
    Its command methods (``commands.WorkerCommands``) queue what the loop below carries out."""

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
    resumed = pyqtSignal(object)  # Resumed: training went back (a resume or a rollback)
    busy = pyqtSignal(str)  # a discrete run under way ("1 epoch"), "" when it ended
    recipe_done = pyqtSignal(object)  # RecipeDone: paused at the end of the recipe's epochs
    state_ready = pyqtSignal(object)  # model_files.SavedRun (or None) after "save_state"
    job_done = pyqtSignal(object)  # what a job of run_job returned (None: given up)

    def __init__(self, loader=None, hyper: Hyper | None = None):
        super().__init__()
        self._loader = loader
        self._commands = CommandQueue()
        self.hyper = hyper or Hyper()
        self.trainer: Trainer | None = None  # touched only on the worker thread
        self.settings: RunSettings | None = None
        self.steps_per_s = 0.0  # 0 = full speed
        self._running = False
        self._pending: tuple | None = None  # ("steps", n, batch) or ("epoch", epoch)
        self._stopping = False
        self._datasets: dict = {}
        self._probe: tuple | None = None  # ("image", image, label) or ("test", index)
        self._next_due = 0.0
        self._evals = EvalPacing()
        self._reports = StepReports()
        self.timeline = Timeline()  # states to scrub back to and resume from
        self._snapshot_token: bool | None = None  # None: no window hands tokens back
        self._snapshot_at = -1.0  # when the last snapshot was sent

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
                    method, args = command
                    method(*args)
                elif self._busy():
                    self._work()
                    self._recipe_check()
            except InterruptedError:  # a long step given up between chunks: nothing changed
                pass
            except DivergenceError as e:  # back to the last good state (run_setup.roll_back)
                self._halt()
                message, went_back = roll_back(self.trainer, self.timeline, e)
                if went_back:
                    self._went_back("rollback")
                self.error.emit(message)
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
            return (self._do_stop, ())
        if not self._busy():  # idle: sleep until told something (or interrupted)
            return self._commands.take(timeout=0.25)
        paced = self._running and self.steps_per_s
        return self._commands.take(timeout=self._next_due - time.perf_counter() if paced else 0)

    def _interrupted(self) -> bool:
        """Asked between the chunks of a long step or evaluation: give it up for a command?"""
        return (self._stopping or self._commands.urgent_waiting()
                or QThread.currentThread().isInterruptionRequested())

    def _check_interrupted(self, *_) -> None:
        if self._interrupted():
            raise InterruptedError("a command is waiting")

    def _do_stop(self) -> None:
        self._stopping = True

    def _do_run(self, run: bool | None) -> None:
        """Train (True), pause (False) or toggle (None: a running epoch is paused)."""
        run = not self._running and self._pending is None if run is None else run
        self._set_running(run and self.trainer is not None)
        self._set_pending(None)
        self._flush()

    def _do_hyper(self, hyper: Hyper) -> None:
        before, self.hyper = self.hyper, hyper
        note = self.trainer and apply_hyper(self.trainer, hyper, before)
        if note:
            self.error.emit(note)

    def _recipe_check(self) -> None:
        """Paused when the recipe's epochs are done; Train goes on at the schedule's last lr."""
        done = finish_recipe(self.trainer)
        if done is not None:
            self._halt()
            self.hyper = replace(self.hyper, lr=done.lr)
            self.recipe_done.emit(done)

    def _do_save_state(self) -> None:
        s = self.settings
        self.state_ready.emit(self.trainer and saved_run_of(
            self.trainer, s.dataset, self._datasets.get((s.dataset, s.convert)), s.convert))

    def _do_probe(self, probe: tuple, quiet: bool) -> None:
        self._probe = probe
        self._apply_probe()
        if not quiet:
            self._emit_snapshot()

    def _do_resume(self, step: int) -> None:
        if self.trainer is None:
            return
        self._halt()
        self.trainer.set_state(self.timeline.resume(step, self.hyper.lr), hyperparameters=False)
        self._went_back("resume")

    def _went_back(self, why: str) -> None:
        t = self.trainer
        self._reports.clear()
        self.resumed.emit(Resumed(t.step_count, t.samples_seen, t.epoch, t.lr, why))
        self._emit_snapshot()

    def _start_pending(self, pending: tuple) -> None:
        """Pause and queue discrete steps; repeated step requests add up (12 quick clicks on
        "1 sample" are 12 samples). ("steps", n, batch size or None) or ("epoch",)."""
        if self.trainer is None:
            return
        if pending[0] == "epoch":
            pending = ("epoch", self.trainer.epoch)
        self._set_running(False)
        old = self._pending
        if old is not None and old[0] == pending[0] == "steps" and old[2] == pending[2]:
            pending = ("steps", old[1] + pending[1], pending[2])
        self._set_pending(pending)

    def _set_pending(self, pending: tuple | None) -> None:
        """What discrete run is under way; a running epoch is announced by ``busy``."""
        was, self._pending = self._pending, pending
        if (was or ("",))[0] == "epoch" or (pending or ("",))[0] == "epoch":
            self.busy.emit("1 epoch" if pending and pending[0] == "epoch" else "")

    def _work(self) -> None:
        """One training step, then whatever the step finished."""
        trainer = self.trainer
        if self._running:  # the Trainer's epoch loop, left for a command or the pace
            trainer.run_epoch(self._leave_running,
                              lambda _: self._evals.due(trainer) and self._evaluate_now())
            return
        kind = self._pending[0]
        if kind == "steps":
            _, left, batch = self._pending
            if left == 1 and (batch or trainer.batch_size) == 1:  # for the inspector
                self.traced.emit(traced_step(trainer))
            else:
                trainer.step(batch)
            if left > 1 and self._evals.due(trainer):
                self._evaluate_now()
            self._pending = ("steps", left - 1, batch) if left > 1 else None
        elif trainer.run_epoch(lambda: self._interrupted() or self._commands.waiting()):
            self._set_pending(None)  # the Trainer's epoch loop ended it (None: left for a command)
        if self._pending is None:  # a discrete step just ended: show exactly this state
            self._flush()
            self._emit_snapshot()

    def _leave_running(self) -> bool:
        """Before each step while training runs: back to the loop (a command, the pace)?"""
        now, pace = time.perf_counter(), self.steps_per_s
        if (not self._running or self._stopping or self._commands.waiting()  # urgent too
                or self._thread.isInterruptionRequested() or pace > 0 and now < self._next_due):
            return True
        if pace > 0:  # this step's time slot starts now
            self._next_due = now + 1 / pace
        return False

    def _set_running(self, running: bool) -> None:
        if running == self._running:
            return
        self._running = running
        if running:
            self._next_due = time.perf_counter()
            self._reports.restart_rate(self.trainer.samples_seen)
        else:  # show exactly the state training stopped at
            self._flush()
            self._emit_snapshot()
        self.state_changed.emit(running)

    def _halt(self) -> None:
        self._set_pending(None)
        self._set_running(False)

    # ---- reset ---------------------------------------------------------------------------
    def _dataset(self, spec: str, convert: str = "mnist"):
        """The dataset ``spec`` (the one kept: full MNIST is 47 MB), loaded aside if new; a
        folder of pictures converted with ``convert``."""
        if (spec, convert) not in self._datasets:
            self.loading.emit(spec)
            data = load_aside(self._loader, spec, lambda: (
                self._stopping or QThread.currentThread().isInterruptionRequested()
                or self._stop_queued()), self.loading.emit, convert)
            self._datasets = {(spec, convert): data}
        return self._datasets[(spec, convert)]

    def _stop_queued(self) -> bool:
        if self._commands.holds(self._do_stop):
            self._stopping = True
        return self._stopping

    def _reset(self, settings: RunSettings, loaded=None, hyper: Hyper | None = None) -> None:
        self._halt()
        self.hyper = hyper or self.hyper
        fallback = None
        try:
            data = self._dataset(settings.dataset, settings.convert)
        except InterruptedError:
            return
        except DataError as e:  # keep the current run; with none yet (or for a model file)
            if settings.dataset == "mini" or (self.trainer is not None and loaded is None):
                raise
            fallback = (f"Cannot use the dataset {settings.dataset}: {e}. Using the embedded "
                        f"mini MNIST instead.")
            settings = replace(settings, dataset="mini", convert="mnist")
            data = self._dataset("mini")
        trainer, config, note = build_trainer(settings, data, self.hyper, loaded, EMIT_INTERVAL)
        model = trainer.model
        trainer.on_step = self._on_step  # (it sends the snapshots too)
        trainer.on_epoch_end = self.epoch_ended.emit
        trainer.should_stop = self._interrupted
        self.trainer, self.settings = trainer, settings
        self._evals.later(trainer.samples_seen)
        self._reports.clear()
        self._apply_probe()
        x_test, y_test = read_only(data.x_test), read_only(data.y_test)
        self.timeline.max_bytes = timeline_bytes(model)
        self.timeline.start(trainer)
        self.run_started.emit(RunInfo(settings, config, model.layer_info(), data.name,
                                      list(data.class_names), len(data.x_train), x_test, y_test))
        self._evaluate_now()  # where the network starts (chance level for new weights)
        self._emit_snapshot()
        if note or fallback:  # after run_started, which clears the last message
            self.error.emit(" ".join(m for m in (fallback, note) if m))

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
            self._evals.later()
            return
        self._evals.done(now, trainer.samples_seen)
        self.timeline.note_test(trainer, loss)  # the best test loss keeps its state
        self._flush()  # the curves get the steps before the evaluation first
        self.evaluated.emit(EvalReport(trainer.step_count, trainer.samples_seen, loss, acc))

    def _apply_probe(self) -> None:
        digit = probe_digit(self.trainer, self._probe)
        if digit is not None:
            self.trainer.probe, self.trainer.probe_label = digit

    def _emit_snapshot(self) -> None:
        if self.trainer is not None:
            self._snapshot_at = time.perf_counter()
            if self._snapshot_token:
                self._snapshot_token = False  # the window has not taken this one up yet
            self.snapshot.emit(self.trainer.snapshot())

    # ---- batched step reports ----------------------------------------------------------
    def _on_step(self, report) -> None:
        """After every step: the Timeline, and now and then the steps so far and a snapshot,
        together: at most every EMIT_INTERVAL, once the window has taken up the last ones
        (its token), or after SNAPSHOT_WAIT; in slow motion every step's report at once."""
        self.timeline.after_step(self.trainer, report)
        self._reports.add(report)
        slow_motion = self._running and 0 < self.steps_per_s <= 1 / EMIT_INTERVAL
        age = self._reports.age()
        due = age >= EMIT_INTERVAL and (self._snapshot_token is not False or age >= SNAPSHOT_WAIT)
        if due or slow_motion:
            self._flush()
        if due or slow_motion and time.perf_counter() - self._snapshot_at >= EMIT_INTERVAL:
            self._emit_snapshot()

    def _flush(self) -> None:
        """Send the steps done since the last progress signal."""
        t = self.trainer
        batch = t and self._reports.take(t.samples_seen, t.epoch, t.lr, self._running)
        if batch is not None:
            self.progress.emit(batch)

