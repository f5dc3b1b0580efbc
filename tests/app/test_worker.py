"""The training worker on its QThread, driven through its command methods and signals.

Pure helpers first (histories, mosaics, colour scales), then the worker itself on the embedded
data. Every wait is a signal or a condition (waitSignal / waitUntil), never a sleep.
"""
from __future__ import annotations

import numpy as np
import pytest

from convscope.visualizer.commands import start_worker, stop_worker
from convscope.visualizer.filters import StableScale, kernel_maps
from convscope.visualizer.history import History, RateMeter, alpha_for, ema
from convscope.visualizer.messages import Hyper, RunSettings
from convscope.visualizer.mosaic import locate, tile
from convscope.visualizer.worker import TrainWorker

TIMEOUT = 20_000  # ms


# ---- pure helpers -------------------------------------------------------------------------
@pytest.mark.slow
def test_history_stays_bounded_and_keeps_the_shape():
    h = History(capacity=64)
    x = np.arange(10_000, dtype=float)
    for chunk in np.array_split(x, 97):
        h.extend(chunk, 2 * chunk)
    assert 32 <= len(h) <= 64
    assert np.all(np.diff(h.x) > 0)
    np.testing.assert_allclose(h.y, 2 * h.x)  # merging averages x and y alike
    assert h.x[0] < 200 and h.x[-1] > 9_000


def test_history_drops_non_finite_values():
    h = History(capacity=8)
    h.extend([1, 2, 3, 4], [0.5, np.nan, np.inf, 0.25])
    assert list(h.x) == [1, 4] and list(h.y) == [0.5, 0.25]


@pytest.mark.slow
def test_ema_follows_its_window_and_skips_nan():
    smooth, last = ema([1.0, 1.0, np.nan, 3.0], [0.5, 0.5, 0.5, 0.5], None)
    assert list(smooth) == [1.0, 1.0, 1.0, 2.0] and last == 2.0
    a = alpha_for([1, 32], 50.0)
    assert a[0] == pytest.approx(1 / 50) and a[0] < a[1] < 1


@pytest.mark.slow
def test_tile_and_locate_agree():
    maps = np.arange(5 * 3 * 4, dtype=np.float32).reshape(5, 3, 4)
    for factor, lead, top in ((1, 0, 0), (2, 3, 0), (3, 0, 2)):
        mosaic = tile(maps, cols=2, factor=factor, lead=lead, top=top)
        assert np.isnan(mosaic).any()  # gaps
        for y in range(mosaic.shape[0]):
            for x in range(mosaic.shape[1]):
                hit = locate(y, x, 5, 3, 4, cols=2, factor=factor, lead=lead, top=top)
                if hit is None:
                    assert np.isnan(mosaic[y, x])
                else:
                    k, i, j = hit
                    assert mosaic[y, x] == maps[k, i, j]


@pytest.mark.slow
def test_kernel_maps_and_stable_scale():
    w = np.random.default_rng(0).standard_normal((3, 3, 2, 4)).astype(np.float32)
    maps = kernel_maps(w)
    assert maps.shape == (8, 3, 3)
    np.testing.assert_array_equal(maps[1 * 4 + 2], w[:, :, 1, 2])  # input 1, filter 2
    s = StableScale(decay=0.5)
    assert 2.0 <= s.update(2.0) < 2.0 * 1.02 and 4.0 <= s.update(4.0) < 4.0 * 1.02  # at once
    shown = s.update(1.0)
    assert 2.5 <= shown < 2.5 * 1.02  # shrinks slowly
    assert s.update(1.0) < shown and s.update(np.nan) > 0
    steps = {round(s.update(4.0 - 1e-4 * k), 12) for k in range(50)}  # tiny changes ...
    assert len(steps) <= 2  # ... leave the shown scale (and the colour bar) as it was


# ---- the worker ---------------------------------------------------------------------------
@pytest.fixture
def worker(qtbot):
    """A started worker on its thread with the seed net on the embedded data, paused."""
    w = TrainWorker(hyper=Hyper(lr=0.01, batch_size=1, momentum=0.0))
    seen = {"snapshots": [], "progress": [], "errors": [], "states": []}
    w.snapshot.connect(seen["snapshots"].append)
    w.progress.connect(seen["progress"].append)
    w.error.connect(seen["errors"].append)
    w.state_changed.connect(seen["states"].append)
    w.seen = seen
    with qtbot.waitSignal(w.run_started, timeout=TIMEOUT):
        thread = start_worker(w)
        w.probe_test(3)
        w.reset(RunSettings(seed=7))
    try:
        qtbot.waitUntil(lambda: bool(seen["snapshots"]), timeout=TIMEOUT)
        yield w
    finally:
        assert stop_worker(w, thread)
    assert not thread.isRunning()


