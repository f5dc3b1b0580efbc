"""The Inspector's gradient check, off the GUI thread: a task on a pool thread, and the button,
status line and result table it drives (the Inspector lays them out).

Every entry of every weight is checked when that fits ``CHECK_BUDGET`` multiply-adds (the seed
and deep networks), else a random sample of each weight; the check shows its progress and stops
when its button is clicked again.
"""
from __future__ import annotations

import time

from PyQt5.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import QHeaderView, QLabel, QPushButton, QTableWidget, QTableWidgetItem

from convscope.engine.net.model import Model
from convscope.engine.tools.explain import StepTrace
from convscope.engine.tools.gradcheck import CHECK_BUDGET, affordable_entries, check_cost, gradcheck
from convscope.visualizer import theme as themes

PASS_THRESHOLD = 1e-6
CHECK_TEXT = "Gradient check this sample"


class _Signals(QObject):
    done = pyqtSignal(object)  # the gradcheck report, {"stopped": True} or {"error": str}
    progress = pyqtSignal(int, int)  # entries checked, entries to check


class GradcheckTask(QRunnable):
    """gradcheck(model, x, labels) on a pool thread; progress (about 10 a second) and the
    result come back as signals. ``max_entries`` per weight, None: every entry."""

    def __init__(self, model: Model, x, labels, grad_hook=None, max_entries=100, step=0):
        super().__init__()
        self.signals = _Signals()
        self.model, self.x, self.labels = model, x, labels
        self.grad_hook, self.max_entries, self.step = grad_hook, max_entries, step
        self.cost = check_cost(model, None, len(labels))  # multiply-adds to check them all
        self.cancelled = False  # set from the GUI thread: stop at the next entry
        self._shown = 0.0  # when progress was last sent

    def run(self):
        try:
            report = gradcheck(self.model, self.x, self.labels, grad_hook=self.grad_hook,
                               max_entries=self.max_entries, threshold=PASS_THRESHOLD,
                               should_stop=lambda: self.cancelled, progress=self._progress)
        except InterruptedError:
            report = {"stopped": True}
        except Exception as e:  # reported in the table, never raised in a pool thread
            report = {"error": f"{type(e).__name__}: {e}"}
        self.signals.done.emit(report)

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._shown >= 0.1 or done == total:
            self._shown = now
            self.signals.progress.emit(done, total)


def _sci(v: float) -> str:
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"  # 3.9e11


def gradcheck_summary(report: dict, task: GradcheckTask, budget: float) -> str:
    """What the check of ``task`` found, and whether it checked every entry or a sample."""
    checked = sum(v["checked"] for v in report["params"].values())
    size = sum(v["size"] for v in report["params"].values())
    if checked == size:
        which = f"Every entry checked, {checked:,} of {size:,}"
    else:
        which = f"A random sample checked, {checked:,} of {size:,} entries, at most " \
                f"{task.max_entries:,} per weight"
        if task.cost > budget:
            which += f" (all would cost {_sci(task.cost)} multiply-adds, over the bound of " \
                     f"{_sci(budget)})"
    verdict = "passed" if report["passed"] else "FAILED"
    return (f"Step {task.step}: {verdict}. {which}; each relative error must be below "
            f"{PASS_THRESHOLD:g} (centred differences in float64, input jittered by "
            f"+-{report['jitter']:g} off pooling ties).")


