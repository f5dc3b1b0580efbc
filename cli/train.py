"""`train`: fit a network headless, report losses and speed, optionally save or resume."""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from convscope.cli.common import (
    CommandError,
    UsageError,
    add_convert,
    data_spec,
    emit,
    float_range,
    info,
    int_range,
    interactive,
    progress_bar,
)
from convscope.cli.train_schedule import schedule_and_epochs
from convscope.engine.files.guard import clean_text
from convscope.engine.files.state_meta import META, NAMES, OPTIONAL

DEFAULTS = {"preset": "seed", "pool": "max", "seed": 0}
ARCHITECTURE = ("preset", "filters", "pool", "relu")
# settings a resumed run keeps from its file unless given; a file from before an entry
# existed trains on without it (the value here)
RESUMED = {"lr": 0.005, "batch_size": 1, "momentum": 0.0, "nesterov": False,
           "weight_decay": 0.0, "augment": (), "label_smoothing": 0.0}


def augment_spec(text: str) -> tuple[str, ...]:
    """--augment shift,rotate,scale,shear,elastic | none."""
    from convscope.engine.data.augment import parse_kinds
    try:
        return parse_kinds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    from convscope.engine.data.augment import KINDS
    from convscope.engine.files.checkpoint import MAX_EPOCHS
    from convscope.engine.files.limits import MAX_FILTERS
    from convscope.engine.files.state_meta import MAX_SMOOTHING
    from convscope.engine.net.model import PRESETS
    from convscope.engine.schedules import LR_SCHEDULES
    p = subparsers.add_parser(
        "train", help="train a network headless",
        description="Train a network on a dataset and report losses, accuracy and speed. "
        "Each preset brings its whole recipe (filters, epochs, learning rate and schedule, "
        "batch size, momentum, Nesterov, weight decay, augmentation): an option given "
        "overrides that one setting. With --resume, options left out are taken from the "
        "saved run.")
    p.add_argument("--data", type=data_spec, default=None, metavar="{mini,mnist,fashion,DIR}",
                   help="dataset name, a directory of IDX files or a directory with one "
                   "folder of images per class (default mini)")
    add_convert(p)
    p.add_argument("--train-size", type=int_range(1), metavar="N",
                   help="use the first N training images (default all)")
    p.add_argument("--test-size", type=int_range(0), metavar="N",
                   help="use the first N test images (default all; 0 skips testing)")
    p.add_argument("--preset", choices=list(PRESETS),
                   help="network and its recipe (default seed, the design notes')")
    p.add_argument("--filters", type=int_range(1, MAX_FILTERS), metavar="N",
                   help=f"filters of the first conv layer, 1..{MAX_FILTERS} (default: the "
                   f"preset's)")
    p.add_argument("--pool", choices=("max", "avg", "min"), help="pooling (default max)")
    p.add_argument("--relu", action=argparse.BooleanOptionalAction, default=None,
                   help="ReLU after each conv layer (default: the preset's)")
    p.add_argument("--epochs", type=int_range(1, MAX_EPOCHS), metavar="E",
                   help="epochs to run (default: the recipe's, or what a resumed schedule "
                   "has left)")
    p.add_argument("--batch-size", type=int_range(1), metavar="B",
                   help="samples per SGD step, 1..training-set size (default: the recipe's; "
                   "seed's is 1, as in the notes)")
    p.add_argument("--lr", type=float_range(0, 100, lo_open=True), metavar="LR",
                   help="learning rate, > 0 and <= 100 (the peak of onecycle; default: the "
                   "recipe's)")
    p.add_argument("--momentum", type=float_range(0, 1, hi_open=True), metavar="M",
                   help="SGD momentum in [0, 1) (default: the recipe's)")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov (look-ahead) momentum (default: the recipe's)")
    p.add_argument("--weight-decay", type=float_range(0, 1, hi_open=True), metavar="WD",
                   help="weight decay in [0, 1), e.g. 5e-4 (default: the recipe's)")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), metavar="S",
                   help="seed for weights, shuffling and augmentation (default 0)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                   help="constant lr; cosine decay from --lr towards 0 over the epochs; or "
                   "onecycle: up to --lr over the first 30%% of the steps, then down to almost 0 "
                   "(default: the recipe's; when resuming, the saved run's schedule goes on)")
    p.add_argument("--augment", type=augment_spec, nargs="?", const=("shift",), metavar="KINDS",
                   help=f"distort training digits: a comma list of {','.join(KINDS)}, or none "
                   f"(default: the recipe's; --augment alone shifts by up to 2 pixels)")
    p.add_argument("--no-augment", dest="augment", action="store_const", const=(),
                   help="the same as --augment none")
    p.add_argument("--label-smoothing", type=float_range(0, MAX_SMOOTHING), metavar="S",
                   help="spread this share of the loss's target over every class, e.g. 0.1 "
                   "(default: the recipe's)")
    p.add_argument("--plain-epochs", type=int_range(0, MAX_EPOCHS), metavar="N",
                   help="train the last N epochs on the digits as they are, without "
                   "augmentation (default: the recipe's, in proportion when --epochs "
                   "changes it)")
    p.add_argument("--save", metavar="PATH",
                   help="model file to write (after every epoch, atomically)")
    p.add_argument("--resume", metavar="PATH", help="model file to continue training from")
    return p


