"""The main window: wires the training worker to the panels and repaints on a ~30 Hz timer.

Only this module connects the worker's signals; the other parts (``file_actions``, the draw
panel, ``app``) listen to the window's (``snapshot_shown`` at most ~30 a second, ``run_started``
with a RunInfo, ``evaluated``, ``epoch_ended``, ``state_ready``, ``job_done``) and command the
worker through its methods. Receiving is cheap (bounded histories, ``self.latest`` replaced);
the panels on screen are redrawn from the timer (``repaint.py`` says when).

Adding a view: ``window.add_panel(name, widget, area)``, area "tab" (beside the feature maps) or
a dock's side "left" ... "bottom" (``tab_with``; View > Panels); ``apply_theme`` is followed.
"""
from __future__ import annotations

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import QApplication, QDockWidget, QMainWindow, QTabWidget, QVBoxLayout, QWidget

from convscope.visualizer import help as panel_help
from convscope.visualizer.banner import Banner
from convscope.visualizer.commands import start_worker, stop_worker
from convscope.visualizer.controls import ControlsPanel
from convscope.visualizer.curves import AccuracyPanel, LossPanel
from convscope.visualizer.dock_layout import DockLayout, default_size, scrolled
from convscope.visualizer.draw_panel import attach as attach_draw_panel
from convscope.visualizer.feature_maps import FeatureMapsPanel
from convscope.visualizer.file_actions import attach as attach_file_actions
from convscope.visualizer.filters import FiltersPanel
from convscope.visualizer.inspector import InspectorView
from convscope.visualizer.menus import Menus
from convscope.visualizer.messages import Hyper, RunInfo, RunSettings, finite_snapshot
from convscope.visualizer.moments import Moments
from convscope.visualizer.my_digits_tab import attach as attach_my_digits
from convscope.visualizer.probe import ProbePanel
from convscope.visualizer.probe_choice import ProbeChoice
from convscope.visualizer.probs import ProbsPanel
from convscope.visualizer.repaint import REPAINT_MS, RepaintGovernor
from convscope.visualizer.stale import watch_inspector
from convscope.visualizer.status import TrainingStatusBar
from convscope.visualizer.templates import TemplatesPanel
from convscope.visualizer.theme import Theme, apply_palette, resolve, stylesheet
from convscope.visualizer.timeline_panel import TimelinePanel
from convscope.visualizer.unsaved import UnsavedGuard
from convscope.visualizer.worker import TrainWorker

SLOW_PANELS = ("Filters", "Class templates")  # weights change slowly: repainted less often


