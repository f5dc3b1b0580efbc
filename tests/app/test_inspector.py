"""The Inspector and the Timeline panel, offscreen: clicks show the right arithmetic, the
gradient check runs off the GUI thread and fails when a gradient is corrupted, resuming from a
scrubbed moment replays or forks the run."""
import math

import numpy as np
import pytest
from PyQt5.QtCore import QSize, Qt
from PyQt5.QtWidgets import QApplication, QStyle

from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer
from convscope.engine.tools.explain import fmt, traced_step
from convscope.engine.tools.gradcheck import affordable_entries
from convscope.engine.tools.timeline import Timeline
from convscope.visualizer.inspector import InspectorView
from convscope.visualizer.inspector_stages import (
    class_layout,
    kernel_layout,
    matrix_layout,
    vector_layout,
)
from convscope.visualizer.timeline_panel import TimelinePanel


def digits(n, seed=0):
    """uint8 (n, 28, 28): bright vertical strokes on black (constant background: pool ties)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for img in out:
        for _ in range(3):
            r, c = rng.integers(4, 24, 2)
            img[r - 3:r + 4, c - 1:c + 2] = rng.integers(120, 256)
    return out


def trainer_for(preset="seed", pool="max", n=40):
    model = Model(build_config(preset, pool=pool), seed=11)
    return Trainer(model, digits(n), np.arange(n) % 10, lr=0.01, seed=2)


@pytest.fixture
def view(qtbot):
    v = InspectorView()
    qtbot.addWidget(v)
    v.resize(1280, 800)
    v.show()
    yield v
    assert v.shutdown()


def click(qtbot, view, key, index):
    """A real mouse click on the cell of ``index`` in the grid of stage ``key``."""
    grid = view.grids[key]
    rect = grid.cell_rect(*view.stages[key].layout.to_cell(index))
    view.scroll.ensureWidgetVisible(grid)
    qtbot.mouseClick(grid, Qt.LeftButton, pos=rect.center())
    assert view.selection == (key, tuple(index))
    return view.arithmetic_text.toPlainText()


@pytest.mark.slow
def test_clicked_cells_show_arithmetic_equal_to_an_independent_recomputation(qtbot, view):
    trainer = trainer_for()
    for _ in range(5):
        trainer.step()
    st = traced_step(trainer)
    view.set_step(st)
    x = st.trace["input"][0].astype(np.float64)
    w = st.params_before["conv1.W"].astype(np.float64)
    conv = np.stack([[[np.sum(x[i:i + 3, j:j + 3] * w[:, :, 0, f]) for f in range(8)]
                      for j in range(26)] for i in range(26)])
    # conv cell: the nine products and their sum
    text = click(qtbot, view, "conv1", (9, 14, 5))
    assert "9 products" in text and f"sum = {fmt(conv[9, 14, 5])}" in text
    assert view.explanation.value == pytest.approx(conv[9, 14, 5], abs=1e-9)
    # the 3x3 input region and the filter are outlined as its sources
    assert sorted(view.grids["input"].sources) == [(0, r, c) for r in range(9, 12)
                                                   for c in range(14, 17)]
    # pooled value: the max of its four candidates, ties called out
    for index in [(4, 7, 1), (0, 0, 3)]:
        i, j, c = index
        window = conv[2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
        text = click(qtbot, view, "pool1", index)
        assert view.explanation.value == pytest.approx(window.max(), abs=1e-6)
        assert ("tie:" in text) == (np.sum(np.isclose(window, window.max(), atol=0)) > 1)
    assert "tie:" in text  # the black corner: four equal candidates
    # softmax entry from the exponentials
    t = st.trace["logits"][0].astype(np.float64)
    text = click(qtbot, view, "probs", (3,))
    assert view.explanation.value == pytest.approx(np.exp(t[3]) / np.exp(t).sum(), rel=1e-6)
    assert text.count("\n  exp(t[") == 10
    # a filter-gradient entry: sum over regions of region value x dL/dout
    g = st.trace["pool1.dx"][0]
    text = click(qtbot, view, "conv1.dW", (2, 1, 0, 6))
    expected = np.sum(x[2:28, 1:27] * g[:, :, 6])
    assert view.explanation.value == pytest.approx(expected, abs=1e-9)
    assert "676 terms" in text
    # dL/dout: only the label entry is non-zero
    label = int(st.trace["labels"][0])
    click(qtbot, view, "dL_dout", (label,))
    assert view.explanation.value == pytest.approx(-1 / st.trace["probs"][0, label], rel=1e-6)
    # the update: before - lr * grad = after
    text = click(qtbot, view, "update:dense1.W:after", (77, label))
    assert view.explanation.stored == st.params_after["dense1.W"][77, label]
    assert view.explanation.value == view.explanation.stored
    assert "after" in text and "change" in text


@pytest.mark.slow
def test_the_view_draws_every_stage(qtbot, view):
    view.set_step(traced_step(trainer_for()))
    keys = list(view.stages)
    for key in ["input", "conv1", "pool1.mask", "pool1", "flatten", "logits", "probs", "loss",
                "dL_dout", "dout_dt", "dL_dt", "dense1.dW", "dense1.db", "flatten.dx",
                "pool1.dx", "conv1.dW", "update:conv1.W:before", "update:conv1.W:change",
                "update:dense1.W:after", "update:dense1.b:change"]:
        assert key in keys
    assert keys.index("conv1") < keys.index("loss") < keys.index("dL_dout") \
        < keys.index("conv1.dW") < keys.index("update:conv1.W:before")
    assert view.stages["dense1.dW"].layout.maps.shape == (80, 13, 13)  # 10 class images x 8
    image = view.grab().toImage()
    colors = {image.pixel(x, y) for x in range(0, image.width(), 7)
              for y in range(0, image.height(), 7)}
    assert len(colors) > 50


def test_layouts_map_cells_to_elements_and_back():
    rng = np.random.default_rng(0)
    for lay, shape in [(class_layout(rng.random((1352, 10)), (13, 13, 8)), (1352, 10)),
                       (kernel_layout(rng.random((3, 3, 4, 6))), (3, 3, 4, 6)),
                       (vector_layout(rng.random(1352), 104), (1352,)),
                       (matrix_layout(rng.random((1568, 128))), (1568, 128))]:
        for _ in range(20):
            index = tuple(int(rng.integers(s)) for s in shape)
            k, i, j = lay.to_cell(index)
            assert lay.to_index(k, i, j) == index


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["seed", "deep", "lenet"])
@pytest.mark.parametrize("pool", ["max", "avg", "min"])
def test_gradient_check_button_passes_for_every_preset_and_pooling(qtbot, view, preset, pool):
    view.gradcheck.entries = 8 if preset == "lenet" else 20  # a sample, to keep this quick
    view.set_step(traced_step(trainer_for(preset, pool)))
    with qtbot.waitSignal(view.gradcheck.finished, timeout=30000) as blocker:
        view.gradcheck.button.click()
    report = blocker.args[0]
    assert report["passed"], report["layers"]
    table = view.gradcheck.table
    assert table.rowCount() == len(report["layers"]) >= 2
    assert all(table.item(r, 2).text().endswith("pass") for r in range(table.rowCount()))
    assert "passed" in view.gradcheck.status.text()


@pytest.mark.slow
def test_gradient_check_is_shown_failing_when_a_gradient_is_corrupted(qtbot, view):
    view.gradcheck.entries = 20
    view.set_step(traced_step(trainer_for()))

    def corrupt(grads):
        grads["conv1.W"] = grads["conv1.W"] * 1.01  # a 1% bug in the filter gradient
        return grads

    view.gradcheck.grad_hook = corrupt
    with qtbot.waitSignal(view.gradcheck.finished, timeout=30000) as blocker:
        view.gradcheck.button.click()
    report = blocker.args[0]
    assert not report["passed"] and report["layers"]["conv1"] > 1e-3
    rows = {view.gradcheck.table.item(r, 0).text(): view.gradcheck.table.item(r, 2).text()
            for r in range(view.gradcheck.table.rowCount())}
    assert rows["conv1"].endswith("FAIL") and rows["dense1"].endswith("pass")
    assert "FAILED" in view.gradcheck.status.text()


# the inspector's size in the main window at 1280x800, 1600x1000 and 1920x1080, and the
# narrowest that still puts the arithmetic beside the stages
SIZES = {"1280x800": (571, 585), "1600x1000": (807, 751), "1920x1080": (1044, 818),
         "narrowest beside": (740, 700)}


def fit(qtbot, view, size, preset="seed"):
    """The view at ``size`` after a step of ``preset``, once its deferred fit has run."""
    view.resize(*size)
    view.set_step(traced_step(trainer_for(preset)))
    qtbot.waitUntil(lambda: view.size() == QSize(*size) and not view._fit_timer.isActive())
    qtbot.wait(50)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_conv_arithmetic_fits_its_column_with_whole_matrix_rows(qtbot, view, size):
    fit(qtbot, view, size)
    view.select("conv1", (9, 14, 5))
    qtbot.wait(20)
    columns = view._text_columns()
    lines = view.arithmetic_text.toPlainText().split("\n")
    assert columns >= 25 and max(len(line) for line in lines) <= columns  # 25: 240 px
    assert view.arithmetic_text.horizontalScrollBar().maximum() == 0  # fits in pixels too
    st = view.step_trace
    words = [line.split() for line in lines]
    for row in [*st.trace["input"][0, 9:12, 14:17], *st.params_before["conv1.W"][:, :, 0, 5]]:
        numbers = [f"{float(v):.3g}" for v in row]  # a matrix row, together on one line
        assert any(ws[k:k + 3] == numbers for ws in words for k in range(len(ws))), row


@pytest.mark.slow
@pytest.mark.parametrize("size", [SIZES["1280x800"], SIZES["narrowest beside"]])
def test_the_arithmetic_scroll_bar_spans_exactly_its_text(qtbot, view, size):
    """Scrolled to the end, the last line shows in full; the bar's range is the lines that do
    not fit; a short text after a long one has no bar and starts at its first line."""
    fit(qtbot, view, size)
    text = view.arithmetic_text
    bar = text.verticalScrollBar()
    view.select("logits", (3,))
    qtbot.wait(20)
    lines = text.document().blockCount()
    line_height = text.blockBoundingRect(text.document().firstBlock()).height()
    room = text.viewport().height() - text.document().documentMargin()
    shown = int(room // line_height)  # whole lines in view
    assert lines > shown and bar.isVisible()
    assert (bar.maximum(), bar.pageStep()) == (lines - shown, shown)
    bar.setValue(bar.maximum())
    last = text.blockBoundingGeometry(text.document().lastBlock()).translated(
        text.contentOffset())
    assert last.top() >= 0 and last.bottom() <= text.viewport().height()
    view.select("dL_dt", (3,))
    qtbot.wait(20)
    assert text.document().blockCount() <= shown
    assert bar.maximum() == 0 and not bar.isVisible() and bar.value() == 0


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["seed", "lenet"])
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_the_stages_fit_without_a_horizontal_scroll_bar(qtbot, view, size, preset):
    fit(qtbot, view, size, preset)
    assert view.content.minimumSizeHint().width() <= view.scroll.viewport().width()
    assert view.scroll.horizontalScrollBar().maximum() == 0


@pytest.mark.slow
def test_the_check_of_the_seed_net_takes_every_entry_and_shows_progress(qtbot, view):
    fit(qtbot, view, SIZES["1600x1000"])
    seen = []
    with qtbot.waitSignal(view.gradcheck.finished, timeout=30000) as blocker:
        view.gradcheck.button.click()
        assert view.gradcheck.button.text().startswith("Stop")
        progress = view.gradcheck._running.signals.progress
        progress.connect(lambda done, total: seen.append((done, total)))
    report = blocker.args[0]
    assert report["passed"]
    assert all(v["checked"] == v["size"] for v in report["params"].values())
    assert "Every entry checked, 13,602 of 13,602" in view.gradcheck.status.text()
    assert seen[-1] == (13602, 13602) and seen == sorted(seen)
    assert view.gradcheck.button.text() == "Gradient check this sample"
    table = view.gradcheck.table
    header, margin = table.horizontalHeader(), table.style().pixelMetric(QStyle.PM_HeaderMargin)
    for col in range(table.columnCount()):  # no header cut short
        text = table.horizontalHeaderItem(col).text()
        assert header.sectionSize(col) >= header.fontMetrics().horizontalAdvance(text) + 2 * margin


@pytest.mark.slow
def test_a_check_above_the_budget_is_sampled_and_says_so(qtbot, view):
    view.gradcheck.budget = 2e8
    view.set_step(traced_step(trainer_for("lenet")))
    with qtbot.waitSignal(view.gradcheck.finished, timeout=30000) as blocker:
        view.gradcheck.button.click()
    report = blocker.args[0]
    n = affordable_entries(view.model, 2e8)
    assert report["passed"] and max(v["checked"] for v in report["params"].values()) == n
    checked = sum(v["checked"] for v in report["params"].values())
    assert f"A random sample checked, {checked:,} of 215,370 entries, at most {n:,} per " \
        "weight" in view.gradcheck.status.text()
    assert "over the bound of 2.0e8" in view.gradcheck.status.text()


@pytest.mark.slow
def test_clicking_again_stops_the_gradient_check(qtbot, view):
    view.gradcheck.budget = math.inf  # every entry of lenet: most of a minute
    view.set_step(traced_step(trainer_for("lenet")))
    finished, seen = [], []
    view.gradcheck.finished.connect(finished.append)
    view.gradcheck.button.click()
    view.gradcheck._running.signals.progress.connect(lambda done, total: seen.append(done))
    qtbot.waitUntil(lambda: bool(seen), timeout=30000)
    view.gradcheck.button.click()
    qtbot.waitUntil(lambda: view.gradcheck.button.text() == "Gradient check this sample")
    assert view.gradcheck.pool.activeThreadCount() == 0 and view.gradcheck.button.isEnabled()
    assert "stopped" in view.gradcheck.status.text()
    assert not finished and view.gradcheck.report is None


@pytest.mark.slow
def test_timeline_panel_scrubs_and_resumes_exactly_or_forks(qtbot):
    trainer = trainer_for(n=30)
    trainer.probe, trainer.probe_label = digits(1, seed=9)[0], 3
    timeline = Timeline(every=10)
    timeline.start(trainer)
    panel = TimelinePanel(timeline)
    qtbot.addWidget(panel)
    panel.set_config(trainer.model.config)

    def run(steps):
        losses = []
        for _ in range(steps):
            report = trainer.step()
            timeline.after_step(trainer, report)
            losses.append(report.loss)
        return losses

    def on_resume(step, lr):  # what the worker does with the request
        trainer.lr = lr
        trainer.set_state(timeline.resume(step, lr), hyperparameters=False)

    panel.resume_requested.connect(on_resume)
    first = run(40)
    panel.set_live_snapshot(trainer.snapshot())
    panel.refresh()
    assert panel.steps == [0, 10, 20, 30, 40] and panel.slider.maximum() == 5
    with qtbot.waitSignal(panel.scrubbed) as blocker:
        panel.slider.setValue(2)  # step 20
    moment = blocker.args[0]
    assert moment.step == 20 and panel.marker.isVisible()
    assert moment.probe_trace["probs"].shape == (1, 10)
    assert not np.array_equal(moment.params["conv1.W"], trainer.model.params()["conv1.W"])
    assert panel.lr_spin.value() == pytest.approx(0.01)
    panel.resume_button.click()  # same lr: the same losses, bit for bit
    assert run(20) == first[20:]
    panel.refresh()
    panel.show_step(10)
    panel.lr_spin.setValue(0.03)
    assert "forks" in panel.fork_label.text()
    panel.resume_button.click()
    forked = run(30)
    assert forked[1:] != first[11:]
    panel.refresh()
    assert len(panel.branch_curves) == 2  # the replayed tail and the lr 0.01 run
    assert "0.01" in timeline.branches()[-1].label
    assert panel.slider.value() == panel.slider.maximum()  # back to live


# ---- in the main window ----------------------------------------------------------------------
@pytest.mark.slow
def test_right_arrow_steps_one_sample_and_the_inspector_shows_it(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    QApplication.setActiveWindow(window)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    window.inspector.arithmetic_text.setFocus()  # reading the arithmetic must not eat the key
    with qtbot.waitSignal(window.worker.traced, timeout=30000) as blocker:
        qtbot.keyClick(window.focusWidget() or window, Qt.Key_Right)
    st = blocker.args[0]
    qtbot.waitUntil(lambda: window.inspector.step_trace is st)
    assert st.step == 1 and st.trace["input"].shape == (1, 28, 28)  # one sample, not a batch
    assert window.worker.trainer.step_count == 1
    x = st.trace["input"][0].astype(np.float64)
    w = st.params_before["conv1.W"].astype(np.float64)
    e = window.inspector.select("conv1", (3, 4, 2))
    assert e.value == pytest.approx(np.sum(x[3:6, 4:7] * w[:, :, 0, 2]), abs=1e-9)
    assert not np.array_equal(st.params_after["conv1.W"], st.params_before["conv1.W"])
    # Shift+Right: one batch (8 here), which the inspector does not show
    window.progress_seen.clear()
    qtbot.keyClick(window.focusWidget(), Qt.Key_Right, Qt.ShiftModifier)
    qtbot.waitUntil(lambda: any(8 in b.batch for b in window.progress_seen), timeout=30000)
    assert window.worker.trainer.step_count == 2 and window.inspector.step_trace is st
    # Space: train, Space again: pause
    with qtbot.waitSignal(window.worker.state_changed, timeout=30000) as started:
        qtbot.keyClick(window.focusWidget(), Qt.Key_Space)
    with qtbot.waitSignal(window.worker.state_changed, timeout=30000) as paused:
        qtbot.keyClick(window.focusWidget(), Qt.Key_Space)
    assert started.args == [True] and paused.args == [False]
    shortcuts = {window.menus.train_action.shortcut().toString(),
                 window.menus.step_sample_action.shortcut().toString(),
                 window.menus.step_batch_action.shortcut().toString()}
    assert shortcuts == {"Space", "Right", "Shift+Right"}
    menus = {m.text().replace("&", ""): [a.text() for a in m.menu().actions()]
             for m in window.menuBar().actions()}
    assert "Keyboard shortcuts" in menus["Help"]


@pytest.mark.slow
def test_resuming_from_the_timeline_tab_replays_the_losses_or_forks(window, run_steps, qtbot):
    window.worker.timeline.every = 10
    first = run_steps(window, 30)
    panel = window.timeline_panel
    panel.refresh()
    assert panel.steps == [0, 10, 20, 30]
    panel.show_step(10)
    assert window.moment is not None and window.moment.step == 10  # the panels show step 10
    panel.resume_button.click()
    qtbot.waitUntil(lambda: window.latest.step == 10 and window.moment is None, timeout=30000)
    assert run_steps(window, 20) == first[10:]  # batch 8, momentum 0.9: bit for bit
    panel.refresh()
    panel.show_step(10)
    panel.lr_spin.setValue(0.05)
    panel.resume_button.click()
    qtbot.waitUntil(lambda: window.latest.step == 10 and window.moment is None, timeout=30000)
    forked = run_steps(window, 20)
    assert window.controls.hyper().lr == pytest.approx(0.05)
    assert forked[0] == first[10] and forked[1:] != first[11:]
    branches = window.worker.timeline.branches()
    assert len(branches) == 2 and "0.01" in branches[-1].label


@pytest.mark.slow
def test_a_timeline_moment_is_marked_on_the_curves_and_in_the_status_bar(window, run_steps):
    window.worker.timeline.every = 10
    run_steps(window, 30)
    panel = window.timeline_panel
    panel.refresh()
    panel.show_step(10)
    batch = window.controls.hyper().batch_size
    for curves in (window.loss_panel, window.accuracy_panel):
        assert curves.marker.isVisible() and curves.marker.value() == 10 * batch
    state = window.status.labels["state"].text()
    assert "step 10" in state and "Timeline" in state
    panel.go_live()
    assert not window.loss_panel.marker.isVisible()
    assert "Timeline" not in window.status.labels["state"].text()


@pytest.mark.slow
def test_a_reset_goes_back_to_the_live_run(window, run_steps, qtbot):
    window.worker.timeline.every = 10
    run_steps(window, 30)
    window.timeline_panel.refresh()
    window.timeline_panel.show_step(10)
    assert window.moment is not None
    started = []
    window.run_started.connect(started.append)
    window.controls.reset_button.click()
    qtbot.waitUntil(lambda: bool(started) and window.latest is not None, timeout=30000)
    assert window.moment is None and not window.loss_panel.marker.isVisible()
    assert window.latest.step == 0 and "Timeline" not in window.status.labels["state"].text()


@pytest.mark.slow
def test_the_inspector_opens_in_its_own_window_and_goes_back(window, qtbot):
    ins = window.inspector
    ins.window_button.click()
    assert ins.isWindow() and ins.isVisible()
    with qtbot.waitSignal(window.worker.traced, timeout=30000):
        window.menus.step_sample_action.trigger()
    qtbot.waitUntil(lambda: ins.step_trace is not None and ins.step_trace.step == 1)
    ins.close()  # closing the window puts it back in its tab
    assert not ins.isWindow()
    tabs = [window.tabs.widget(i) for i in range(window.tabs.count())]
    assert any(getattr(t, "widget", lambda: None)() is ins for t in tabs)


@pytest.mark.slow
def test_timeline_offers_the_current_learning_rate(window):
    assert window.timeline_panel.lr_spin.value() == pytest.approx(window.controls.lr_spin.value())
    window.controls.lr_spin.setValue(0.02)
    assert window.timeline_panel.lr_spin.value() == pytest.approx(0.02)


@pytest.mark.slow
def test_the_inspector_tab_shows_several_stages_at_once_at_1600x1000(window, qtbot):
    """In the main window the stage cards flow side by side: at least 4 lie wholly inside the
    scroll area's viewport; the curves below keep their height (no layout jump)."""
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: bool(window.dock_layout.default_state))  # the first layout has settled
    loss_before = window.docks["Loss"].height()
    window.tabs.setCurrentIndex([window.tabs.tabText(i) for i in
                                 range(window.tabs.count())].index("Inspector"))
    with qtbot.waitSignal(window.worker.traced, timeout=30000):
        window.worker.step_samples(1)
    ins = window.inspector
    qtbot.waitUntil(lambda: ins.step_trace is not None and bool(ins.cards))
    qtbot.wait(200)  # the deferred fit to the tab's width
    port = ins.scroll.viewport()
    seen = port.rect()

    def visible(card):
        top_left = card.mapTo(port, card.rect().topLeft())
        return card.isVisible() and seen.contains(
            type(seen)(top_left, card.size()).adjusted(0, 0, -1, -1))

    shown = [c.keys[0] for c in ins.cards if visible(c)]
    assert len(shown) >= 4, shown
    assert shown[:4] == ["input", "conv1", "pool1.mask", "pool1"]
    assert ins.splitter.orientation() == Qt.Horizontal  # the arithmetic beside the stages
    assert window.docks["Loss"].height() == loss_before


@pytest.mark.slow
def test_the_timeline_tab_shows_the_run_so_far_as_soon_as_it_is_opened(window, run_steps):
    window.worker.timeline.every = 10
    run_steps(window, 30)
    window.show()
    names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    window.tabs.setCurrentIndex(names.index("Timeline"))
    assert window.timeline_panel.steps == [0, 10, 20, 30]  # no wait for its timer