def _resolve(args):
    """Model, trainer state and settings from the options and the preset's recipe, or from
    the file to resume."""
    from convscope.engine.data.augment import parse_kinds
    from convscope.engine.net.model import build_config
    from convscope.engine.recipes import recipe

    state, extra = None, {}
    if args.resume:
        from convscope.engine.files.checkpoint import load_model
        model, state, extra = load_model(args.resume)
        extra = extra or {}
        cfg = model.config
        for name in ARCHITECTURE:
            given = getattr(args, name)
            if given is not None and given != cfg.get(name):
                raise UsageError(f"--{name} {given} differs from the resumed model's "
                                 f"{cfg.get(name)}; leave it out when resuming")
        defaults = {**RESUMED, "epochs": 1, "lr_schedule": "constant"}
    else:
        preset = args.preset or DEFAULTS["preset"]
        defaults = recipe(preset)
        filters = defaults["filters"] if args.filters is None else args.filters
        try:
            config = build_config(preset, filters, args.pool or DEFAULTS["pool"], args.relu)
        except ValueError as e:
            raise UsageError(str(e)) from None
        model = None  # made for the dataset's classes once it is loaded (``_for_classes``)
    meta = (state or {}).get("meta", {})

    def pick(name):
        given = getattr(args, name)
        if given is not None:
            return given
        if name in meta:
            return meta[name]
        if name == "label_smoothing":  # checked in the state only; a file without it: none
            return defaults[name]
        if name in extra:  # a file's free-form facts: held to the state's own checks
            check = META.get(name) or OPTIONAL.get(name)
            if check is not None and not check(extra[name]):
                raise CommandError(f"{args.resume}: the saved "
                                   f"{NAMES.get(name, name.replace('_', ' '))} is not valid")
            return extra[name]
        return defaults.get(name, DEFAULTS.get(name))

    settings = {
        "data": args.data or extra.get("dataset", "mini"),
        "train_size": args.train_size if args.train_size is not None
        else extra.get("train_size"),
        "test_size": args.test_size if args.test_size is not None else extra.get("test_size"),
        "convert": args.convert or extra.get("convert", "mnist"),
        "class_names": extra.get("class_names") if args.resume else None,
        **{k: pick(k) for k in ("lr", "batch_size", "momentum", "seed", "nesterov",
                                "weight_decay", "augment", "label_smoothing")},
    }
    try:  # a file's augment: a list of kinds, or a boolean from before the kinds
        settings["augment"] = parse_kinds(settings["augment"])
    except ValueError as e:
        raise UsageError(f"{args.resume}: {e}") from None
    if args.resume:
        _check_saved(args.resume, settings)
    else:
        settings["config"] = config
    settings["schedule"], settings["epochs"] = schedule_and_epochs(args, meta, settings["lr"],
                                                                   defaults)
    return model, state, settings


def _check_saved(path: str, settings: dict) -> None:
    """The run settings a resumed file supplies (its "extra" facts) have the right kinds."""
    def whole(v, lo):
        return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= lo)
    good = {"data": isinstance(settings["data"], str) and 0 < len(settings["data"]) < 4096
            and clean_text(settings["data"], 4096) == settings["data"],
            "train_size": whole(settings["train_size"], 1),
            "test_size": whole(settings["test_size"], 0),
            "convert": settings["convert"] in ("mnist", "resize")}
    for name, ok in good.items():
        if not ok:
            raise CommandError(f"{path}: the saved {name.replace('_', ' ')} is not valid")


