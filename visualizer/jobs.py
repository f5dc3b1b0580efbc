"""Jobs the worker runs on its thread between two steps, such as fine-tuning on the learner's
own digits: ``worker.run_job(job)`` with ``job(trainer, should_stop) -> result`` and a
``name`` shown while it runs. A job's steps are steps of the run: the curves get them and the
Timeline records their losses; it keeps a state only after the job (while the Trainer trains on
other data than the run's, a state could not be resumed). The result comes back by
``job_done`` (None when a command made the job give up; the steps it took stay).
"""
from __future__ import annotations

from dataclasses import dataclass

from convscope.engine.data.my_digits import Digits
from convscope.engine.tools.fine_tune import fine_tune


def run_job(worker, job) -> None:
    """Carry out ``job`` on the worker thread (queued by ``TrainWorker.run_job``)."""
    trainer = worker.trainer
    if trainer is None:
        return
    worker._halt()
    worker.busy.emit(job.name)
    worker.timeline.holding, result = True, None
    try:
        result = job(trainer, worker._interrupted)
    except InterruptedError:  # given up for a command: the steps so far stay
        pass
    finally:
        worker.timeline.holding = False
        worker.busy.emit("")
    worker.timeline.add(trainer.get_state())
    worker._flush()
    worker._emit_snapshot()
    worker._evaluate_now()
    worker.job_done.emit(result)


@dataclass(frozen=True)
class FineTuneJob:
    """Fine-tune the run on ``own`` (engine/tools/fine_tune.py): a FineTuneReport."""
    own: Digits
    class_names: tuple
    own_share: float = 0.5
    epochs: int = 5
    name: str = "fine-tuning on my digits"

    def __call__(self, trainer, should_stop):
        return fine_tune(trainer, self.own, list(self.class_names), self.own_share,
                         self.epochs, should_stop)
