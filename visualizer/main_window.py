"""The main window: wires the training worker to the panels and repaints on a ~30 Hz timer.

Only this module connects worker signals to views. The worker's signals are cheap to receive:
step reports go into bounded histories, a snapshot just replaces ``self.latest``; the panels are
redrawn from the timer, and only the ones on screen.

Adding a view takes one call: ``window.add_panel("Inspector", widget, "tab")`` (a tab next to
the feature maps) or ``add_panel(name, widget, "left" | "right" | "top" | "bottom",
tab_with="Filters")`` (a dock, listed in View > Panels). A widget with ``apply_theme(theme)``
follows the theme. Views that follow training connect to ``snapshot_shown`` (the snapshot just
painted, at most ~30 per second) and ``run_started`` (a RunInfo after each Reset).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QAction,
    QActionGroup,
    QApplication,
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from convscope.visualizer.controls import ControlsPanel
from convscope.visualizer.curves import AccuracyPanel, LossPanel
from convscope.visualizer.draw_panel import attach as attach_draw_panel
from convscope.visualizer.feature_maps import FeatureMapsPanel
from convscope.visualizer.file_actions import attach as attach_file_actions
from convscope.visualizer.filters import FiltersPanel
from convscope.visualizer.inspector import InspectorView
from convscope.visualizer.probe import ProbePanel
from convscope.visualizer.probs import ProbsPanel
from convscope.visualizer.status import TrainingStatusBar
from convscope.visualizer.templates import TemplatesPanel
from convscope.visualizer.theme import Theme, apply_palette, resolve
from convscope.visualizer.timeline_panel import TimelinePanel
from convscope.visualizer.worker import (
    Hyper,
    RunInfo,
    RunSettings,
    TrainWorker,
    start_worker,
    stop_worker,
)

REPAINT_MS = 33  # ~30 Hz
BUSY_BUDGET = 0.20  # the GUI thread's share of time for live views while training
MAX_INTERVAL = 0.5  # repaint at least twice a second whatever the cost
SLOW_PANELS = ("Filters", "Class templates")  # weights change slowly: at most ...
SLOW_INTERVAL = 0.1  # ... every 0.1 s while training
STATUS_INTERVAL = 0.2  # the status bar's numbers, at most 5 times a second while training
AREAS = {"left": Qt.LeftDockWidgetArea, "right": Qt.RightDockWidgetArea,
         "top": Qt.TopDockWidgetArea, "bottom": Qt.BottomDockWidgetArea}


class MainWindow(QMainWindow):
    snapshot_shown = pyqtSignal(object)  # engine.train.Snapshot, just painted
    run_started = pyqtSignal(object)  # worker.RunInfo, after each Reset

    def __init__(self, settings: RunSettings | None = None, hyper: Hyper | None = None,
                 theme: str = "system", loader=None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("ConvScope: watch a CNN learn to read digits")
        self.setObjectName("main_window")
        self.setDockOptions(QMainWindow.AllowTabbedDocks | QMainWindow.AllowNestedDocks
                            | QMainWindow.AnimatedDocks)
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        settings = settings or RunSettings()
        hyper = hyper or Hyper()
        self.panels: dict[str, QWidget] = {}
        self.docks: dict[str, QDockWidget] = {}
        self.info: RunInfo | None = None  # what is training now
        self.latest = None  # the newest Snapshot received
        self.running = False
        self.theme: Theme = resolve(theme)
        self.theme_choice = theme
        self._painted: dict[str, object] = {}  # panel name -> snapshot it shows
        self._probe_index = 0
        self._probe_custom = False
        self._closed = False
        self._last_test: float | None = None
        self._epoch_progress = 0.0

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
        self.banner = self._make_banner()
        central = QWidget()
        box = QVBoxLayout(central)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addWidget(self.banner)
        box.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self._make_menus()
        scroll = QScrollArea()  # the controls never force the window to grow
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.add_panel("Controls", scroll, "left")
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
        self._default_state = None

        # ---- worker --------------------------------------------------------------------
        self.worker = TrainWorker(loader, hyper)
        w = self.worker
        w.progress.connect(self._on_progress)
        w.snapshot.connect(self._on_snapshot)
        w.epoch_ended.connect(self._on_epoch)
        w.evaluated.connect(self._on_evaluated)
        w.state_changed.connect(self._on_state)
        w.run_started.connect(self._on_run_started)
        w.loading.connect(self._on_loading)  # methods, not lambdas: never called once closed
        w.error.connect(self.show_error)
        self.timeline_panel.timeline = w.timeline
        w.traced.connect(self.inspector.set_step)
        w.resumed.connect(self._on_resumed)
        self.timeline_panel.scrubbed.connect(self._show_moment)
        self.timeline_panel.resume_requested.connect(self._resume)
        self.run_started.connect(lambda info: self.timeline_panel.set_config(info.config))
        self.snapshot_shown.connect(self.timeline_panel.set_live_snapshot)
        self.controls.lr_spin.valueChanged.connect(self.timeline_panel.set_current_lr)
        self.timeline_panel.set_current_lr(self.controls.lr_spin.value())
        c = self.controls
        c.train_toggled.connect(lambda: w.submit("toggle"))
        c.step_sample.connect(lambda: w.submit("step_samples", 1))
        c.step_batch.connect(lambda: w.submit("step_batch"))
        c.step_epoch.connect(lambda: w.submit("step_epoch"))
        c.reset_requested.connect(self.reset)
        c.hyper_changed.connect(lambda h: w.submit("hyper", h))
        c.speed_changed.connect(lambda s: w.submit("speed", s))
        self.probe_panel.index_chosen.connect(self.set_probe_index)
        self.thread = start_worker(w)
        w.submit("speed", c.speed())
        w.submit("probe_test", 0)
        w.submit("reset", settings)
        self.file_actions = attach_file_actions(self)  # Evaluation tab, File > Open/Save/Export
        self._curve_heights: dict[str, int] = {}  # tab name -> height of the Loss dock
        self._tab_name = self.tabs.tabText(self.tabs.currentIndex())
        self.tabs.currentChanged.connect(self._tab_changed)

        self.timer = QTimer(self)
        self.timer.setInterval(REPAINT_MS)
        self.timer.timeout.connect(self._repaint)
        self.timer.start()
        self.set_theme(theme)
        self.resize(*default_size())

    # ---- extension points ------------------------------------------------------------------
    def add_panel(self, name: str, widget: QWidget, area: str = "right",
                  tab_with: str | None = None, visible: bool = True) -> QDockWidget | None:
        """Add a view as a dock in ``area`` (left/right/top/bottom; tabbed with the dock
        ``tab_with`` if given) or, with area "tab", as a tab beside the feature maps.
        Returns the QDockWidget (None for a tab)."""
        self.panels[name] = widget
        if hasattr(widget, "apply_theme"):
            widget.apply_theme(self.theme)
        if area == "tab":  # in a scroll area: a large page never forces the window to grow
            scroll = QScrollArea()
            scroll.setWidget(widget)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.NoFrame)
            self.tabs.addTab(scroll, name)
            return None
        if area not in AREAS:
            raise ValueError(f"unknown area {area!r}: use tab, {', '.join(AREAS)}")
        dock = QDockWidget(name, self)
        dock.setObjectName("dock_" + name.lower().replace(" ", "_"))
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        if tab_with in self.docks:
            self.tabifyDockWidget(self.docks[tab_with], dock)
        else:
            self.addDockWidget(AREAS[area], dock)
        dock.setVisible(visible)
        dock.visibilityChanged.connect(lambda shown: shown and self._force_repaint())
        self.docks[name] = dock
        self.panels_menu.addAction(dock.toggleViewAction())
        return dock

    def set_probe(self, image: np.ndarray, label: int | None = None,
                  source: str = "your drawing") -> None:
        """Trace this digit (uint8 (28, 28), ink bright on 0) through the live network."""
        image = np.asarray(image)
        if image.shape != (28, 28):
            raise ValueError(f"a probe digit is 28x28, got {image.shape}")
        self._probe_custom = True
        self._custom_label = label
        self.worker.submit("probe", np.array(image, np.uint8), label)
        truth = "" if label is None else f", labelled {self._class_name(label)}"
        self.probe_panel.set_source(f"Probe: {source}{truth}.")

    def set_probe_index(self, index: int) -> None:
        """Trace test digit ``index`` of the current dataset."""
        self._probe_custom = False
        self._probe_index = int(index)
        self.probe_panel.set_index(index)
        self.worker.submit("probe_test", int(index))
        self._describe_probe()

    def reset(self, settings: RunSettings | None = None) -> None:
        """New weights from the seed, with the given (or the controls') architecture and data."""
        self.worker.submit("reset", settings or self.controls.settings())

    # ---- worker signals --------------------------------------------------------------------
    def _on_run_started(self, info: RunInfo) -> None:
        self.info = info
        self.latest = None
        self._show_moment(None)  # a Timeline moment of the previous run is no longer shown
        self._painted.clear()
        self.loss_panel.clear()
        self.accuracy_panel.clear()
        self._last_test = None
        self.controls.set_applied(info.settings, info.n_train)
        self.controls.set_settings(info.settings)
        self.feature_maps.set_architecture(info.config)
        self.probs_panel.set_classes(info.class_names)
        self.templates_panel.set_classes(info.class_names)
        self.probe_panel.set_test_count(len(info.x_test))
        if not self._probe_custom:
            self._describe_probe()
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
        self._status_dirty = True

    def _on_snapshot(self, snapshot) -> None:
        self.latest = finite_snapshot(snapshot)

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

    def _on_evaluated(self, report) -> None:
        self.loss_panel.add_test(report.samples, report.test_loss)
        self.accuracy_panel.add_test(report.samples, report.test_accuracy)
        self.status.values["test"] = report.test_accuracy
        self._status_dirty = True

    def _on_loading(self, spec: str) -> None:
        self.status.set_values(state=f"loading {spec}…")

    def _on_state(self, running: bool) -> None:
        self.running = running
        if running:
            self.timeline_panel.go_live()
        self.controls.set_running(running)
        state = "training" if running else "paused"
        if self._live_state is not None:  # a Timeline moment is shown: its text stays
            self._live_state = state
        else:
            self.status.values["state"] = state
        if not running:
            self.status.values["rate"] = 0
        self._status_dirty = True

    def show_error(self, message: str) -> None:
        """Show a problem in the banner above the views (never a blocking dialog)."""
        self.banner_label.setText(message)
        self.banner.show()
        self.status.showMessage(message.split(". ")[0], 8000)

    # ---- painting --------------------------------------------------------------------------
    moment = None  # a past Snapshot from the Timeline shown instead of the live one

    def _show_moment(self, snapshot) -> None:
        """Paint a past moment from the Timeline (pausing training), or None: live."""
        if snapshot is not None and self.running:
            self.worker.submit("pause")
        self.moment = None if snapshot is None else finite_snapshot(snapshot)
        samples = None if snapshot is None else self._samples_at(snapshot.step)
        for panel in (self.loss_panel, self.accuracy_panel):
            panel.set_marker(samples)
        if snapshot is not None:  # every panel but the curves shows that moment: say so
            if self._live_state is None:
                self._live_state = self.status.values.get("state", "")
            self.status.set_values(state=f"showing step {snapshot.step:,} from the Timeline")
        elif self._live_state is not None:
            self.status.set_values(state=self._live_state)
            self._live_state = None
        self._force_repaint()

    _live_state: str | None = None  # the status bar's state while a moment is shown

    def _samples_at(self, step: int) -> int | None:
        try:
            return int(self.timeline_panel.timeline.state_at(step)["meta"]["samples_seen"])
        except (LookupError, ValueError):
            return None

    def _resume(self, step: int, lr: float) -> None:
        """Continue from the Timeline's snapshot at ``step`` with learning rate ``lr``."""
        self.controls.lr_spin.setValue(lr)  # reaches the worker before the resume
        self.worker.submit("resume", step)
        self.loss_panel.clear()  # the curves restart there; the Timeline shows both runs
        self.accuracy_panel.clear()

    def _on_resumed(self, step: int) -> None:
        """Training went back to ``step`` (a Timeline resume, or after a divergence): the
        curves restart there (the Timeline shows both runs) and the live state is shown."""
        self.loss_panel.clear()
        self.accuracy_panel.clear()
        for stale in ("samples", "train", "epoch_progress"):  # back with the next step
            self.status.values.pop(stale, None)
        self.status.set_values(step=step)
        self._show_moment(None)

    _status_dirty = False
    busy = 0.0  # the GUI thread's recent share of time (CPU seconds per second)
    paint_interval = REPAINT_MS / 1000  # seconds between repaints while training
    _last_paint = 0.0
    _slow_painted = 0.0  # when the weight panels were last painted
    _status_at = 0.0  # when the status bar was last updated
    _frame = 0
    _tick = (0.0, 0.0)

    def _repaint(self) -> None:
        """The ~30 Hz tick. While training runs, a governor keeps the GUI thread's share of
        time (measured as its CPU time) under BUSY_BUDGET by spacing out the repaints, so
        the worker is never starved; paused, every new state is painted at once."""
        now, cpu = time.perf_counter(), time.thread_time()
        span = now - self._tick[0]
        if span > 0:  # averaged over about a second
            a = min(1.0, span)
            self.busy += a * ((cpu - self._tick[1]) / span - self.busy)
        self._tick = (now, cpu)
        speed = self.controls.speed()
        if self.running and (speed == 0 or speed >= 100):  # slow motion needs no governor
            factor = min(1.25, max(0.8, self.busy / BUSY_BUDGET))
            self.paint_interval = min(MAX_INTERVAL, max(REPAINT_MS / 1000,
                                                        self.paint_interval * factor))
            # half a tick of slack: ticks come every ~32-34 ms, and a strict comparison with
            # a 33 ms interval would skip every other one
            if now - self._last_paint < self.paint_interval - REPAINT_MS / 2000:
                return
        self._last_paint = now
        if self._status_dirty and (not self.running or now - self._status_at >= STATUS_INTERVAL):
            self._status_dirty, self._status_at = False, now  # its text lays the bar out again
            self.status.set_values()
        self._frame += 1
        costly = self.running and self.paint_interval > REPAINT_MS / 1000
        for i, panel in enumerate((self.loss_panel, self.accuracy_panel)):
            if panel.isVisible() and not (costly and (self._frame + i) % 2):
                panel.refresh()  # under the budget: one curve per frame, in turn
        snap = self.moment or self.latest
        if snap is None:
            return
        painted = False
        since = now - self._slow_painted
        slow_due = not self.running or since >= SLOW_INTERVAL - REPAINT_MS / 2000
        if slow_due:
            self._slow_painted = now
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
        def trace_of(snap):
            return snap.probe_trace or {}

        def probe(snap):
            t = trace_of(snap)
            if "input" in t:
                self.probe_panel.set_input(t["input"][0])

        def maps(snap):
            if snap.probe_trace:
                self.feature_maps.set_trace(snap.probe_trace)

        def probs(snap):
            t = trace_of(snap)
            if "probs" in t:
                label = t.get("labels", [None])[0] if self._probe_label_known() else None
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

    def _probe_label_known(self) -> bool:
        return not self._probe_custom or self._custom_label is not None

    _custom_label = None

    def _force_repaint(self) -> None:
        self._painted.clear()

    # ---- probe description -----------------------------------------------------------------
    def _class_name(self, label: int) -> str:
        names = self.info.class_names if self.info else [str(k) for k in range(10)]
        return names[int(label)] if 0 <= int(label) < len(names) else str(label)

    def _describe_probe(self) -> None:
        if self.info is None or not len(self.info.y_test):
            return
        i = min(self._probe_index, len(self.info.y_test) - 1)
        label = self._class_name(self.info.y_test[i])
        self.probe_panel.set_source(f"Test digit #{i} of {self.info.dataset}, "
                                    f"true class {label}.")

    # ---- window furniture ------------------------------------------------------------------
    def _make_banner(self) -> QFrame:
        banner = QFrame()
        banner.setObjectName("banner")
        self.banner_label = QLabel()
        self.banner_label.setWordWrap(True)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(banner.hide)
        row = QHBoxLayout(banner)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.banner_label, 1)
        row.addWidget(close)
        banner.hide()
        return banner

    def _make_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        quit_action = file_menu.addAction("&Quit")
        quit_action.setShortcut(QKeySequence.Quit)
        quit_action.triggered.connect(self.close)

        run = bar.addMenu("&Run")
        w = lambda: self.worker  # noqa: E731 - the worker is created after the menus
        self.train_action = self._action(run, "Train / Pause", "Space",
                                         lambda: w().submit("toggle"))
        self.step_sample_action = self._action(run, "Step one sample", "Right",
                                               lambda: w().submit("step_samples", 1))
        self.step_batch_action = self._action(run, "Step one batch", "Shift+Right",
                                              lambda: w().submit("step_batch"))
        self.step_epoch_action = self._action(run, "Step one epoch", "Ctrl+Right",
                                              lambda: w().submit("step_epoch"))
        run.addSeparator()
        self.reset_action = self._action(run, "Reset", "Ctrl+R", lambda: self.reset())

        view = bar.addMenu("&View")
        theme_menu = view.addMenu("Theme")
        group = QActionGroup(self)
        self.theme_actions = {}
        for key, text in (("system", "Follow the system"), ("dark", "Dark"),
                          ("light", "Light")):
            action = theme_menu.addAction(text)
            action.setCheckable(True)
            action.setActionGroup(group)
            action.triggered.connect(lambda _, k=key: self.set_theme(k))
            self.theme_actions[key] = action
        self.panels_menu = view.addMenu("Panels")
        view.addAction("Restore the default layout", self.restore_layout)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction("Keyboard shortcuts", self._show_shortcuts)

    def _action(self, menu, text: str, shortcut: str, slot) -> QAction:
        action = menu.addAction(text)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.WindowShortcut)
        action.triggered.connect(slot)
        return action

    def _show_shortcuts(self) -> None:
        lines = [f"{a.text()}: {a.shortcut().toString()}" for a in
                 (self.train_action, self.step_sample_action, self.step_batch_action,
                  self.step_epoch_action, self.reset_action)]
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join(lines))

    def set_theme(self, choice: str) -> None:
        """"system", "dark" or "light"."""
        self.theme_choice = choice
        self.theme = theme = resolve(choice)
        app = QApplication.instance()
        apply_palette(app, theme)
        if choice in self.theme_actions:
            self.theme_actions[choice].setChecked(True)
        self.setStyleSheet(stylesheet(theme))
        for widget in self.panels.values():
            if hasattr(widget, "apply_theme"):
                widget.apply_theme(theme)
        self._force_repaint()

    def restore_layout(self) -> None:
        if self._default_state:
            self.restoreState(self._default_state)
        for dock in self.docks.values():
            dock.setVisible(True)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._default_state is None:
            self._default_state = b""
            self._size_docks()
            QTimer.singleShot(0, self._first_layout)  # again once the layout has settled

    def _first_layout(self) -> None:
        self._size_docks()
        self._default_state = self.saveState()

    def _size_docks(self) -> None:
        """Default layout: the controls at their natural height, the big views share the rest."""
        w = self.width()
        left = [self.docks["Controls"], self.docks["Probe digit"]]
        right = [self.docks[n] for n in ("Prediction", "Filters", "Class templates")]
        hint = self.controls.sizeHint()
        self.resizeDocks(left[:1], [max(hint.width() + 14, int(w * 0.19))], Qt.Horizontal)
        self.resizeDocks(right[:1], [max(320, int(w * 0.26))], Qt.Horizontal)
        left_h = sum(d.height() for d in left)
        top = min(hint.height() + 30, left_h - 180)
        self.resizeDocks(left, [top, left_h - top], Qt.Vertical)
        right_h = sum(d.height() for d in right)
        self.resizeDocks(right, [int(right_h * f) for f in (0.32, 0.26, 0.42)], Qt.Vertical)
        self.resizeDocks([self.docks["Loss"]], [int(self.height() * 0.3)], Qt.Vertical)

    def _tab_changed(self, index: int) -> None:
        """Each tab keeps its own height of the Loss / Accuracy docks: the feature maps share
        the height with the curves, the other tabs (Inspector, Timeline ...) take most of it."""
        loss, name = self.docks["Loss"], self.tabs.tabText(index)
        previous, self._tab_name = self._tab_name, name
        if self._default_state is None or loss.isFloating() or not loss.isVisible() \
                or self.dockWidgetArea(loss) != Qt.BottomDockWidgetArea:
            return
        self._curve_heights[previous] = loss.height()
        default = int(self.height() * (0.3 if name == "Feature maps" else 0.17))
        self.resizeDocks([loss], [self._curve_heights.get(name, default)], Qt.Vertical)

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


