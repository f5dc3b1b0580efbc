"""`train`: the learning-rate schedule a run follows and how many epochs it runs: a new one
from the recipe and the options, or the rest of a resumed one."""
from __future__ import annotations

from convscope.cli.common import UsageError


def schedule_and_epochs(args, meta: dict, lr: float, defaults: dict) -> tuple[dict, int]:
    """(learning-rate schedule, epochs to run). A resumed cosine or onecycle schedule goes on
    when --lr-schedule is left out; otherwise a new schedule starts here, over this run's
    epochs."""
    from convscope.engine.schedules import make_schedule
    saved = meta.get("lr_schedule")
    if args.lr_schedule is None and saved and saved["name"] != "constant":
        if args.plain_epochs is not None:
            raise UsageError(f"--plain-epochs would change the resumed {saved['name']} "
                             f"schedule; give --lr-schedule too to start a new schedule")
        return saved, epochs_left(args, meta, saved)
    epochs = args.epochs or defaults["epochs"]
    plain = args.plain_epochs
    if plain is None and saved and args.lr_schedule is None:  # a resumed constant schedule:
        # its plain epochs that this run reaches, when the run ends where it ends or before
        stop, end = int(meta.get("epoch", 0)) + epochs, saved["start_epoch"] + saved["epochs"]
        plain = (min(epochs, max(0, stop - (end - saved.get("plain_epochs", 0))))
                 if stop <= end else 0)
    if plain is None:  # the recipe's share of the epochs run
        plain = defaults.get("plain_epochs", 0) * epochs // defaults["epochs"]
    if plain > epochs:
        raise UsageError(f"--plain-epochs {plain} is more than the {epochs} epochs to run")
    return make_schedule(args.lr_schedule or defaults["lr_schedule"], lr, epochs,
                         int(meta.get("epoch", 0)), plain), epochs


def epochs_left(args, meta: dict, schedule: dict) -> int:
    """Epochs to run on a resumed cosine schedule: those it has left, or fewer."""
    from convscope.engine.schedules import schedule_end
    left = schedule_end(schedule) - int(meta["epoch"])
    what = (f"the resumed {schedule['name']} schedule (lr {schedule['base_lr']:g} over "
            f"{schedule['epochs']} epochs)")
    if args.lr is not None:
        raise UsageError(f"--lr {args.lr:g} would change {what}; give --lr-schedule too to "
                         f"start a new schedule")
    if left < 1:
        raise UsageError(f"{what} is complete; give --lr-schedule to train on")
    if args.epochs is not None and args.epochs > left:
        raise UsageError(f"--epochs {args.epochs} runs past the end of {what}, which has "
                         f"{left} left; give --lr-schedule to start a new schedule")
    return args.epochs or left
