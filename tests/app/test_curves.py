"""The loss and accuracy curves as a record: going back and Reset keep the history."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from convscope.visualizer.curves import AccuracyPanel, LossPanel
from convscope.visualizer.messages import Hyper
from convscope.visualizer.plot_axes import robust_top, tick_text
from convscope.visualizer.theme import LIGHT


def steps(start: int, n: int, loss: float = 1.0, batch: int = 10):
    samples = np.arange(start + 1, start + n + 1, dtype=np.int64) * batch
    return SimpleNamespace(samples=samples, loss=np.full(n, loss, np.float32),
                           accuracy=np.full(n, 0.5, np.float32),
                           batch=np.full(n, batch, np.int32))


@pytest.fixture
def panels(qtbot):
    made = [LossPanel(), AccuracyPanel()]
    for p in made:
        qtbot.addWidget(p)
        p.apply_theme(LIGHT)
    return made


def all_points(panel) -> int:
    """Points of the curves kept when going back (all but the raw steps), live or dimmed."""
    return sum(len(panel.histories[k]) for k in panel.ghost_keys) + panel.ghost_count()


@pytest.mark.slow
def test_going_back_keeps_the_abandoned_branch_and_continues_from_there(panels):
    loss, acc = panels
    for p in panels:
        p.add_steps(steps(0, 100))
        p.add_test(500, 0.7)
        p.add_test(900, 0.6)
    before = {id(p): {k: len(h) for k, h in p.histories.items()} for p in panels}
    for p in panels:
        p.fork(500)
    for p in panels:
        kept = {k: len(h) for k, h in p.histories.items()}
        assert all(h.x.max() <= 500 for h in p.histories.values() if len(h))
        assert len(p.branches) == 1
        for key in p.ghost_keys:  # every dropped point of a kept curve is in the branch
            ghost = [i for i in p.branches[0] if i.ghost_of == key]
            dropped = before[id(p)][key] - kept[key]
            assert (len(ghost[0].xData) if ghost else 0) == dropped
    assert "abandoned" in loss.plot.titleLabel.text
    loss.add_steps(steps(50, 10, loss=0.2))  # the live run goes on from the moment
    h = loss.histories["smooth"]
    assert h.x[-1] == 600 and np.all(np.diff(h.x) > 0)  # no overlap with the branch
    assert 0.2 < loss.histories["smooth"].y[-1] < 1.0  # smoothing continues, not restarts


@pytest.mark.slow
def test_a_reset_keeps_the_previous_run_until_the_next_reset(panels):
    loss, _ = panels
    loss.add_steps(steps(0, 40))
    loss.add_test(400, 0.9)
    loss.new_run("seed net on mini")
    assert loss.point_count() == 0 and loss.ghost_count() == 40 + 1
    assert "previous run" in loss.plot.titleLabel.text
    assert "seed net on mini" in loss.plot.titleLabel.toolTip()
    loss.add_steps(steps(0, 5))
    loss.fork(20)
    loss.new_run("deep net on mini")  # the run before is gone, the last one stays
    assert loss.ghost_count() == 2 and not loss.branches
    assert "deep net" in loss.plot.titleLabel.toolTip()


def test_the_loss_range_ignores_spikes_and_has_a_log_scale(panels):
    loss, _ = panels
    loss.add_steps(steps(0, 200, loss=0.15))
    loss.add_steps(steps(200, 2, loss=700.0))  # a blow-up
    loss.refresh()
    low, top = loss.plot.getViewBox().viewRange()[1]
    assert top < 1.0  # 0.15 readable, not flattened by 700
    loss.set_log(True)
    low, top = loss.plot.getViewBox().viewRange()[1]
    assert low < np.log10(0.15) < top
    assert loss.plot.getAxis("left").tickStrings([-1.0, 0.0], 1.0, 1.0) == ["0.1", "1"]


def test_tick_labels_write_their_scale():
    assert tick_text(0.15, 0.05) == "0.15"
    assert tick_text(150, 50) == "150"
    assert tick_text(1_200_000, 200_000) == "1.2M"
    assert tick_text(40_000, 10_000) == "40k"
    assert robust_top([np.r_[np.ones(99), 700.0]]) < 2


def test_the_wheel_zooms_both_axes(panels):
    for p in panels:
        assert p.plot.getViewBox().state["mouseEnabled"] == [True, True]


def test_the_timeline_range_ignores_a_blow_up_and_zooms_both_axes(qtbot):
    from convscope.engine.tools.timeline import Timeline
    from convscope.visualizer.timeline_panel import TimelinePanel

    timeline = Timeline(every=10)
    for step in range(1, 401):
        timeline.record(step, 0.3 if step < 397 else 700.0)  # the last 1%
    panel = TimelinePanel(timeline)
    qtbot.addWidget(panel)
    panel.refresh()
    vb = panel.plot.getViewBox()
    assert vb.viewRange()[1][1] < 2 and vb.state["mouseEnabled"] == [True, True]
    panel.set_log(True)
    low, top = vb.viewRange()[1]
    assert low < np.log10(0.3) < top
    names = [label.text for _, label in panel.legend.items]
    assert any("snapshot" in n for n in names) and any("best" in n for n in names)


@pytest.mark.slow
def test_a_rollback_returns_to_a_good_state_and_the_curves_keep_every_point(qtbot, window):
    c = window.controls
    window.show()
    window.worker.steps(300)  # learns at lr 0.01, batch 8 (the fixture's)
    qtbot.waitUntil(lambda: window.latest.step == 300, timeout=30_000)
    qtbot.waitUntil(lambda: window.status.values.get("step") == 300, timeout=30_000)
    window.loss_panel.refresh()
    before = {id(p): all_points(p) for p in (window.loss_panel, window.accuracy_panel)}
    c.lr_spin.setValue(1.0)
    with qtbot.waitSignal(window.worker.error, timeout=30_000) as blocker:
        c.train_button.click()
    message = blocker.args[0]
    assert "went back to step" in message and "within 10% of the run's best" in message
    back = int(message.split("went back to step ")[1].split(",")[0].replace(" ", ""))
    assert back > 0  # a trained state, not the start
    qtbot.waitUntil(lambda: window.latest.step == back and not window.running, timeout=30_000)
    trainer_state = window.worker.timeline.state_at(back)["meta"]
    samples = trainer_state["samples_seen"]
    assert window.status.values["step"] == back
    assert window.status.values["epoch"] == trainer_state["epoch"]
    assert window.status.values["samples"] == samples
    for panel in (window.loss_panel, window.accuracy_panel):
        assert all(h.x.max() <= samples for h in panel.histories.values() if len(h))
        assert panel.branches and all_points(panel) >= before[id(panel)]


@pytest.mark.slow
def test_a_timeline_resume_forks_the_curves_and_the_status_is_right_at_once(qtbot, window):
    window.worker.timeline.every = 10
    window.worker.steps(60)
    qtbot.waitUntil(lambda: window.latest.step == 60, timeout=30_000)
    qtbot.waitUntil(lambda: window.status.values.get("step") == 60, timeout=30_000)
    before = all_points(window.loss_panel)
    window.timeline_panel.refresh()
    window.timeline_panel.show_step(20)
    window.timeline_panel.lr_spin.setValue(0.02)
    with qtbot.waitSignal(window.worker.resumed, timeout=30_000) as blocker:
        window.timeline_panel.resume_button.click()
    back = blocker.args[0]
    assert (back.step, back.samples, back.why) == (20, 160, "resume")
    qtbot.waitUntil(lambda: window.status.values.get("step") == 20)
    assert window.status.values["samples"] == 160 and window.status.values["epoch"] == 0
    assert window.loss_panel.branches and all_points(window.loss_panel) >= before
    assert window.loss_panel.histories["smooth"].x.max() <= 160


@pytest.mark.slow
def test_one_epoch_shows_that_it_runs_and_refuses_a_second_click(qtbot, window):
    c = window.controls
    said, states = [], []
    window.worker.busy.connect(said.append)
    window.worker.busy.connect(lambda _: states.append(
        (c.step_epoch_button.isEnabled(), c.step_epoch_button.text(), c.train_button.text(),
         window.status.values.get("state"))))
    window.worker.set_hyper(Hyper(lr=0.01, batch_size=64))  # a short epoch
    c.step_epoch_button.click()
    qtbot.waitUntil(lambda: said == ["1 epoch", ""], timeout=60_000)
    enabled, text, train, state = states[0]  # while it ran
    assert not enabled and text == "running…" and "Pause" in train
    assert state == "training 1 epoch…"
    assert c.step_epoch_button.isEnabled() and c.step_epoch_button.text() == "1 epoch"
    assert window.worker.trainer.epoch == 1 and not window.running
