"""Training: it learns, it is reproducible, batch 1 is the notes' per-sample step, and the
Trainer's hyperparameters, state and callbacks do what they say."""
import math

import numpy as np
import pytest

from convscope.engine.net.model import Model, build_config, prepare_input
from convscope.engine.net.notes import ReferenceNet
from convscope.engine.net.optim import SGD
from convscope.engine.net.train import DivergenceError, Trainer, evaluate, schedule_lr

F64 = np.float64


def digits(n, seed=0):
    """Synthetic uint8 digits (n, 28, 28) and labels (n,): each class a fixed bar pattern on a
    constant background, plus noise, so a network can learn (and overfit) them."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[4 + 2 * label:6 + 2 * label, 4:24] = 255  # a bar whose height is the class
        image[4:24, 3 + 2 * label] = 200
    return images, labels.astype(np.uint8)


def seed_trainer(n=200, model_seed=0, dtype=np.float32, **kwargs):
    """A Trainer of the seed network on ``digits(n)``; kwargs go to Trainer."""
    images, labels = digits(n)
    return Trainer(Model(build_config("seed"), model_seed, dtype), images, labels, **kwargs)


# ---- it learns -----------------------------------------------------------------------------
def test_initial_loss_of_the_seed_network_is_ln_10(official_test_set):
    images, labels = official_test_set
    loss, accuracy, _ = evaluate(Model(build_config("seed"), seed=0), images[:2000], labels[:2000])
    assert loss == pytest.approx(math.log(10), abs=0.01)
    assert accuracy < 0.2


@pytest.mark.slow
def test_overfits_20_samples_to_near_zero_loss():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (20, 28, 28)).astype(np.uint8)  # noise: memorised only
    labels = rng.integers(0, 10, 20)
    model = Model(build_config("seed"), seed=0)
    trainer = Trainer(model, images, labels, lr=0.05, batch_size=20, momentum=0.9)
    losses = [trainer.step().loss for _ in range(200)]
    assert losses[0] == pytest.approx(math.log(10), abs=0.1)
    loss, accuracy, _ = evaluate(model, images, labels)
    assert loss < 0.01 and accuracy == 1.0


def test_a_short_seeded_run_on_real_digits_learns(official_test_set):
    images, labels = official_test_set
    model = Model(build_config("seed"), seed=0)
    trainer = Trainer(model, images[:2000], labels[:2000], lr=0.005, batch_size=1, seed=0)
    for _ in range(1500):  # the notes' recipe: per-sample SGD at lr 0.005
        trainer.step()
    loss, accuracy, _ = evaluate(model, images[-2000:], labels[-2000:])
    assert accuracy > 0.75 and loss < 0.9  # chance is 0.10 and ln 10 = 2.30


@pytest.mark.slow
def test_same_seed_gives_bit_identical_losses():
    def run(seed):
        trainer = seed_trainer(60, lr=0.01, batch_size=8, momentum=0.5, augment=True,
                               seed=seed)
        return [trainer.step().loss for _ in range(20)]  # crosses epoch ends
    assert run(3) == run(3)
    assert run(3) != run(4)


# ---- batch 1 is the notes' step; the batch gradient is the mean ----------------------------
@pytest.mark.slow
def test_batch_1_is_the_notes_per_sample_sgd_step():
    trainer = seed_trainer(50, dtype=F64, lr=0.005, batch_size=1)
    model = trainer.model
    net = ReferenceNet(model.config, model.params())
    x = prepare_input(trainer.x_train).astype(F64)
    for _ in range(4):
        i = trainer.order[trainer.cursor]
        ref_loss = net.train_step(x[i], int(trainer.y_train[i]), lr=0.005)
        report = trainer.step()
        assert report.loss == pytest.approx(ref_loss, rel=1e-12)
        for key, w in model.params().items():
            np.testing.assert_allclose(w, net.params[key], rtol=1e-10, atol=1e-13)


@pytest.mark.slow
def test_the_batch_gradient_is_the_mean_of_the_per_sample_gradients():
    model = Model(build_config("deep"), seed=1, dtype=F64)
    images, labels = digits(5, seed=3)
    x = prepare_input(images).astype(F64)
    model.loss_and_grads(x, labels)
    batch = {k: g.copy() for k, g in model.grads().items()}
    mean = {k: np.zeros_like(g) for k, g in batch.items()}
    for i in range(5):
        model.loss_and_grads(x[i:i + 1], labels[i:i + 1])
        for k, g in model.grads().items():
            mean[k] += g / 5
    for k in batch:
        np.testing.assert_allclose(batch[k], mean[k], rtol=1e-10, atol=1e-14)


@pytest.mark.slow
def test_a_batch_step_moves_the_weights_by_lr_times_the_mean_gradient():
    trainer = seed_trainer(40, dtype=F64, lr=0.1, batch_size=8)
    model = trainer.model
    idx = trainer.order[:8]
    probe = model.copy()
    probe.loss_and_grads(prepare_input(trainer.x_train[idx]).astype(F64), trainer.y_train[idx])
    before = {k: w.copy() for k, w in model.params().items()}
    trainer.step()
    for k, w in model.params().items():
        np.testing.assert_allclose(w, before[k] - 0.1 * probe.grads()[k], rtol=1e-12)


# ---- hyperparameters between steps ---------------------------------------------------------
@pytest.mark.slow
def test_hyperparameters_changed_between_steps_take_effect():
    trainer = seed_trainer(100, lr=0.01, batch_size=4)
    trainer.step()
    trainer.lr = 0.0
    frozen = {k: w.copy() for k, w in trainer.model.params().items()}
    report = trainer.step()
    assert report.lr == 0.0 and report.batch_size == 4
    assert all(np.array_equal(w, frozen[k]) for k, w in trainer.model.params().items())
    trainer.lr, trainer.batch_size = 0.02, 16
    report = trainer.step()
    assert report.lr == 0.02 and report.batch_size == 16 and report.samples_seen == 24
    assert not np.array_equal(trainer.model.params()["dense1.W"], frozen["dense1.W"])
    assert trainer.step(batch_size=3).batch_size == 3  # one-off override
    assert trainer.batch_size == 16
    trainer.momentum = 0.9
    trainer.step()
    assert set(trainer.optimizer.velocity) == set(trainer.model.params())


def test_learning_rate_schedules_follow_their_formulas():
    constant = {"name": "constant", "base_lr": 0.05, "start_epoch": 0, "epochs": 2}
    assert [schedule_lr(constant, e) for e in range(3)] == [0.05] * 3
    cosine = {"name": "cosine", "base_lr": 0.05, "start_epoch": 3, "epochs": 4}
    expected = [0.05 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)]
    assert [schedule_lr(cosine, 3 + t) for t in range(4)] == expected
    assert schedule_lr(cosine, 3) == 0.05 and schedule_lr(cosine, 5) == pytest.approx(0.025)


def test_onecycle_rises_to_its_peak_then_falls_to_almost_zero():
    s = {"name": "onecycle", "base_lr": 0.1, "start_epoch": 2, "epochs": 10}
    assert schedule_lr(s, 2) == pytest.approx(0.1 / 25)  # the start: peak / 25
    assert schedule_lr(s, 2 + 1.5) == pytest.approx(0.004 + 0.096 * 0.5)  # half way up
    assert schedule_lr(s, 5) == pytest.approx(0.1)  # the peak, 30% of the way
    assert schedule_lr(s, 5 + 3.5) == pytest.approx(0.1 / 2, rel=1e-4)  # half way down
    assert schedule_lr(s, 12) == pytest.approx(0.1 / 25 / 1e4)  # the end
    assert schedule_lr(s, 40) == schedule_lr(s, 12)
    lrs = [schedule_lr(s, 2 + t / 10) for t in range(101)]
    assert lrs.index(max(lrs)) == 30 and bool(np.all(np.diff(lrs[30:]) <= 0))


def test_a_onecycle_trainer_sets_lr_before_every_step():
    s = {"name": "onecycle", "base_lr": 0.05, "start_epoch": 0, "epochs": 2}
    trainer = seed_trainer(40, batch_size=10, momentum=0.9, schedule=s)
    lrs = [trainer.step().lr for _ in range(8)]  # 4 steps an epoch: epoch 0, 0.25, ... 1.75
    assert lrs == [pytest.approx(schedule_lr(s, t / 4)) for t in range(8)]


def test_a_nesterov_step_by_hand():
    """lr 0.1, momentum 0.9, w = 1, v = 0.5 (from a step before), g = 2:
    v = 0.9 * 0.5 - 0.1 * 2 = 0.25; w += 0.9 * 0.25 - 0.1 * 2 = 0.025 -> 1.025."""
    w = {"w": np.array([1.0])}
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    opt.load_state({"w": np.array([0.5])})
    opt.update([("w", w["w"], np.array([2.0]))])
    assert opt.state()["w"][0] == pytest.approx(0.25)
    assert w["w"][0] == pytest.approx(1.025)


def test_a_weight_decay_step_by_hand():
    """g = grad + decay * w: lr 0.1, decay 0.01, w = 2, grad = 0.5 -> w = 2 - 0.1 * 0.52."""
    w = {"w": np.array([2.0, -4.0])}
    grad = np.array([0.5, 0.0])
    SGD(lr=0.1, weight_decay=0.01).update([("w", w["w"], grad)])
    np.testing.assert_allclose(w["w"], [2 - 0.1 * 0.52, -4 + 0.1 * 0.04], rtol=1e-15)
    assert grad.tolist() == [0.5, 0.0]  # the layer's gradient is left as it was
    w = {"w": np.array([2.0])}
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    opt.update([("w", w["w"], np.array([0.5]))])  # v = -0.052; w += 0.9 * v - 0.052
    assert w["w"][0] == pytest.approx(2 - 0.9 * 0.052 - 0.052)


def test_the_fused_update_applies_nesterov_and_weight_decay():
    a = seed_trainer(40, dtype=F64, lr=0.05, batch_size=8, momentum=0.9, nesterov=True,
                     weight_decay=1e-3)
    assert a.model.fast_pass is not None
    b = seed_trainer(40, dtype=F64, lr=0.05, batch_size=8, momentum=0.9, nesterov=True,
                     weight_decay=1e-3)
    b.model.fast_pass = None  # the layers' pass and the per-weight update
    for _ in range(6):
        assert a.step().loss == pytest.approx(b.step().loss, rel=1e-10)
    for k, w in a.model.params().items():
        np.testing.assert_allclose(w, b.model.params()[k], rtol=1e-10, atol=1e-12)


def test_momentum_follows_its_formula():
    w = {"w": np.array([1.0, -2.0])}
    opt = SGD(lr=0.1, momentum=0.9)
    grads = [np.array([1.0, 0.5]), np.array([-2.0, 1.0]), np.array([0.5, 0.5])]
    v, expected = np.zeros(2), np.array([1.0, -2.0])
    for g in grads:
        opt.update([("w", w["w"], g)])
        v = 0.9 * v - 0.1 * g
        expected = expected + v
        np.testing.assert_allclose(w["w"], expected, rtol=1e-15)
        np.testing.assert_allclose(opt.state()["w"], v, rtol=1e-15)


@pytest.mark.slow
def test_momentum_in_the_trainer():
    trainer = seed_trainer(64, dtype=F64, lr=0.05, batch_size=8, momentum=0.9)
    model = trainer.model
    first = {k: w.copy() for k, w in model.params().items()}
    trainer.step()
    update1 = {k: w - first[k] for k, w in model.params().items()}
    idx = trainer.order[8:16]
    probe = model.copy()
    probe.loss_and_grads(prepare_input(trainer.x_train[idx]).astype(F64), trainer.y_train[idx])
    second = {k: w.copy() for k, w in model.params().items()}
    trainer.step()
    for k, w in model.params().items():  # v2 = 0.9 v1 - lr g2, and v1 was the first update
        np.testing.assert_allclose(w - second[k], 0.9 * update1[k] - 0.05 * probe.grads()[k],
                                   rtol=1e-9, atol=1e-15)


# ---- state, divergence ---------------------------------------------------------------------
@pytest.mark.slow
def test_get_state_set_state_resumes_bit_identically():
    trainer = seed_trainer(50, lr=0.02, batch_size=8, momentum=0.9, augment=True)
    for _ in range(5):
        trainer.step()
    state = trainer.get_state()
    expected = [trainer.step().loss for _ in range(12)]  # crosses an epoch end
    fresh = seed_trainer(50, model_seed=9, seed=9, augment=True)  # other weights and rng
    fresh.set_state(state)
    assert (fresh.lr, fresh.momentum, fresh.batch_size) == (0.02, 0.9, 8)
    assert [fresh.step().loss for _ in range(12)] == expected
    for k, w in fresh.model.params().items():
        assert np.array_equal(w, trainer.model.params()[k])
    assert fresh.step_count == trainer.step_count and fresh.epoch == trainer.epoch


@pytest.mark.slow
def test_state_is_a_copy():
    trainer = seed_trainer(20, momentum=0.5)
    trainer.step()
    state = trainer.get_state()
    trainer.step()
    assert not np.array_equal(state["params"]["dense1.W"], trainer.model.params()["dense1.W"])
    assert state["meta"]["step"] == 1


def test_divergence_raises_and_leaves_the_weights_untouched():
    trainer = seed_trainer(100, lr=1e30, batch_size=4)
    with pytest.raises(DivergenceError, match="learning rate"):
        for _ in range(20):
            before = {k: w.copy() for k, w in trainer.model.params().items()}
            steps, seen = trainer.step_count, trainer.samples_seen
            trainer.step()
    assert steps > 0  # it failed after some good (if wild) steps
    assert (trainer.step_count, trainer.samples_seen) == (steps, seen)
    for k, w in trainer.model.params().items():
        assert np.all(np.isfinite(w))
        assert np.array_equal(w, before[k])


# ---- callbacks -----------------------------------------------------------------------------
def test_callbacks_fire():
    images, labels = digits(30)
    model = Model(build_config("seed"), seed=0)
    trainer = Trainer(model, images[:20], labels[:20], images[20:], labels[20:], lr=0.01,
                      batch_size=4, snapshot_interval=math.inf)
    steps, snapshots, epochs = [], [], []
    trainer.on_step, trainer.on_snapshot, trainer.on_epoch_end = (
        steps.append, snapshots.append, epochs.append)
    trainer.probe, trainer.probe_label = images[0], int(labels[0])
    for _ in range(12):
        trainer.step()
    assert [r.step for r in steps] == list(range(1, 13))
    assert [r.samples_seen for r in steps] == [4 * i for i in range(1, 13)]
    assert all(0 <= r.epoch_accuracy <= 1 and math.isfinite(r.loss) for r in steps)
    assert len(snapshots) == 1 and snapshots[0].step == 1  # throttled: one per interval
    assert [e.epoch for e in epochs] == [1, 2] and [e.step for e in epochs] == [5, 10]
    for e in epochs:
        assert 0 <= e.test_accuracy <= 1 and e.test_loss > 0 and 0 <= e.train_accuracy <= 1
    assert steps[4].epoch == 0 and steps[5].epoch == 1


def test_snapshots_are_copies_not_aliases():
    trainer = seed_trainer(40, lr=0.05, batch_size=4, snapshot_interval=0.0)
    shots = []
    trainer.on_snapshot = shots.append
    trainer.probe, trainer.probe_label = trainer.x_train[0], 3
    trainer.step()
    trainer.step()
    assert len(shots) == 2  # interval 0: every step
    first, live = shots[0], trainer.model.params()
    assert not np.array_equal(first.params["dense1.W"], live["dense1.W"])  # training went on
    assert not any(np.shares_memory(first.params[k], live[k]) for k in live)
    trace = first.probe_trace
    assert {"conv1", "pool1.mask", "probs", "conv1.dW"} <= set(trace)
    caches = [a for layer in trainer.model.layers for a in layer.cache.values()
              if isinstance(a, np.ndarray)]
    assert not any(np.shares_memory(v, a) for v in trace.values() for a in caches)
    first.params["conv1.W"][...] = 0  # writing a snapshot leaves the model alone
    assert np.any(live["conv1.W"] != 0)


def test_probe_trace_keeps_the_training_gradients():
    trainer = seed_trainer(20, batch_size=4)
    trainer.step()
    grads = {k: g.copy() for k, g in trainer.model.grads().items()}
    trainer.probe = trainer.x_train[5]
    trainer.probe_trace()
    for k, g in trainer.model.grads().items():
        assert np.array_equal(g, grads[k])


def test_run_epoch_and_fit_report_each_epoch():
    trainer = seed_trainer(30, lr=0.01, batch_size=8)
    report = trainer.run_epoch()
    assert report.epoch == 1 and report.step == 4 and trainer.epoch == 1
    reports = trainer.fit(2)
    assert [r.epoch for r in reports] == [2, 3]
    assert trainer.run_epoch(should_stop=lambda: True) is None


def test_probe_trace_works_before_the_first_step_and_leaves_no_gradients():
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    trainer = Trainer(Model(build_config("seed"), seed=0), x, np.arange(4))
    trainer.probe, trainer.probe_label = x[0], 0
    trace = trainer.probe_trace()
    assert trace["conv1"].shape == (1, 26, 26, 8) and trainer.model.grads() == {}


# ---- the learning-rate schedule, applied by the Trainer ---------------------------------
def test_the_trainer_applies_the_schedule_at_every_step_of_each_epoch():
    trainer = seed_trainer(24, lr=0.5, batch_size=8)
    cosine = {"name": "cosine", "base_lr": 0.04, "start_epoch": 0, "epochs": 4}
    trainer.schedule = cosine
    seen = []
    for _ in range(3):
        trainer.run_epoch(on_step=lambda report: seen.append((report.epoch, report.lr)))
    assert len(seen) == 9
    assert seen == [(e, schedule_lr(cosine, e)) for e in range(3) for _ in range(3)]
    state = trainer.get_state()
    assert state["meta"]["lr_schedule"] == cosine
    other = seed_trainer(24, batch_size=8)
    other.set_state(state)
    assert other.schedule == cosine and other.step().lr == schedule_lr(cosine, 3)



@pytest.mark.parametrize("preset", ["seed", "deep", "lenet"])
def test_every_batch_arrives_prepared_by_the_read_ahead(preset, monkeypatch):
    """The Trainer hands each pass its input prepared ahead (the seed net's patches, a conv
    stack's zero-bordered digits), never more digits at once than the model takes, so the
    pass never prepares a batch itself."""
    from convscope.engine.fast import Prepared
    images, labels = digits(2000)
    model = Model(build_config(preset), 0)
    trainer = Trainer(model, images, labels, batch_size=32, seed=1)
    kinds = []
    real = model.loss_and_grads
    monkeypatch.setattr(model, "loss_and_grads",
                        lambda x, *a, **k: kinds.append(type(x)) or real(x, *a, **k))
    for _ in range(2000 // 32):
        trainer.step()
    assert kinds == [Prepared] * (2000 // 32)
