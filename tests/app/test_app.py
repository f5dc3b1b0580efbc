"""The real main window, offscreen: buttons drive the worker, panels show what it sends.

Panels are checked through the pixels of a grab, not just by their existence.
"""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtGui import QColor, QImage
from PyQt5.QtWidgets import QLabel

from convscope.visualizer.main_window import MainWindow
from convscope.visualizer.messages import Hyper, finite_snapshot

TIMEOUT = 20_000  # ms


def pixels(widget) -> np.ndarray:
    """The widget as it is drawn: uint8 (H, W, 3)."""
    image = widget.grab().toImage().convertToFormat(QImage.Format_RGB888)
    w, h = image.width(), image.height()
    buf = image.constBits()
    buf.setsize(image.bytesPerLine() * h)
    return np.frombuffer(buf, np.uint8).reshape(h, image.bytesPerLine())[:, :w * 3] \
        .reshape(h, w, 3).copy()


def colour_count(a: np.ndarray) -> int:
    return len(np.unique(a.reshape(-1, 3), axis=0))


def near(a: np.ndarray, color: str, tol: int = 40) -> int:
    """How many pixels are within ``tol`` of ``color``."""
    c = QColor(color)
    ref = np.array([c.red(), c.green(), c.blue()])
    return int((np.abs(a.astype(int) - ref).sum(axis=2) < tol).sum())


@pytest.fixture
def window(make_window):
    """Shown at 1280 x 800, dark, batch 1."""
    return make_window(Hyper(lr=0.01, batch_size=1), theme="dark", size=(1280, 800))


def step_now(window) -> int:
    return window.latest.step if window.latest else 0


def wait_painted(qtbot, window, step: int) -> None:
    """Until the snapshot of ``step`` is on screen in every live panel."""
    def done():
        snap = window.latest
        return (snap is not None and snap.step == step
                and window.shows(snap))
    qtbot.waitUntil(done, timeout=TIMEOUT)


@pytest.mark.slow
def test_train_and_pause_with_the_train_button(qtbot, window):
    button = window.controls.train_button
    with qtbot.waitSignal(window.worker.state_changed, timeout=TIMEOUT):
        button.click()
    assert window.running and "Pause" in button.text()
    qtbot.waitUntil(lambda: window.status.values.get("step", 0) >= 20, timeout=TIMEOUT)
    with qtbot.waitSignal(window.worker.state_changed, timeout=TIMEOUT) as paused:
        button.click()
    assert paused.args == [False] and "Train" in button.text()
    step = window.worker.trainer.step_count
    qtbot.waitUntil(lambda: window.status.values.get("step") == step, timeout=TIMEOUT)
    assert window.status.values["state"] == "paused"


@pytest.mark.slow
def test_step_buttons_advance_by_one_sample_and_one_batch(qtbot, window):
    c = window.controls
    before = window.latest
    with qtbot.waitSignal(window.worker.progress, timeout=TIMEOUT):
        c.step_sample_button.click()
    wait_painted(qtbot, window, before.step + 1)
    after = window.latest
    assert window.status.values["samples"] == 1
    assert not np.array_equal(before.params["conv1.W"], after.params["conv1.W"])
    c.batch_spin.setValue(8)
    with qtbot.waitSignal(window.worker.progress, timeout=TIMEOUT):
        c.step_batch_button.click()
    wait_painted(qtbot, window, before.step + 2)
    assert window.status.values["step"] == 2 and window.status.values["samples"] == 9


@pytest.mark.slow
def test_reset_with_the_same_seed_gives_the_same_first_losses(qtbot, window):
    def first_losses():
        for _ in range(12):
            window.controls.step_sample_button.click()
        qtbot.waitUntil(lambda: len(window.loss_panel.histories["raw"]) == 12, timeout=TIMEOUT)
        return window.loss_panel.histories["raw"].y.copy()

    window.controls.seed_spin.setValue(3)
    with qtbot.waitSignal(window.run_started, timeout=TIMEOUT):
        window.controls.reset_button.click()
    a = first_losses()
    with qtbot.waitSignal(window.run_started, timeout=TIMEOUT):
        window.controls.reset_button.click()
    assert len(window.loss_panel.histories["raw"]) == 0  # curves restart with the run
    b = first_losses()
    np.testing.assert_array_equal(a, b)
    assert window.info.settings.seed == 3