class GradientCheck(QObject):
    """Checks the analytic gradients of a step's sample with its pre-step weights. Widgets:
    ``button`` (start / stop), ``status`` and ``table`` (one row per layer). ``finished``
    carries the report (or {"error": str}); a stopped check sends nothing."""

    finished = pyqtSignal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.step_trace: StepTrace | None = None
        self.grad_hook = None  # optional: alters analytic gradients before the check (tests)
        self.entries: int | None = None  # at most this many per weight if set
        self.budget = CHECK_BUDGET  # multiply-adds before the check samples
        self.report: dict | None = None
        self.theme = themes.DARK
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._tasks: list[GradcheckTask] = []
        self._running: GradcheckTask | None = None  # the check the button would stop
        self.button = QPushButton(CHECK_TEXT)
        self.button.setToolTip("Compare every analytic gradient with a centred numeric "
                               "gradient (float64 copy of the weights); click again to stop")
        self.button.setEnabled(False)
        self.button.clicked.connect(self.toggle)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = _result_table()

    def set_step(self, st: StepTrace) -> None:
        self.step_trace = st
        self.button.setEnabled(True)
        if self.report is not None and self._running is None:
            self.status.setText("(from an earlier step; run it again for this one)")

    def toggle(self) -> None:
        """Start a gradient check of this step's sample, or stop the one running."""
        if self._running is None:
            self.run()
            return
        self._running.cancelled = True  # it stops at its next entry
        self.button.setEnabled(False)

    def entries_to_check(self, model: Model) -> int | None:
        """Entries per weight: None (every entry) when the check fits ``budget`` multiply-adds,
        else as many as fit; never more than ``entries`` if set."""
        n = affordable_entries(model, self.budget)
        cap = self.entries
        return cap if n is None else n if cap is None else min(n, cap)

    def run(self) -> None:
        """Check the analytic gradients of this step's sample, with its pre-step weights."""
        st = self.step_trace
        if st is None or self._running is not None:
            return
        model = Model(st.config)
        model.set_params(st.params_before)
        task = GradcheckTask(model, st.trace["input"].copy(), st.trace["labels"].copy(),
                             self.grad_hook, self.entries_to_check(model), st.step)
        task.setAutoDelete(False)
        task.signals.done.connect(self._show)
        task.signals.progress.connect(self._show_progress)
        self._tasks.append(task)
        self._running = task
        self.button.setText("Stop the gradient check")
        self.status.setText("checking: centred differences in float64 ...")
        self.pool.start(task)

    def _show_progress(self, done: int, total: int) -> None:
        if self._running is not None and self._running.signals is self.sender():
            self.status.setText(f"checking: {done:,} of {total:,} entries done, "
                                "centred differences in float64 ...")

    def _show(self, report: dict) -> None:
        task = next((t for t in self._tasks if t.signals is self.sender()), None)
        if task is None:
            return
        self._tasks.remove(task)
        if task is self._running:
            self._running = None
            self.button.setText(CHECK_TEXT)
            self.button.setEnabled(self.step_trace is not None)
        if "stopped" in report:
            self.status.setText("gradient check stopped")
            return
        self.report = report
        table = self.table
        if "error" in report:
            table.setRowCount(0)
            self.status.setText(f"gradient check failed to run: {report['error']}")
            self.finished.emit(report)
            return
        table.setRowCount(len(report["layers"]))
        table.show()
        for row, (layer, err) in enumerate(report["layers"].items()):
            ok = err < PASS_THRESHOLD
            mark = QTableWidgetItem("\u2713 pass" if ok else "\u2717 FAIL")
            mark.setForeground(QColor(self.theme.good if ok else self.theme.bad))
            params = [f"{k}: {v['max_rel_error']:.1e} ({v['checked']:,} of {v['size']:,} "
                      "checked)" for k, v in report["params"].items() if k.split(".")[0] == layer]
            for col, item in enumerate([QTableWidgetItem(layer),
                                        QTableWidgetItem(f"{err:.2e}"), mark]):
                item.setToolTip("\n".join(params))
                table.setItem(row, col, item)
        table.setFixedHeight(min(180, table.horizontalHeader().height() + 2 * table.frameWidth()
                                 + sum(table.rowHeight(r) for r in range(table.rowCount()))))
        self.status.setText(gradcheck_summary(report, task, self.budget))
        self.finished.emit(report)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop a running check at its next entry and wait for it. True when none runs."""
        for task in self._tasks:
            task.cancelled = True
        return self.pool.waitForDone(timeout_ms)


def _result_table() -> QTableWidget:
    table = QTableWidget(0, 3)
    table.setHorizontalHeaderLabels(["layer", "max error", f"< {PASS_THRESHOLD:g}"])
    for col, tip in enumerate(["", "the largest relative error |a - n| / (|a| + |n|) of "
                               "the layer's entries", "passes when the error is below this"]):
        table.horizontalHeaderItem(col).setToolTip(tip)
    table.verticalHeader().setVisible(False)
    header = table.horizontalHeader()
    for col, mode in enumerate([QHeaderView.ResizeToContents, QHeaderView.Stretch,
                                QHeaderView.ResizeToContents]):
        header.setSectionResizeMode(col, mode)
    table.setEditTriggers(QTableWidget.NoEditTriggers)
    table.hide()
    return table
