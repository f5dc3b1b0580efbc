"""Timeline: bounded snapshots, exact resume, forks keep the abandoned curve."""
import numpy as np
import pytest

from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer
from convscope.engine.tools.timeline import STATE_OVERHEAD, Timeline

STATE_BYTES = 4 * 8 + 10 * 8 + STATE_OVERHEAD  # one FakeTrainer state
CURVE_BYTES = 2 * 1024 * 8  # the loss curve's first arrays


def make_trainer(n=60, batch_size=1, momentum=0.0, augment=False):
    rng = np.random.default_rng(4)
    images = (rng.random((n, 28, 28)) > 0.8).astype(np.uint8) * 255
    labels = rng.integers(0, 10, n)
    return Trainer(Model(build_config("seed"), seed=3), images, labels, lr=0.02,
                   batch_size=batch_size, momentum=momentum, seed=5, augment=augment)


def run(trainer, timeline, steps):
    losses = []
    for _ in range(steps):
        report = trainer.step()
        timeline.after_step(trainer, report)
        losses.append(report.loss)
    return losses


@pytest.mark.slow
@pytest.mark.parametrize("batch_size,momentum,augment", [(1, 0.0, False), (4, 0.9, True)])
def test_resume_reproduces_the_following_losses_bit_for_bit(batch_size, momentum, augment):
    trainer = make_trainer(batch_size=batch_size, momentum=momentum, augment=augment)
    timeline = Timeline(every=10)
    timeline.start(trainer)
    first = run(trainer, timeline, 45)  # crosses epoch ends for batch 4 (60 samples)
    assert timeline.snapshot_steps() == [0, 10, 20, 30, 40]
    state = timeline.resume(20)
    trainer.set_state(state)
    assert trainer.step_count == 20
    again = run(trainer, timeline, 25)
    assert again == first[20:]  # exact equality of floats
    steps, losses = timeline.curve()
    assert list(steps) == list(range(1, 46)) and list(losses) == first
    (branch,) = timeline.branches()  # the abandoned tail is kept, identical here
    assert branch.fork_step == 20 and list(branch.losses) == first[20:]


@pytest.mark.slow
def test_resume_with_another_learning_rate_forks_the_run():
    trainer = make_trainer()
    timeline = Timeline(every=10)
    timeline.start(trainer)
    first = run(trainer, timeline, 30)
    trainer.set_state(timeline.resume(13, lr=0.05))  # nearest snapshot at or before 13
    assert trainer.step_count == 10 and trainer.lr == 0.05
    assert timeline.snapshot_steps() == [0, 10]
    forked = run(trainer, timeline, 20)
    assert forked[0] == first[10]  # step 11 still uses the weights of step 10
    assert forked[1] != first[11]  # from step 12 on, the weights moved with another lr
    (branch,) = timeline.branches()
    assert branch.lr == pytest.approx(0.02) and list(branch.steps) == list(range(11, 31))
    assert list(branch.losses) == first[10:]
    steps, losses = timeline.curve()
    assert list(losses) == first[:10] + forked
    assert "0.02" in branch.label and timeline.lr == 0.05


def test_snapshots_taken_inside_on_step_wait_for_the_end_of_the_epoch():
    trainer = make_trainer(n=20, batch_size=4)  # 5 steps an epoch
    timeline = Timeline(every=5)
    timeline.start(trainer)
    trainer.on_step = lambda report: timeline.after_step(trainer, report)
    losses = [trainer.step().loss for _ in range(12)]
    assert timeline.snapshot_steps() == [0, 6, 11]  # 5 and 10 end epochs: taken one step later
    trainer.set_state(timeline.resume(6))
    assert [trainer.step().loss for _ in range(6)] == losses[6:]


@pytest.mark.slow
def test_snapshots_stay_under_the_memory_cap_and_cover_the_whole_run():
    trainer = make_trainer(n=200)
    one = Timeline(every=1)
    one.start(trainer)
    per_state = one.memory_used
    timeline = Timeline(every=5, max_bytes=12 * per_state)
    timeline.start(trainer)
    run(trainer, timeline, 300)
    steps = timeline.snapshot_steps()
    assert timeline.memory_used <= 12 * per_state
    assert steps[0] == 0 and steps[-1] >= 300 - timeline.every
    assert timeline.every > 5 and len(steps) >= 4
    restored = timeline.state_at(steps[-1])
    assert restored["meta"]["step"] == steps[-1]
    # one epoch shares one order array, so two snapshots cost less than twice one
    shared = Timeline(every=1)
    shared.start(trainer)
    single = shared.snapshot_bytes
    state = trainer.get_state()
    shared.add(state | {"meta": {**state["meta"], "step": 999}})
    assert shared.snapshot_bytes == 2 * single - state["order"].astype(np.uint16).nbytes