@pytest.mark.slow
def test_hyperparameter_widgets_reach_the_worker(qtbot, window):
    c = window.controls
    c.lr_spin.setValue(0.02)
    c.momentum_spin.setValue(0.5)
    c.batch_spin.setValue(4)
    with qtbot.waitSignal(window.worker.progress, timeout=TIMEOUT) as blocker:
        c.step_batch_button.click()
    report = blocker.args[0]
    assert report.lr == pytest.approx(0.02) and list(report.batch) == [4]
    qtbot.waitUntil(lambda: window.status.values.get("lr") == pytest.approx(0.02))
    assert window.worker.trainer.momentum == pytest.approx(0.5)
    c.lr_spin.stepBy(1)  # the 1-2-5 ladder
    assert c.lr_spin.value() == pytest.approx(0.05)


@pytest.mark.slow
def test_architecture_changes_wait_for_reset(qtbot, window):
    c = window.controls
    c.preset_combo.setCurrentIndex(c.preset_combo.findData("deep"))
    c.pool_combo.setCurrentIndex(c.pool_combo.findData("min"))
    assert c.pending_label.isVisibleTo(c)
    assert window.info.config["preset"] == "seed"
    with qtbot.waitSignal(window.run_started, timeout=TIMEOUT) as blocker:
        c.reset_button.click()
    assert blocker.args[0].config["preset"] == "deep" and blocker.args[0].config["pool"] == "min"
    assert not c.pending_label.isVisibleTo(c)
    qtbot.waitUntil(lambda: window.latest is not None and "conv2.W" in window.latest.params,
                    timeout=TIMEOUT)
    wait_painted(qtbot, window, 0)
    assert [s.name for s in window.feature_maps.view.sections] == [
        "relu1", "pool1", "relu2", "pool2"]
    assert len(window.filters_panel.rows) == 2


@pytest.mark.slow
def test_each_panel_shows_real_content_after_200_steps(qtbot, window):
    theme = window.theme
    with qtbot.waitSignal(window.worker.snapshot, timeout=TIMEOUT,
                          check_params_cb=lambda s: s.step == 200):
        window.worker.steps(200)
    wait_painted(qtbot, window, 200)
    qtbot.waitUntil(lambda: window.status.values.get("step") == 200, timeout=TIMEOUT)
    window._repaint()  # the curves take the last points on the next tick
    maps = pixels(window.feature_maps.graphics)
    assert colour_count(maps) > 300  # 16 maps on a continuous colour map
    assert colour_count(pixels(window.filters_panel.graphics)) > 40
    assert colour_count(pixels(window.templates_panel.graphics)) > 200
    probe = pixels(window.probe_panel.graphics)
    assert near(probe, "#ffffff") > 500 and near(probe, "#000000") > 500  # a digit
    label = int(window.info.y_test[0])
    assert window.latest.probe_trace["labels"][0] == label
    assert near(pixels(window.probs_panel.chart), theme.good, 30) > 200  # the true class
    for panel in (window.loss_panel, window.accuracy_panel):
        assert len(panel.histories[next(iter(panel.histories))]) >= 100
        assert near(pixels(panel.plot_widget), theme.curve2, 60) > 150  # a drawn curve
    assert "step 200" in window.status.labels["step"].text()
    assert "200 samples" in window.status.labels["samples"].text()


