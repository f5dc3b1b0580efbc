"""What the worker does on a Reset, apart from Qt: load a dataset aside (so a stop request is
still honoured during a long download) and build the Trainer of a run."""
from __future__ import annotations

import threading

import numpy as np

from convscope.engine.data.idx import DataError
from convscope.engine.files.checkpoint import CheckpointError, check_classes, model_class_names
from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer
from convscope.engine.schedules import final_lr, make_schedule, schedule_end
from convscope.visualizer.messages import Hyper, RecipeDone, RunSettings
from convscope.visualizer.model_files import restore_position

# the Timeline keeps about this many training states (at most TIMELINE_MAX_BYTES): the seed
# net at batch 1 fills it within its first two epochs, and memory stays flat from then on
TIMELINE_STATES = 128
TIMELINE_MAX_BYTES = 64 * 2**20
LR_MIN = 1e-5  # the smallest learning rate the controls take


def load_aside(loader, spec: str, give_up, tell=None, convert: str = "mnist"):
    """``loader(spec)`` on a thread of its own; ``give_up()`` is asked every 50 ms and, when
    true, raises InterruptedError (the loading thread is left to end by itself). ``tell``
    gets a line on the pictures of a folder converted so far (from the loading thread);
    without a ``loader``, a folder of pictures is converted with ``convert``."""
    if loader is None:
        from convscope.engine.data.datasets import load_dataset

        def loader(spec):
            return load_dataset(spec, convert=convert, on_progress=tell and (
                lambda done, total: tell(f"{spec}: {done:,} of {total:,} pictures "
                                         f"converted")))
    result: dict = {}

    def target():
        try:
            result["data"] = loader(spec)
        except BaseException as e:  # re-raised below, on the calling thread
            result["error"] = e

    loading = threading.Thread(target=target, name="dataset-loader", daemon=True)
    loading.start()
    while loading.is_alive():
        loading.join(0.05)
        if give_up():
            raise InterruptedError("closing")
    if "error" in result:
        raise result["error"]
    return result["data"]


def build_trainer(settings: RunSettings, data, hyper: Hyper, loaded=None,
                  snapshot_interval: float = 1 / 30) -> tuple[Trainer, dict, str | None]:
    """(trainer, config, note): new weights from ``settings``, or the weights and position of
    ``loaded`` (a ``model_files.LoadedModel``; ``note`` says what of it could not be used)."""
    if loaded is None:
        config = build_config(settings.preset, settings.filters, settings.pool, settings.relu,
                              data.class_names)
        model = Model(config, settings.seed)
    else:
        model, config = loaded.model, loaded.model.config
        try:  # a model tells apart the classes it was trained on, and no others
            check_classes(model_class_names(model, loaded.extra), data.class_names, loaded.path)
        except CheckpointError as e:
            raise DataError(str(e)) from None
    for layer in model.layers:  # Trainer.probe_trace needs gradients to exist before step 1
        for k, v in layer.params.items():
            layer.grads.setdefault(k, np.zeros_like(v))
    full = settings.filled()  # a model file brings its own recipe (restore_position)
    schedule = None if loaded else make_schedule(full.lr_schedule, hyper.lr, full.epochs,
                                                  plain_epochs=min(full.plain_epochs, full.epochs))
    trainer = Trainer(model, data.x_train, data.y_train, data.x_test, data.y_test,
                      lr=hyper.lr, batch_size=clamp_batch(hyper.batch_size, len(data.x_train)),
                      momentum=hyper.momentum, seed=settings.seed, augment=full.augment,
                      nesterov=full.nesterov, weight_decay=full.weight_decay,
                      label_smoothing=full.label_smoothing,
                      schedule=schedule, snapshot_interval=snapshot_interval)
    if loaded is None:
        return trainer, config, None
    note = restore_position(trainer, loaded.trainer_state)
    done = finish_recipe(trainer)  # a file saved at the end of its recipe trains on
    if done is not None:
        note = " ".join(m for m in (note, f"Its recipe's {done.epochs} epochs are done: "
                                          f"Train continues at lr {done.lr:g}.") if m)
    return trainer, config, note