def _name(model) -> str:
    """"seed (filters 8, max pool)": the network's name in plain text."""
    cfg = model.config
    parts = [f"filters {cfg['filters']}" if isinstance(cfg.get("filters"), int) else "",
             f"{clean_text(cfg['pool'], 10)} pool" if isinstance(cfg.get("pool"), str) else "",
             "relu" if cfg.get("relu") is True else ""]
    parts = [p for p in parts if p]
    name = clean_text(cfg.get("preset", "custom"), 40)
    return f"{name} ({', '.join(parts)})" if parts else name


def _first(x, y, n, what, name, saved_in=None):
    """The first ``n`` images; ``saved_in``: the resumed file ``n`` came from, if it did."""
    if n is None:
        return x, y
    if n > len(x):
        where = f"{saved_in}: its saved {what} size" if saved_in else f"--{what}-size"
        problem = f"{where} {n} is more than the {len(x)} {what} images of {name}"
        raise CommandError(problem) if saved_in else UsageError(problem)
    return x[:n], y[:n]


def _check_save(path: str) -> None:
    """A --save target that cannot be written is found before any work is done."""
    from convscope.engine.files.atomic import check_target
    if not path.strip():
        raise UsageError("--save needs a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"cannot save to {path}: folder {folder} does not exist")
    try:
        check_target(path)
    except OSError as e:
        raise CommandError(str(e)) from None


def _contents(model, trainer, settings, dataset, result) -> tuple[dict, dict]:
    """(trainer state, extra facts) of a model file."""
    from convscope.engine.files.facts import run_facts
    extra = run_facts(trainer, settings["data"], dataset.class_names, result["test_size"],
                      result["test_loss"], result["test_accuracy"])
    extra["convert"] = settings["convert"]
    return trainer.get_state(), extra  # the state holds the trainer's schedule


def _save(path, model, trainer, settings, dataset, result) -> None:
    from convscope.engine.files.checkpoint import save_model
    if not all(np.isfinite(w).all() for w in model.params().values()):
        raise CommandError("the weights are not finite; nothing was saved")
    save_model(path, model, *_contents(model, trainer, settings, dataset, result))


def _trial_save(path, model, trainer, settings, dataset) -> None:
    """A whole file written beside ``path`` and removed: a full disk shows before training."""
    from convscope.engine.files.checkpoint import save_model
    result = {"test_size": 0, "test_loss": None, "test_accuracy": None}
    save_model(path, model, *_contents(model, trainer, settings, dataset, result), trial=True)


def _for_classes(args, model, settings, class_names):
    """A new model made for the dataset's classes; a resumed one checked against them."""
    from convscope.engine.files.checkpoint import check_classes, model_class_names
    from convscope.engine.net.model import Model
    if model is not None:
        saved = {"class_names": settings["class_names"]}
        check_classes(model_class_names(model, saved), class_names, args.resume)
        return model
    return Model(dict(settings["config"], classes=len(class_names),
                      class_names=list(class_names),
                      layers=_last_layer(settings["config"]["layers"], len(class_names))),
                 settings["seed"])


def _last_layer(layers: list, classes: int) -> list:
    """The layers with one unit per class in the last (dense) layer."""
    return [*layers[:-1], dict(layers[-1], units=classes)]


def run(args) -> int:
    from convscope.engine.data.datasets import load_dataset
    from convscope.engine.net.train import DivergenceError, Trainer, evaluate
    from convscope.engine.schedules import schedule_lr

    if args.save is not None:
        _check_save(args.save)
    model, state, settings = _resolve(args)
    dataset = load_dataset(settings["data"], progress=interactive(),
                           convert=settings["convert"])
    if dataset.skipped:
        info(args, dataset.skipped)
    model = _for_classes(args, model, settings, dataset.class_names)
    x_train, y_train = _first(dataset.x_train, dataset.y_train, settings["train_size"],
                              "train", settings["data"],
                              args.resume if args.train_size is None else None)
    x_test, y_test = _first(dataset.x_test, dataset.y_test, settings["test_size"],
                            "test", settings["data"],
                            args.resume if args.test_size is None else None)
    if len(x_train) == 0:
        raise UsageError(f"{settings['data']} has no training images")
    bs = int(settings["batch_size"])
    if bs > len(x_train):
        raise UsageError(f"--batch-size {bs} is larger than the training set "
                         f"({len(x_train)} images)")
    trainer = Trainer(model, x_train, y_train, lr=settings["lr"], batch_size=bs,
                      momentum=settings["momentum"], seed=settings["seed"],
                      augment=settings["augment"], nesterov=settings["nesterov"],
                      weight_decay=settings["weight_decay"], schedule=settings["schedule"],
                      label_smoothing=settings["label_smoothing"])
    if state is not None:
        try:
            trainer.set_state(state, hyperparameters=False)
        except ValueError as e:
            used = f"{args.resume} was trained on {len(state['order'])} training images"
            if args.data is None and args.train_size is None:  # the file disagrees with itself
                raise CommandError(f"{used}, but its own dataset settings give "
                                   f"{len(x_train)}: {e}") from None
            raise UsageError(f"{e}: {used}; give the same --data and --train-size") from None
    if args.save:
        _trial_save(args.save, model, trainer, settings, dataset)

    schedule, epochs = settings["schedule"], settings["epochs"]
    cfg = model.config
    info(args, f"training {_name(model)} on {len(x_train)} {settings['data']} images, "
               f"batch {bs}, lr {schedule_lr(schedule, trainer.epoch):g}"
               + (f" ({schedule['name']} schedule, base {schedule['base_lr']:g})"
                  if schedule["name"] != "constant" else "")
               + (f", augment {','.join(settings['augment'])}" if settings["augment"] else "")
               + (f" (the last {schedule['plain_epochs']} epochs plain)"
                  if settings["augment"] and schedule.get("plain_epochs") else "")
               + (f", label smoothing {settings['label_smoothing']:g}"
                  if settings["label_smoothing"] else ""))
    result = {"test_size": len(x_test), "test_loss": None, "test_accuracy": None}
    total = epochs * len(x_train) - trainer.cursor
    bar = progress_bar(total, "train")

    def on_step(report) -> None:
        bar.update(report.batch_size)
        if report.step % 100 == 0:
            bar.set_postfix(loss=f"{report.epoch_loss:.3f}", refresh=False)
    train_seconds, saved_epoch, report = 0.0, None, None
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):  # overflow on the way to NaN is caught as divergence
            for _ in range(epochs):  # the trainer sets lr from the schedule at every step
                t0 = time.perf_counter()
                report = trainer.run_epoch(on_step=on_step)
                train_seconds += time.perf_counter() - t0
                if len(x_test):
                    test_loss, test_acc, _ = evaluate(model, x_test, y_test)
                    result.update(test_loss=test_loss, test_accuracy=test_acc)
                info(args, f"epoch {trainer.epoch}: train loss {report.train_loss:.4f}, "
                           f"accuracy {report.train_accuracy:.2%}"
                     + (f"; test loss {result['test_loss']:.4f}, accuracy "
                        f"{result['test_accuracy']:.2%}" if len(x_test) else ""))
                if args.save:
                    _save(args.save, model, trainer, settings, dataset, result)
                    saved_epoch = trainer.epoch
    except DivergenceError as e:
        kept = (f"; {args.save} keeps the model after epoch {saved_epoch}"
                if saved_epoch else "; nothing was saved" if args.save else "")
        raise CommandError(f"training diverged: {e}{kept}") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    samples = trainer.samples_seen - (state["meta"]["samples_seen"] if state else 0)
    payload = {
        "dataset": settings["data"], "train_size": len(x_train), "test_size": len(x_test),
        "preset": cfg.get("preset"), "filters": cfg.get("filters"), "pool": cfg.get("pool"),
        "relu": cfg.get("relu"), "epochs": epochs, "total_epochs": trainer.epoch,
        "steps": trainer.step_count, "batch_size": bs, "lr": schedule["base_lr"],
        "lr_schedule": schedule["name"],
        "momentum": trainer.momentum, "nesterov": settings["nesterov"],
        "weight_decay": settings["weight_decay"], "seed": settings["seed"],
        "augment": list(settings["augment"]), "plain_epochs": schedule.get("plain_epochs", 0),
        "label_smoothing": settings["label_smoothing"],
        "train_loss": report.train_loss, "train_accuracy": report.train_accuracy,
        "test_loss": result["test_loss"], "test_accuracy": result["test_accuracy"],
        "seconds": round(seconds, 3),
        "samples_per_sec": round(samples / train_seconds, 1) if train_seconds > 0 else None,
        "saved": args.save, "resumed": args.resume, "class_names": list(model.class_names),
    }
    lines = [f"done in {seconds:.1f} s ({payload['samples_per_sec']} images/s)"]
    if args.save:
        lines.append(f"saved {args.save}")
    emit(args, payload, lines)
    return 0