@pytest.mark.slow
def test_a_custom_probe_digit_is_traced(qtbot, window):
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 13:16] = 255  # a "1"
    expected = image / 255 - 0.5
    window.set_probe(image, None, "a test stroke")
    qtbot.waitUntil(lambda: np.allclose(window.latest.probe_trace["input"][0], expected,
                                        atol=1e-6), timeout=TIMEOUT)
    wait_painted(qtbot, window, window.latest.step)
    np.testing.assert_allclose(window.probe_panel.x, expected, atol=1e-6)
    assert "true" not in window.probs_panel.headline.text()  # no label, no verdict
    assert "a test stroke" in window.probe_panel.source_label.text()
    window.set_probe_index(5)
    qtbot.waitUntil(lambda: int(window.latest.probe_trace["labels"][0])
                    == int(window.info.y_test[5]), timeout=TIMEOUT)
    with pytest.raises(ValueError):
        window.set_probe(np.zeros((10, 10), np.uint8))


@pytest.mark.slow
def test_divergence_shows_a_banner_and_never_nan(qtbot, window):
    c = window.controls
    c.batch_spin.setValue(8)
    c.lr_spin.setValue(10.0)
    with qtbot.waitSignal(window.worker.error, timeout=TIMEOUT):
        c.train_button.click()
    qtbot.waitUntil(lambda: window.banner.isVisible() and not window.running, timeout=TIMEOUT)
    assert "lower the learning rate" in window.banner.label.text()
    snap = window.latest
    for key, value in snap.probe_trace.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.isfinite(value).all(), key
    window._repaint()
    for panel in (window.loss_panel, window.accuracy_panel):
        assert all(np.isfinite(h.y).all() for h in panel.histories.values())


def test_finite_snapshot_replaces_nan_and_inf():
    from convscope.engine.net.train import Snapshot
    snap = Snapshot(1, 0, {}, {"probs": np.array([np.nan, 1.0]), "logits": np.array([np.inf])})
    clean = finite_snapshot(snap)
    assert np.isfinite(clean.probe_trace["probs"]).all() and clean.probe_trace["probs"][0] == 0
    assert np.isfinite(clean.probe_trace["logits"]).all()


@pytest.mark.slow
def test_themes_and_added_panels(qtbot, window):
    window.set_theme("light")
    wait_painted(qtbot, window, window.latest.step)
    corner = pixels(window.feature_maps.graphics)[2, 2]
    assert corner.min() > 200  # a light background
    window.set_theme("dark")
    corner = pixels(window.feature_maps.graphics)[2, 2]
    assert corner.max() < 60
    tab = QLabel("extra tab")
    assert window.add_panel("Extra", tab, "tab") is None
    assert window.tabs.tabText(window.tabs.count() - 1) == "Extra"
    dock = window.add_panel("Extra dock", QLabel("extra dock"), "left", tab_with="Controls")
    assert dock.isVisible() is False or dock.isVisibleTo(window) is not None
    assert "Extra dock" in [a.text() for a in window.menus.panels_menu.actions()]
    with pytest.raises(ValueError):
        window.add_panel("Bad", QLabel(), "middle")


@pytest.mark.slow
def test_closing_while_training_stops_the_thread(qtbot):
    w = MainWindow(hyper=Hyper(batch_size=32), theme="dark")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.info is not None, timeout=TIMEOUT)
    with qtbot.waitSignal(w.worker.progress, timeout=TIMEOUT):
        w.controls.train_button.click()
    assert w.running or w.worker.steps_per_s == 0
    w.close()
    assert not w.thread.isRunning()


@pytest.mark.slow
def test_take_screenshot_saves_the_window(tmp_path):
    from PIL import Image

    from convscope.visualizer.app import take_screenshot
    out = tmp_path / "shot.png"
    assert take_screenshot(str(out), steps=20, probe=2, size=(1000, 700)) == 0
    with Image.open(out) as im:
        assert im.size == (1000, 700)
        assert len(im.getcolors(1_000_000) or []) > 200