def last_snapshot(worker):
    return worker.seen["snapshots"][-1]


def losses(worker) -> np.ndarray:
    batches = worker.seen["progress"]
    return np.concatenate([b.loss for b in batches]) if batches else np.empty(0)


@pytest.mark.slow
def test_train_then_pause_stops_at_the_next_sample(qtbot, worker):
    with qtbot.waitSignal(worker.state_changed, timeout=TIMEOUT) as started:
        worker.train()
    assert started.args == [True]
    qtbot.waitUntil(lambda: last_snapshot(worker).step >= 30, timeout=TIMEOUT)
    with qtbot.waitSignal(worker.state_changed, timeout=TIMEOUT) as paused:
        worker.pause()
    assert paused.args == [False]
    step = worker.trainer.step_count
    assert last_snapshot(worker).step == step  # pausing shows exactly the paused state
    assert int(worker.seen["progress"][-1].step[-1]) == step  # every step was reported
    with qtbot.waitSignal(worker.snapshot, timeout=TIMEOUT):
        worker.step_samples(1)
    assert last_snapshot(worker).step == step + 1  # nothing ran while paused


@pytest.mark.slow
def test_while_training_it_sends_only_what_the_window_has_taken_up(qtbot, worker, monkeypatch):
    """Once a window hands tokens back (``snapshot_taken``, on each of its frames), a running
    worker sends the steps so far and a snapshot only after one; no step report is lost."""
    import convscope.visualizer.worker as worker_module
    monkeypatch.setattr(worker_module, "SNAPSHOT_WAIT", 3600.0)  # no unasked sends
    snaps, batches = worker.seen["snapshots"], worker.seen["progress"]
    first = worker.trainer.step_count + 1
    worker.snapshot_taken()
    n = len(snaps)
    worker.train()
    qtbot.waitUntil(lambda: len(snaps) == n + 1, timeout=TIMEOUT)  # the token is spent
    sent, reports = snaps[-1].step, len(batches)
    qtbot.waitUntil(lambda: worker.trainer.step_count > sent + 2000, timeout=TIMEOUT)
    qtbot.wait(50)  # anything sent by now has arrived
    assert len(snaps) == n + 1 and len(batches) == reports  # trained on, sent nothing
    worker.snapshot_taken()  # the next frame
    qtbot.waitUntil(lambda: len(snaps) == n + 2, timeout=TIMEOUT)
    assert snaps[-1].step > sent + 2000 and len(batches) == reports + 1
    worker.pause()
    qtbot.waitUntil(lambda: worker.seen["states"][-1] is False, timeout=TIMEOUT)
    steps = np.concatenate([b.step for b in batches])
    steps = steps[steps >= first]
    np.testing.assert_array_equal(steps, np.arange(first, worker.trainer.step_count + 1))
    assert snaps[-1].step == worker.trainer.step_count  # paused: exactly the paused state


@pytest.mark.slow
def test_step_one_sample_advances_by_one_and_changes_the_weights(qtbot, worker):
    before = last_snapshot(worker)
    with qtbot.waitSignal(worker.progress, timeout=TIMEOUT) as blocker:
        worker.step_samples(1)
    report = blocker.args[0]
    assert list(report.step) == [before.step + 1] and list(report.batch) == [1]
    qtbot.waitUntil(lambda: last_snapshot(worker).step == before.step + 1, timeout=TIMEOUT)
    after = last_snapshot(worker)
    assert not np.array_equal(before.params["conv1.W"], after.params["conv1.W"])
    assert not np.array_equal(before.params["dense1.W"], after.params["dense1.W"])
    assert after.probe_trace["input"].shape == (1, 28, 28)


@pytest.mark.slow
def test_step_one_batch_advances_by_the_batch_size(qtbot, worker):
    worker.set_hyper(Hyper(lr=0.01, batch_size=16, momentum=0.0))
    with qtbot.waitSignal(worker.progress, timeout=TIMEOUT) as blocker:
        worker.step_batch()
    report = blocker.args[0]
    assert list(report.step) == [1] and list(report.samples) == [16]
    assert list(report.batch) == [16]


@pytest.mark.slow
def test_step_one_epoch_ends_with_a_test_evaluation(qtbot, worker):
    worker.set_hyper(Hyper(lr=0.05, batch_size=500, momentum=0.0))
    with qtbot.waitSignal(worker.epoch_ended, timeout=TIMEOUT) as blocker:
        worker.step_epoch()
    report = blocker.args[0]
    assert report.epoch == 1 and report.step == 18  # 9,000 samples in batches of 500
    assert 0.0 <= report.test_accuracy <= 1.0 and np.isfinite(report.test_loss)