@pytest.mark.slow
def test_long_loss_curves_are_averaged_in_pairs_within_the_cap():
    timeline = Timeline(every=10**9, max_bytes=4 * 16 * 4096)
    for step in range(1, 50001):
        timeline.record(step, float(step % 7), lr=0.01)
    steps, losses = timeline.curve()
    assert len(steps) <= 4096 and steps[-1] >= 50000 - 64
    assert np.all(np.diff(steps) > 0)
    assert abs(losses.mean() - 3.0) < 0.01  # averages of 0..6 stay near 3


def test_state_at_on_an_empty_timeline_is_a_clear_error():
    with pytest.raises(LookupError, match="no snapshot"):
        Timeline().state_at(0)


class FakeTrainer:
    """Just what Timeline reads: a state with a step, and the position in the epoch."""

    def __init__(self):
        self.step_count, self.cursor, self.order = 0, 0, np.arange(10)

    def get_state(self):
        return {"params": {"W": np.full(4, float(self.step_count))}, "velocity": {},
                "order": self.order, "meta": {"step": self.step_count, "lr": 0.1}}


def record_losses(timeline, trainer, losses, every=10):
    for loss in losses:
        trainer.step_count += 1
        timeline.record(trainer.step_count, loss, 0.1, batch=100)
        if trainer.step_count % every == 0:
            timeline.add(trainer.get_state())


def test_last_good_step_skips_states_that_are_finite_but_ruined():
    trainer, timeline = FakeTrainer(), Timeline(every=10)
    timeline.start(trainer)
    record_losses(timeline, trainer, np.linspace(2.3, 0.3, 50))  # learning
    record_losses(timeline, trainer, np.full(30, 95.0))  # blown up, still finite
    assert timeline.last_good_step(trainer.step_count) == 50
    assert timeline.quality(80)["smooth"] > 50  # the newest finite state is not good
    assert timeline.last_good_step(30) == 30  # good at its time: the best so far


def test_the_best_state_survives_thinning():
    trainer = FakeTrainer()
    timeline = Timeline(every=1, max_bytes=CURVE_BYTES + STATE_BYTES * 6)
    timeline.start(trainer)
    losses = np.concatenate([np.linspace(2.0, 0.1, 7), np.full(60, 3.0)])  # best at step 7
    record_losses(timeline, trainer, losses, every=1)
    steps = timeline.snapshot_steps()
    assert 7 in steps and len(steps) <= 6 and timeline.best_step() == 7
    assert timeline.state_at(7)["params"]["W"][0] == 7.0


def test_the_best_test_loss_keeps_its_state():
    trainer, timeline = FakeTrainer(), Timeline(every=10)
    timeline.start(trainer)
    record_losses(timeline, trainer, np.full(13, 1.0))
    timeline.note_test(trainer, 0.5)  # step 13: no snapshot there yet, the best: one is taken
    record_losses(timeline, trainer, np.full(7, 0.2))
    timeline.note_test(trainer, 0.9)  # step 20 has a snapshot: marked, not the best
    assert 13 in timeline.snapshot_steps()
    assert timeline.quality(13)["test"] == 0.5 and timeline.quality(20)["test"] == 0.9
    assert timeline.best_step() == 13
    assert timeline.last_good_step(20) == 13  # step 20's test loss is far from the best


def test_a_resume_forgets_the_quality_of_dropped_states():
    trainer, timeline = FakeTrainer(), Timeline(every=10)
    timeline.start(trainer)
    record_losses(timeline, trainer, np.linspace(2.0, 0.2, 40))
    timeline.resume(20)
    assert timeline.snapshot_steps() == [0, 10, 20]
    assert timeline.quality(30) == {"smooth": None, "test": None}
    assert timeline.best_step() == 20