@pytest.mark.slow
def test_hover_reads_pixels_and_pooling_winners(qtbot, window):
    from PyQt5.QtCore import QPointF
    wait_painted(qtbot, window, window.latest.step)
    panel = window.feature_maps
    trace = window.latest.probe_trace
    conv = panel.view.sections[0]
    # the centre of map 3, pixel (12, 14), in view coordinates
    n, h, w = conv.shape
    r, c = divmod(2, conv.cols)
    x = conv.x0 + c * (w * conv.factor + 1) + 14.5 * conv.factor
    y = conv.y0 + conv.top + r * (conv.lead + h * conv.factor + 1) + conv.lead + 12.5 * conv.factor
    panel.graphics.scene().sigMouseMoved.emit(panel.view.mapViewToScene(QPointF(x, y)))
    text = panel.hover_label.text()
    assert text.startswith("conv1 map 3, pixel (12, 14) = ")
    assert f"{float(trace['conv1'][0, 12, 14, 2]):+.4f}" in text
    assert ("wins its window" in text) == bool(trace["pool1.mask"][0, 12, 14, 2])
    pooled = panel.describe("pool1", 2, 6, 7)
    window_mask = trace["pool1.mask"][0, 12:14, 14:16, 2]
    wi, wj = np.argwhere(window_mask)[0]
    assert f"winner ({12 + wi}, {14 + wj})" in pooled
    assert trace["pool1"][0, 6, 7, 2] == trace["conv1"][0, 12 + wi, 14 + wj, 2]


@pytest.mark.slow
def test_hovering_a_prediction_bar_reads_its_logit_and_probability(qtbot, window):
    from PyQt5.QtCore import QPoint
    wait_painted(qtbot, window, window.latest.step)
    panel = window.probs_panel
    chart = panel.chart
    prob_area, logit_area = chart._charts()
    trace = window.latest.probe_trace
    for area, k in ((prob_area, 7), (logit_area, 2)):
        x, _ = chart._slot(area, k)
        qtbot.mouseMove(chart, QPoint(int(x), int(area.center().y())))
        qtbot.waitUntil(lambda k=k: panel.hover_label.text().startswith(f"class {k}:"))
        text = panel.hover_label.text()
        assert f"{float(trace['logits'][0, k]):+.3f}" in text
        assert f"{float(trace['probs'][0, k]):.4f}" in text


@pytest.mark.slow
def test_slow_motion_sends_every_step(qtbot, window):
    slider = window.controls.speed_slider
    slider.setValue(slider.minimum() + 4)  # 20 steps per second
    qtbot.waitUntil(lambda: window.worker.steps_per_s == 20, timeout=TIMEOUT)
    batches = []
    window.worker.progress.connect(batches.append)
    window.controls.train_button.click()
    qtbot.waitUntil(lambda: len(batches) >= 3, timeout=TIMEOUT)
    window.controls.train_button.click()
    qtbot.waitUntil(lambda: not window.running, timeout=TIMEOUT)
    assert all(len(b.step) == 1 for b in batches[:3])  # one report per step, not batched
    assert "20 steps/s" in window.controls.speed_label.text()


@pytest.mark.slow
def test_while_training_every_tick_paints_and_the_weights_ten_times_a_second(qtbot, window,
                                                                             monkeypatch):
    """A frame-rate governor that keeps up with a ~32 ms timer (no tick skipped when the GUI
    thread is idle) while the weight panels repaint at most every SLOW_INTERVAL."""
    import dataclasses

    import convscope.visualizer.repaint as mw

    window.show()
    qtbot.waitExposed(window)
    clock = [mw.time.perf_counter() + 10.0]
    monkeypatch.setattr(mw.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(mw.time, "thread_time", lambda: 0.0)  # an idle GUI thread
    window.controls.speed_slider.setValue(window.controls.speed_slider.maximum())
    window.running = True
    painted = {"Feature maps": 0, "Filters": 0}
    base = window.latest
    for k in range(60):
        clock[0] += 0.032
        window.latest = dataclasses.replace(base, step=base.step + k + 1)
        window._repaint()
        for name in painted:
            painted[name] += window._painted.get(name) is window.latest
    window.running = False
    assert painted["Feature maps"] == 60
    assert 60 * 0.032 / mw.SLOW_INTERVAL - 2 <= painted["Filters"] <= 60 * 0.032 / 0.08