class MainWindow(QMainWindow):
    snapshot_shown = pyqtSignal(object)  # engine Snapshot, just painted
    run_started = pyqtSignal(object)  # RunInfo, after each Reset
    evaluated = pyqtSignal(object)  # EvalReport of a test evaluation
    epoch_ended = pyqtSignal(object)  # engine EpochReport
    state_ready = pyqtSignal(object)  # model_files.SavedRun (or None), after save_state()
    job_done = pyqtSignal(object)  # what a worker.run_job job returned (e.g. a FineTuneReport)

    def __init__(self, settings: RunSettings | None = None, hyper: Hyper | None = None,
                 theme: str = "system", loader=None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("ConvScope: watch a CNN learn to read digits")
        self.setObjectName("main_window")
        settings = settings or RunSettings()
        hyper = hyper or Hyper()
        self.panels: dict[str, QWidget] = {}
        self.info: RunInfo | None = None  # what is training now
        self.latest = None  # the newest Snapshot received
        self.running = False
        self.theme: Theme = resolve(theme)
        self.theme_choice = theme
        self._painted: dict[str, object] = {}  # panel name -> snapshot it shows
        self._status_dirty = False
        self._closed = False
        self.governor = RepaintGovernor()
        self.moments = Moments(self)
        self.probe = ProbeChoice(self)

        # ---- views ---------------------------------------------------------------------
        self.controls = ControlsPanel(settings, hyper)
        self.probe_panel = ProbePanel()
        self.feature_maps = FeatureMapsPanel()
        self.probs_panel = ProbsPanel()
        self.filters_panel = FiltersPanel()
        self.templates_panel = TemplatesPanel()
        self.loss_panel = LossPanel()
        self.accuracy_panel = AccuracyPanel()
        self.status = TrainingStatusBar()
        self.setStatusBar(self.status)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.banner = Banner()
        central = QWidget()
        box = QVBoxLayout(central)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addWidget(self.banner)
        box.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.menus = Menus(self)
        self.dock_layout = DockLayout(self, self.tabs, self.menus.panels_menu,
                                      self.force_repaint)
        self.docks = self.dock_layout.docks
        self.add_panel("Controls", scrolled(self.controls, horizontal=False), "left")
        self.add_panel("Probe digit", self.probe_panel, "left")
        self.add_panel("Feature maps", self.feature_maps, "tab")
        self.add_panel("Prediction", self.probs_panel, "right")
        self.add_panel("Filters", self.filters_panel, "right")
        self.add_panel("Class templates", self.templates_panel, "right")
        self.add_panel("Loss", self.loss_panel, "bottom")
        self.add_panel("Accuracy", self.accuracy_panel, "bottom")
        self.splitDockWidget(self.docks["Loss"], self.docks["Accuracy"], Qt.Horizontal)
        self.inspector = InspectorView()  # one sample's pass, number by number
        self.add_panel("Inspector", self.inspector, "tab")
        self.timeline_panel = TimelinePanel()
        self.add_panel("Timeline", self.timeline_panel, "tab")
        self.draw_panel = attach_draw_panel(self)  # a tab; its drawing becomes the probe

        # ---- worker --------------------------------------------------------------------
        self.worker = TrainWorker(loader, hyper)
        self._connect_worker(self.worker)
        self.timeline_panel.timeline = self.worker.timeline
        self.timeline_panel.scrubbed.connect(self.moments.show)
        self.timeline_panel.resume_requested.connect(self.moments.resume)
        self.run_started.connect(lambda info: self.timeline_panel.set_config(info.config))
        self.snapshot_shown.connect(self.timeline_panel.set_live_snapshot)
        self.controls.lr_spin.valueChanged.connect(self.timeline_panel.set_current_lr)
        self.timeline_panel.set_current_lr(self.controls.lr_spin.value())
        c, w = self.controls, self.worker
        c.train_toggled.connect(w.toggle)
        c.step_sample.connect(lambda: w.step_samples(1))
        c.step_batch.connect(w.step_batch)
        c.step_epoch.connect(w.step_epoch)
        c.reset_requested.connect(self.reset)
        c.hyper_changed.connect(w.set_hyper)
        c.speed_changed.connect(w.set_speed)
        self.probe_panel.index_chosen.connect(self.set_probe_index)
        self.thread = start_worker(w)
        w.set_speed(c.speed())
        w.probe_test(0)
        w.reset(settings)
        self.file_actions = attach_file_actions(self)  # Evaluation tab, File > Open/Save/Export
        self.my_digits = attach_my_digits(self)  # the learner's own digits, fine-tuning on them
        self.inspector_note = watch_inspector(self)  # says when the Inspector shows the past
        self.unsaved = UnsavedGuard(self)  # closing asks to save a network trained since

        self.timer = QTimer(self)
        self.timer.setInterval(REPAINT_MS)
        self.timer.timeout.connect(self._repaint)
        self.timer.start()
        self.set_theme(theme)
        self.resize(*default_size())

    def _connect_worker(self, w: TrainWorker) -> None:
        """Every connection to the worker's signals (methods, not lambdas: a method of a
        closed window is never called)."""
        w.progress.connect(self._on_progress)
        w.snapshot.connect(self._on_snapshot)
        w.epoch_ended.connect(self._on_epoch)
        w.evaluated.connect(self._on_evaluated)
        w.state_changed.connect(self._on_state)
        w.run_started.connect(self._on_run_started)
        w.loading.connect(self._on_loading)
        w.error.connect(self._on_error)
        w.traced.connect(self._on_traced)
        w.resumed.connect(self.moments.resumed)
        w.busy.connect(self.moments.busy)
        w.state_ready.connect(self.state_ready)
        w.job_done.connect(self.job_done)
        w.recipe_done.connect(self._on_recipe_done)

    # ---- extension points ------------------------------------------------------------------
    def add_panel(self, name: str, widget: QWidget, area: str = "right",
                  tab_with: str | None = None, visible: bool = True) -> QDockWidget | None:
        """Add a view as a dock in ``area`` (left/right/top/bottom; tabbed with the dock
        ``tab_with`` if given) or, with area "tab", as a tab beside the feature maps (in a
        scroll area: a large page never forces the window to grow). Returns the QDockWidget
        (None for a tab)."""
        self.panels[name] = widget
        if hasattr(widget, "apply_theme"):
            widget.apply_theme(self.theme)
        dock = self.dock_layout.add(name, widget, area, tab_with, visible)
        if name in panel_help.PANELS:  # a "?" in its corner: what am I looking at?
            panel_help.attach(widget, name, self.menus.show_help)
        return dock

    def set_probe(self, image, label: int | None = None, source: str = "your drawing",
                  traced: tuple | None = None) -> None:
        """Trace this digit (uint8 (28, 28), ink bright on 0) through the live network.
        ``traced``: (its trace, the params dict of the weights it was traced with), when the
        caller has traced it already (``probe_choice.ProbeChoice.set_image``)."""
        self.probe.set_image(image, label, source, traced)

    def set_probe_index(self, index: int) -> None:
        """Trace test digit ``index`` of the current dataset."""
        self.probe.set_index(index)

    def reset(self, settings: RunSettings | None = None) -> None:
        """New weights: the given (or the controls') settings, the controls' hyperparameters."""
        self.worker.reset(settings or self.controls.settings(), self.controls.hyper())

    @property
    def moment(self):
        """A past Snapshot from the Timeline shown instead of the live one, or None."""
        return self.moments.snapshot

    def show_error(self, message: str) -> None:
        """Show a problem in the banner above the views (never a blocking dialog)."""
        self.banner.show_message(message)
        self.status.showMessage(message.split(". ")[0], 8000)

    # ---- worker signals --------------------------------------------------------------------
    _loading: str | None = None  # the dataset being loaded for a Reset

    def _on_error(self, message: str) -> None:
        if self._loading is not None:  # the dataset could not be loaded: the run goes on
            self._loading = None
            if self.info is not None:  # the Data box shows the data in use again
                self.controls.show_dataset(self.info.settings.dataset)
            self.status.set_values(state="paused" if self.info else "no data")
        self.show_error(message)

    def _on_recipe_done(self, done) -> None:
        self.controls.show_lr(done.lr)
        self.show_error(done.text())

    def _on_run_started(self, info: RunInfo) -> None:
        self._loading = None
        self.inspector_note.set_shown(None)
        before = self.info  # its curves stay, dimmed, until the next Reset
        label = f"{before.settings.preset} net on {before.dataset}" if before else ""
        self.info = info
        self.latest = None
        self.moments.show(None)  # a Timeline moment of the previous run is no longer shown
        self._painted.clear()
        for panel in (self.loss_panel, self.accuracy_panel):
            panel.new_run(label)
        for panel in (self.filters_panel, self.templates_panel):
            panel.reset_scales()
        self.controls.set_applied(info.settings, info.n_train)
        self.controls.set_settings(info.settings)
        self.feature_maps.set_architecture(info.layers, info.config)
        self.probs_panel.set_classes(info.class_names)
        self.templates_panel.set_classes(info.class_names)
        self.probe_panel.set_test_count(len(info.x_test))
        self.probe.describe()
        self.status.set_values(state="ready", step=0, epoch=0, samples=0, epoch_progress=0.0,
                               lr=self.controls.hyper().lr, train=None, test=None, rate=0)
        self.banner.hide()
        self.setWindowTitle(f"ConvScope: {info.settings.preset} net on {info.dataset}")
        self.run_started.emit(info)

    def _on_progress(self, batch) -> None:
        self.loss_panel.add_steps(batch)
        self.accuracy_panel.add_steps(batch)
        n = self.info.n_train if self.info else 1
        self.status.values.update(step=int(batch.step[-1]), samples=int(batch.samples[-1]),
                                  epoch=batch.epoch, lr=batch.lr, rate=batch.samples_per_s,
                                  epoch_progress=(int(batch.samples[-1]) % n) / n,
                                  train=self.accuracy_panel.running_accuracy)
        self.inspector_note.set_live(int(batch.step[-1]), batch.lr)
        self._status_dirty = True

    def _on_traced(self, step_trace) -> None:
        self.inspector.set_step(step_trace)
        self.inspector_note.set_shown(step_trace.step, step_trace.lr)

    def _on_snapshot(self, snapshot) -> None:
        self.latest = finite_snapshot(snapshot)
        self.probe.check(snapshot)

    def _on_epoch(self, report) -> None:
        # every epoch is one pass over the training split: it ends at epoch * N samples
        # (the step reports of its last steps may still be on their way)
        samples = report.epoch * self.info.n_train if self.info else 0
        self.loss_panel.add_epoch(samples, report.train_loss)
        self.accuracy_panel.add_epoch(samples, report.train_accuracy)
        if report.test_loss is not None:
            self.loss_panel.add_test(samples, report.test_loss)
            self.accuracy_panel.add_test(samples, report.test_accuracy)
            self.status.values["test"] = report.test_accuracy
        self._status_dirty = True
        self.epoch_ended.emit(report)

    def _on_evaluated(self, report) -> None:
        self.loss_panel.add_test(report.samples, report.test_loss)
        self.accuracy_panel.add_test(report.samples, report.test_accuracy)
        self.status.values["test"] = report.test_accuracy
        self._status_dirty = True
        self.evaluated.emit(report)

    def _on_loading(self, spec: str) -> None:
        self._loading = spec
        self.status.set_values(state=f"loading {spec}…")

    def _on_state(self, running: bool) -> None:
        self.running = running
        if running:
            self.timeline_panel.go_live()
        self.controls.set_running(running)
        self.moments.set_live_state("training" if running else "paused")
        if not running:
            self.status.values["rate"] = 0
        self._status_dirty = True

    # ---- painting --------------------------------------------------------------------------
    def _repaint(self) -> None:
        """The ~30 Hz tick: the curves, the status bar and the views on screen that do not
        show the newest snapshot yet (or the Timeline moment shown), as the governor allows."""
        gov, speed = self.governor, self.controls.speed()
        if not gov.due(self.running and (speed == 0 or speed >= 100)):
            return
        self.worker.snapshot_taken()  # a frame: the worker may send the next snapshot
        if self._status_dirty and gov.status_due(self.running):
            self._status_dirty = False  # its text lays the bar out again
            self.status.set_values()
        gov.frame += 1
        costly = gov.costly(self.running)
        for i, panel in enumerate((self.loss_panel, self.accuracy_panel)):
            if panel.isVisible() and not (costly and (gov.frame + i) % 2):
                panel.refresh()  # under the budget: one curve per frame, in turn
        snap = self.moment or self.latest
        if snap is None:
            return
        painted = False
        slow_due = gov.slow_due(self.running)
        for name, paint in self._painters().items():
            widget = self.panels[name]
            if self._painted.get(name) is snap or not widget.isVisible():
                continue
            if name in SLOW_PANELS and not slow_due:
                continue
            paint(snap)
            self._painted[name] = snap
            painted = True
        if painted:
            self.snapshot_shown.emit(snap)

    def _painters(self) -> dict:
        def probe(snap):
            if "input" in (snap.probe_trace or {}):
                self.probe_panel.set_input(snap.probe_trace["input"][0])

        def maps(snap):
            if snap.probe_trace:
                self.feature_maps.set_trace(snap.probe_trace)

        def probs(snap):
            t = snap.probe_trace or {}
            if "probs" in t:
                label = t.get("labels", [None])[0] if self.probe.label_known() else None
                self.probs_panel.set_output(t["logits"][0], t["probs"][0],
                                            None if label is None else int(label))

        return {
            "Probe digit": probe,
            "Feature maps": maps,
            "Prediction": probs,
            "Filters": lambda s: self.filters_panel.set_weights(s.params),
            "Class templates": lambda s: self.templates_panel.set_weights(s.params,
                                                                          s.probe_trace),
        }

    def shows(self, snapshot) -> bool:
        """Does every live view show ``snapshot``?"""
        return all(self._painted.get(name) is snapshot for name in self._painters())

    def force_repaint(self) -> None:
        """Every view on screen repaints at the next tick."""
        self._painted.clear()

    # ---- window furniture ------------------------------------------------------------------
    def set_theme(self, choice: str) -> None:
        """"system", "dark" or "light"."""
        self.theme_choice = choice
        self.theme = theme = resolve(choice)
        apply_palette(QApplication.instance(), theme)
        self.menus.check_theme(choice)
        self.setStyleSheet(stylesheet(theme))
        for widget in self.panels.values():
            if hasattr(widget, "apply_theme"):
                widget.apply_theme(theme)
        self.force_repaint()

    def restore_layout(self) -> None:
        self.dock_layout.restore()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.dock_layout.shown()

    # ---- shutdown --------------------------------------------------------------------------
    def shutdown(self) -> bool:
        """Stop the worker at its next sample and join its thread. True when it ended."""
        if self._closed:
            return True
        self._closed = True
        self.timer.stop()
        self.inspector.shutdown()
        return stop_worker(self.worker, self.thread)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)