def default_size() -> tuple[int, int]:
    """Most of the screen, up to 1600 x 1000 (1280 x 800 without a usable screen size)."""
    screen = QApplication.primaryScreen()
    if screen is None:
        return 1280, 800
    free = screen.availableGeometry()
    if free.width() < 1024 or free.height() < 700:
        return 1280, 800
    return min(1600, int(free.width() * 0.92)), min(1000, int(free.height() * 0.92))


def finite_snapshot(snapshot):
    """The snapshot with any NaN or infinity of the probe trace (weights that are finite but
    huge, just before a divergence) replaced by 0 or the largest float: never draw NaN."""
    trace = snapshot.probe_trace
    if not trace:
        return snapshot
    bad = [k for k, v in trace.items()
           if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all()]
    if not bad:
        return snapshot
    clean = dict(trace)
    for k in bad:
        big = np.finfo(trace[k].dtype).max
        clean[k] = np.nan_to_num(trace[k], nan=0.0, posinf=big, neginf=-big)
    return dataclasses.replace(snapshot, probe_trace=clean)


def stylesheet(theme: Theme) -> str:
    warn = "#c98a00" if not theme.dark else "#f0b429"
    return f"""
    QPushButton#train {{ background: {theme.accent}; color: white; font-weight: 600;
        border: none; border-radius: 4px; padding: 6px; font-size: 11pt; }}
    QPushButton#train:hover {{ background: {theme.curve2}; }}
    QPushButton#train[running="true"] {{ background: {warn}; color: #1b1b1b; }}
    QLabel#hover {{ color: {theme.muted}; font-size: 8pt; }}
    QLabel#pending {{ color: {warn}; font-weight: 600; }}
    QLabel#headline {{ color: {theme.text}; }}
    QFrame#banner {{ background: {theme.bad}; }}
    QFrame#banner QLabel {{ color: white; font-weight: 600; }}
    QDockWidget {{ font-weight: 600; }}
    QDockWidget::title {{ padding: 3px 6px; background: {theme.window}; }}
    QGroupBox {{ font-weight: 600; border: 1px solid {theme.muted}; border-radius: 4px;
        margin-top: 8px; padding-top: 4px; }}
    QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 3px; }}
    QGroupBox QLabel, QGroupBox QCheckBox {{ font-weight: normal; }}
    QStatusBar QLabel {{ color: {theme.text}; }}
    """
