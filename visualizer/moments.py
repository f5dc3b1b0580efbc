"""Timeline moments in the main window: a past state of the network shown in every view but
the curves (which mark it), and resuming training from one.

Showing a moment pauses training and says so in the status bar; going live gives the status
bar its own state back. Going back (a resume, a divergence rollback) forks the curves there:
the later points stay, dimmed, as an abandoned branch; the status bar shows the position gone
back to at once.
"""
from __future__ import annotations

from convscope.visualizer.messages import finite_snapshot


class Moments:
    def __init__(self, window):
        self.window = window
        self.snapshot = None  # the past Snapshot shown instead of the live one, or None
        self._live_state: str | None = None  # the status bar's state while a moment is shown

    def show(self, snapshot) -> None:
        """Paint a past moment from the Timeline (pausing training), or None: live."""
        w = self.window
        if snapshot is not None and w.running:
            w.worker.pause()
        self.snapshot = None if snapshot is None else finite_snapshot(snapshot)
        samples = None if snapshot is None else self._samples_at(snapshot.step)
        for panel in (w.loss_panel, w.accuracy_panel):
            panel.set_marker(samples)
        if snapshot is not None:  # every panel but the curves shows that moment: say so
            if self._live_state is None:
                self._live_state = w.status.values.get("state", "")
            w.status.set_values(state=f"showing step {snapshot.step:,} from the Timeline")
        elif self._live_state is not None:
            w.status.set_values(state=self._live_state)
            self._live_state = None
        w.force_repaint()

    def busy(self, what: str) -> None:
        """A discrete run ("1 epoch") started, or ended (""): the controls and status say so."""
        w = self.window
        w.controls.set_busy(what or None)
        if not w.running:
            self.set_live_state(f"training {what}…" if what else "paused")
            w._status_dirty = True

    def set_live_state(self, state: str) -> None:
        """The live run's state ("training", "paused"), shown unless a moment is."""
        if self._live_state is not None:  # a Timeline moment is shown: its text stays
            self._live_state = state
        else:
            self.window.status.values["state"] = state

    def _samples_at(self, step: int) -> int | None:
        try:
            return int(self.window.timeline_panel.timeline.state_at(step)["meta"]["samples_seen"])
        except (LookupError, ValueError):
            return None

    def resume(self, step: int, lr: float) -> None:
        """Continue from the Timeline's snapshot at ``step`` with learning rate ``lr``."""
        w = self.window
        w.controls.lr_spin.setValue(lr)  # reaches the worker before the resume
        w.worker.resume(step)  # answered by ``resumed``

    def resumed(self, back) -> None:
        """Training went back (``messages.Resumed``: a Timeline resume, or a rollback after a
        divergence): the curves fork there and the live state of that moment is shown."""
        w = self.window
        for panel in (w.loss_panel, w.accuracy_panel):
            panel.fork(back.samples)
        n = w.info.n_train if w.info else 0
        w.inspector_note.set_live(back.step, back.lr)
        w.status.values.pop("train", None)  # back with the next step
        w.status.set_values(step=back.step, epoch=back.epoch, samples=back.samples, lr=back.lr,
                            epoch_progress=(back.samples % n) / n if n else 0.0, rate=0)
        self.show(None)