@pytest.mark.slow
def test_a_command_in_the_middle_of_an_epoch_step_leaves_the_epoch_going(qtbot, worker):
    """"1 epoch" runs the Trainer's epoch loop; a queued command is carried out between two
    of its steps and the epoch then goes on to its end."""
    from PyQt5.QtCore import Qt

    speed_at_end = []  # read on the worker thread as the epoch ends
    worker.epoch_ended.connect(lambda _: speed_at_end.append(worker.steps_per_s),
                               Qt.DirectConnection)
    worker.set_hyper(Hyper(lr=0.05, batch_size=20, momentum=0.0))
    with qtbot.waitSignal(worker.progress, timeout=TIMEOUT):
        worker.step_epoch()
    worker.set_speed(7)  # any command, mid-epoch
    with qtbot.waitSignal(worker.epoch_ended, timeout=TIMEOUT) as blocker:
        pass
    report = blocker.args[0]
    assert speed_at_end == [7]  # carried out before the epoch's end
    assert report.epoch == 1 and report.step == 450  # 9,000 samples in batches of 20


@pytest.mark.slow
def test_reset_with_the_same_seed_repeats_the_same_losses(qtbot, worker):
    def first_losses():
        worker.seen["progress"].clear()
        with qtbot.waitSignal(worker.snapshot, timeout=TIMEOUT):
            worker.steps(25)
        qtbot.waitUntil(lambda: len(losses(worker)) == 25, timeout=TIMEOUT)
        return losses(worker).copy()

    a = first_losses()
    with qtbot.waitSignal(worker.run_started, timeout=TIMEOUT):
        worker.reset(RunSettings(seed=7))
    b = first_losses()
    with qtbot.waitSignal(worker.run_started, timeout=TIMEOUT):
        worker.reset(RunSettings(seed=8))
    c = first_losses()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.slow
def test_hyperparameters_apply_at_the_next_step(qtbot, worker):
    """Doubling the learning rate doubles the first update (plain SGD), and momentum and
    batch size reach the trainer."""
    def first_update(lr):
        with qtbot.waitSignal(worker.snapshot, timeout=TIMEOUT,
                              check_params_cb=lambda snap: snap.step == 0) as start:
            worker.reset(RunSettings(seed=7))
        worker.set_hyper(Hyper(lr=lr, batch_size=4, momentum=0.0))
        with qtbot.waitSignals([worker.progress, worker.snapshot], timeout=TIMEOUT,
                               check_params_cbs=[None, lambda snap: snap.step == 1]) as done:
            worker.step_batch()
        report = next(e.args[0] for e in done.all_signals_and_args
                      if e.signal_name.startswith("progress"))
        assert report.lr == pytest.approx(lr) and list(report.batch) == [4]
        return last_snapshot(worker).params["dense1.W"] - start.args[0].params["dense1.W"]

    small, large = first_update(0.01), first_update(0.02)
    np.testing.assert_allclose(large, 2 * small, rtol=1e-3, atol=1e-7)
    worker.set_hyper(Hyper(lr=0.03, batch_size=8, momentum=0.9))
    with qtbot.waitSignal(worker.progress, timeout=TIMEOUT):
        worker.step_batch()
    t = worker.trainer  # idle now: safe to read
    assert (t.lr, t.batch_size, t.momentum) == (pytest.approx(0.03), 8, pytest.approx(0.9))


@pytest.mark.slow
def test_architecture_choices_apply_on_reset(qtbot, worker):
    with qtbot.waitSignal(worker.run_started, timeout=TIMEOUT) as blocker:
        worker.reset(RunSettings(preset="deep", filters=4, pool="avg", relu=True))
    info = blocker.args[0]
    assert info.config["preset"] == "deep" and info.config["pool"] == "avg"
    # the layer list travels with the run: names, kinds and output shapes of this network
    assert [(n, k) for n, k, _ in info.layers] == [
        ("conv1", "conv"), ("relu1", "relu"), ("pool1", "pool"), ("conv2", "conv"),
        ("relu2", "relu"), ("pool2", "pool"), ("flatten", "flatten"), ("dense1", "dense")]
    assert info.layers[0][2] == (28, 28, 4) and info.layers[-1][2] == (10,)
    qtbot.waitUntil(lambda: "conv2.W" in last_snapshot(worker).params, timeout=TIMEOUT)
    snap = last_snapshot(worker)
    assert snap.params["conv1.W"].shape == (3, 3, 1, 4)
    assert snap.params["conv2.W"].shape == (3, 3, 4, 8)
    assert "pool1.mask" not in snap.probe_trace  # average pooling has no winners