def finish_recipe(trainer) -> RecipeDone | None:
    """When the epochs of ``trainer``'s schedule are done: the schedule off, the learning rate
    at its last value (at least LR_MIN, as the learning-rate box shows it), and what to say."""
    schedule = trainer.schedule
    if schedule is None or trainer.epoch < schedule_end(schedule):
        return None
    trainer.schedule = None
    trainer.lr = max(round(final_lr(schedule), 6), LR_MIN)
    report = trainer.last_epoch_report
    return RecipeDone(schedule["epochs"], report and report.test_accuracy, trainer.lr)


def apply_hyper(trainer, hyper: Hyper, before: Hyper) -> str | None:
    """The live hyperparameters on ``trainer``. A new learning rate replaces a cosine or
    onecycle schedule by a constant one (its epochs still end the recipe): what to say."""
    trainer.momentum = hyper.momentum
    trainer.batch_size = clamp_batch(hyper.batch_size, len(trainer.x_train))
    schedule = trainer.schedule
    if hyper.lr == before.lr and schedule is not None:
        return None
    trainer.lr = hyper.lr
    if schedule is None:
        return None
    trainer.schedule = {**schedule, "name": "constant", "base_lr": hyper.lr}
    if schedule["name"] == "constant":
        return None
    return (f"Learning rate {hyper.lr:g} from now on: the {schedule['name']} schedule is off "
            f"for the rest of this run.")


def probe_digit(trainer: Trainer | None, probe: tuple | None):
    """(image uint8 (28, 28), label or None) of ``probe``: ("image", image, label) or ("test",
    index into the test split); None when there is nothing to trace."""
    if trainer is None or probe is None:
        return None
    if probe[0] == "test":
        if trainer.x_test is None or not len(trainer.x_test):
            return None
        index = min(max(int(probe[1]), 0), len(trainer.x_test) - 1)
        image, label = trainer.x_test[index], trainer.y_test[index]
    else:
        image, label = probe[1], probe[2]
    image = np.ascontiguousarray(image, dtype=np.uint8).reshape(28, 28)
    return image, None if label is None else int(label)


def divergence_message(error, lr: float, back_to: int | None, kept: bool = False,
                       why: str = "") -> str:
    """What to tell after a divergence at learning rate ``lr``: training went back to step
    ``back_to`` (``why`` that one), or nowhere (None: no step yet, or ``kept``: no earlier
    state to go back to)."""
    what = str(error).split("; try")[0]
    advice = (f"lower the learning rate (try {min(lr / 10, 0.01):g}), then Train, "
              f"or Reset for new weights.")
    if kept:
        return f"Training diverged: {what}. The weights were left as they were; {advice}"
    if back_to is None:
        return f"Training diverged: {what}; {advice}"
    return (f"Training diverged: {what}. Paused and went back to step {back_to:,}, {why}; "
            f"{advice}")


def roll_back(trainer, timeline, error) -> tuple[str, bool]:
    """After a divergence: back to the last good Timeline state before the blow-up (its
    smoothed loss near the run's best so far: the newest finite state may already be ruined).
    Returns (what to tell the user, whether the trainer went back)."""
    if trainer.step_count == 0:
        return divergence_message(error, trainer.lr, None), False
    step = timeline.last_good_step(trainer.step_count - 1)
    if step >= trainer.step_count:
        return divergence_message(error, trainer.lr, None, kept=True), False
    quality = timeline.quality(step)
    loss = quality["test"] if quality["test"] is not None else quality["smooth"]
    kind = "test" if quality["test"] is not None else "smoothed training"
    why = ("the newest state whose loss was within 10% of the run's best"
           + (f" ({kind} loss {loss:.3g})" if loss is not None else ""))
    trainer.set_state(timeline.resume(step, trainer.lr), hyperparameters=False)
    return divergence_message(error, trainer.lr, step, why=why), True


def clamp_batch(batch_size: int, n_train: int) -> int:
    return max(1, min(int(batch_size), n_train))


def timeline_bytes(model: Model) -> int:
    """What the Timeline may keep for this model: about TIMELINE_STATES states of it."""
    weights = sum(w.nbytes for w in model.params().values())
    return min(TIMELINE_MAX_BYTES, max(2**21, TIMELINE_STATES * weights))


def read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view