@pytest.mark.slow
def test_divergence_pauses_and_keeps_finite_weights(qtbot, worker):
    worker.set_hyper(Hyper(lr=10.0, batch_size=8, momentum=0.0))
    with qtbot.waitSignal(worker.error, timeout=TIMEOUT) as blocker:
        worker.train()
    assert "diverged" in blocker.args[0] and "lower the learning rate" in blocker.args[0]
    qtbot.waitUntil(lambda: worker.seen["states"][-1] is False, timeout=TIMEOUT)
    snap = last_snapshot(worker)
    assert snap.step == worker.trainer.step_count  # the last step that was applied
    assert all(np.isfinite(v).all() for v in snap.params.values())
    assert np.isfinite(losses(worker)).all()


@pytest.mark.slow
def test_a_bad_dataset_is_reported_and_the_run_is_kept(qtbot, worker, tmp_path):
    with qtbot.waitSignal(worker.error, timeout=TIMEOUT) as blocker:
        worker.reset(RunSettings(dataset=str(tmp_path)))
    assert str(tmp_path) in blocker.args[0]
    with qtbot.waitSignal(worker.progress, timeout=TIMEOUT):  # the old run still trains
        worker.step_samples(1)


@pytest.mark.slow
def test_stopping_mid_training_ends_the_thread(qtbot):
    w = TrainWorker(hyper=Hyper(batch_size=32))
    with qtbot.waitSignal(w.run_started, timeout=TIMEOUT):
        thread = start_worker(w)
        w.reset(RunSettings())
    with qtbot.waitSignal(w.progress, timeout=TIMEOUT):
        w.train()
    with qtbot.waitSignal(thread.finished, timeout=3000):
        assert stop_worker(w, thread, timeout_ms=3000)
    assert not thread.isRunning()


@pytest.mark.slow
def test_test_evaluations_keep_up_within_an_epoch(qtbot, worker, monkeypatch):
    import convscope.visualizer.reports as reports_module
    monkeypatch.setattr(reports_module, "EVAL_INTERVAL", 0.0)
    monkeypatch.setattr(reports_module, "EVAL_SHARE", 1.0)  # evaluate after every step
    worker._evals.next_at = 0.0
    reports = []
    worker.evaluated.connect(reports.append)
    worker.train()
    qtbot.waitUntil(lambda: len(reports) >= 2, timeout=TIMEOUT)
    worker.pause()
    qtbot.waitUntil(lambda: worker.seen["states"][-1] is False, timeout=TIMEOUT)
    assert all(0 < r.samples < 9_000 for r in reports)  # within the first epoch
    assert reports[0].samples < reports[1].samples
    assert all(0 <= r.test_accuracy <= 1 and np.isfinite(r.test_loss) for r in reports)


def test_a_history_cut_after_a_moment_returns_the_later_points():
    h = History(capacity=8)
    h.extend(np.arange(1, 21), np.arange(1, 21) * 10.0)  # compacted once: stride 2
    xs, ys = h.cut_after(12.0)
    assert h.x.max() <= 12.0 and xs.min() > 12.0
    assert len(h) + len(xs) == len(np.unique(np.concatenate([h.x, xs])))
    np.testing.assert_allclose(ys, xs * 10.0)  # each point keeps its own value
    h.extend(np.arange(13, 21), np.ones(8))  # the live run continues from the moment
    assert h.x[-1] > 12.0 and np.all(np.diff(h.x) > 0)


def test_the_rate_is_an_average_over_seconds_not_one_flush():
    meter = RateMeter(window=2.0)
    meter.restart(0.0, 0)
    rates = []
    t, seen = 0.0, 0
    for k in range(200):  # 6,000 samples/s, delivered unevenly: 400 then 0 per flush
        t += 0.033
        seen += 400 if k % 2 else 0
        rates.append(meter.add(t, seen))
    assert all(5_000 < r < 7_000 for r in rates[70:])
    assert meter.add(t + 0.03, 10) == 0.0  # went back (a resume): starts again


def test_a_new_run_resets_the_colour_scales(qtbot):
    import numpy as np

    from convscope.visualizer.filters import FiltersPanel
    from convscope.visualizer.templates import TemplatesPanel

    filters, templates = FiltersPanel(), TemplatesPanel()
    for panel in (filters, templates):
        qtbot.addWidget(panel)
    big = {"conv1.W": np.full((3, 3, 1, 8), 5.0), "dense1.W": np.full((1352, 10), 5.0)}
    small = {k: v / 100 for k, v in big.items()}
    filters.set_weights(big)
    templates.set_weights(big, None)
    filters.set_weights(small)
    assert filters.rows[0][3].value > 1  # decays slowly on its own
    filters.reset_scales()
    templates.reset_scales()
    filters.set_weights(small)
    templates.set_weights(small, None)
    assert filters.rows[0][3].value == templates.scale.value == 0.05
