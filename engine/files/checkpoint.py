"""Model files: one ``.npz`` with the architecture, the weights and the training state.

Members (plain arrays only, never pickled objects):
    format_version   int64 ()               FORMAT_VERSION of the writer
    model            uint8 (bytes,)         JSON {"config": ..., "seed": ..., "dtype": ...}
    param/<name>     float (shape of <name>) every weight, e.g. param/conv1.W (3, 3, 1, 8)
    extra            uint8 (bytes,)         JSON dict of free-form facts (dataset, accuracy...)
    state/meta       uint8 (bytes,)         JSON Trainer meta (step, epoch, cursor, lr, rng...),
                                            optionally "lr_schedule" (engine/net/optim.py),
                                            "nesterov", "weight_decay" and "augment" (a list
                                            of kinds; a boolean in older files)
    state/order      int64 (N,)             the epoch's permutation of the training set
    state/velocity/<name>  float            momentum buffers (only those that exist)
The three state/ members are present only when a trainer state was saved; any other member
is refused.

``save_model`` writes atomically (temporary file in the same folder, fsync, rename), so a
crash never leaves half a file under the real name. ``load_model`` reads only regular files and
checks everything before it decompresses or builds anything (engine/files/archive.py): the
members' names against MEMBERS, the format version and the config's sizes and costs against
the limits of ``engine.net.model``, then each member's declared size (zip header, .npy header)
against what the config allows; never pickled objects. Any problem is a ``CheckpointError``
with one line naming the file. Text that will be shown (class names) is made plain.
"""
from __future__ import annotations

import json
import os

import numpy as np

from convscope.engine.data.idx import MAX_IMAGES
from convscope.engine.files.archive import Archive
from convscope.engine.files.atomic import atomic_path, why
from convscope.engine.files.guard import clean_text
from convscope.engine.files.limits import config_shapes
from convscope.engine.files.state_meta import MAX_EPOCHS, meta_problem  # noqa: F401
from convscope.engine.net.model import Model

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A model file that cannot be written or must not be loaded (one-line message)."""


def _json_bytes(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode("utf-8"), dtype=np.uint8)


def save_model(path, model: Model, trainer_state: dict | None = None,
               extra: dict | None = None, trial: bool = False) -> None:
    """Write ``model`` (and ``Trainer.get_state()`` if given) to ``path`` atomically.

    The state's weights are the model's: only the model's weights are stored. With ``trial``
    the whole file is written beside ``path`` and removed, ``path`` untouched: a full disk or
    an unwritable folder shows before any training is done.
    """
    path = os.fspath(path)
    try:
        arrays = {
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "model": _json_bytes({"config": model.config, "seed": model.seed,
                                  "dtype": np.dtype(model.dtype).name}),
            "extra": _json_bytes(dict(extra or {})),
        }
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot save {path}: {e}") from None
    for name, w in model.params().items():
        arrays[f"param/{name}"] = np.ascontiguousarray(w)
    if trainer_state is not None:
        try:
            arrays["state/meta"] = _json_bytes(trainer_state["meta"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"cannot save {path}: trainer state: {e}") from None
        arrays["state/order"] = np.asarray(trainer_state["order"], dtype=np.int64)
        for name, v in trainer_state.get("velocity", {}).items():
            arrays[f"state/velocity/{name}"] = np.ascontiguousarray(v)
    for key, a in arrays.items():
        if a.dtype.kind not in "biuf":  # np.savez would pickle anything else
            raise CheckpointError(f"cannot save {path}: {key} is not a numeric array")
    try:
        with atomic_path(path, keep=not trial) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    except OSError as e:  # one line in words ("the disk is full"), still an OSError
        text = str(e) if str(e).startswith("cannot save") else f"cannot save {path}: {why(e)}"
        raise OSError(text) from None


# ---- loading ------------------------------------------------------------------------------
JSON_BYTES = 64 * 1024  # model, extra and state/meta (a 32-layer config is about 3 KB)


def _weight_bytes(shapes: dict, name: str) -> int | None:
    return 8 * int(np.prod(shapes[name])) if name in shapes else None  # float64 at most


# Every member a model file may hold -> the most bytes its array may declare, given the
# config's weight shapes; None: no such member for this architecture. A key ending in "/"
# stands for one member per weight ("param/conv1.W"). Nothing else is ever read.
MEMBERS = {
    "format_version": lambda shapes, rest: 8,
    "model": lambda shapes, rest: JSON_BYTES,
    "extra": lambda shapes, rest: JSON_BYTES,
    "param/": _weight_bytes,
    "state/meta": lambda shapes, rest: JSON_BYTES,
    "state/order": lambda shapes, rest: 8 * MAX_IMAGES,
    "state/velocity/": _weight_bytes,
}


def _rule(name: str):
    """(rule, rest of the name) of the MEMBERS entry for ``name``, or (None, "")."""
    for key, rule in MEMBERS.items():
        if name == key or (key.endswith("/") and name.startswith(key) and name != key):
            return rule, name[len(key):]
    return None, ""


def _read_all(path: str) -> dict[str, np.ndarray]:
    """Every member, each checked against what the config allows before it is decompressed:
    first the format version and the config, then the rest."""
    with Archive(path, CheckpointError) as archive:
        unknown = [name for name in archive.names if _rule(name)[0] is None]
        if unknown:
            raise CheckpointError(f"{path}: unknown member {unknown[0]!r}")
        arrays = {}
        for key in ("format_version", "model"):
            if key in archive.names:
                arrays[key] = archive.read(key, MEMBERS[key]({}, ""))
        _version(path, arrays)
        shapes = _config_shapes(path, arrays)
        _check_weights(path, [k for k in archive.names if k.startswith("param/")], shapes)
        for name in archive.names:
            if name not in arrays:
                rule, rest = _rule(name)
                limit = rule(shapes, rest)
                if limit is None:
                    raise CheckpointError(f"{path}: member {name!r} does not belong to this "
                                          f"architecture")
                arrays[name] = archive.read(name, limit)
    return arrays


def _short(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _json(path: str, arrays: dict, key: str):
    a = arrays.get(key)
    if a is None:
        raise CheckpointError(f"{path} is not a ConvScope model file (no {key!r} member)")
    if a.dtype != np.uint8 or a.ndim != 1:
        raise CheckpointError(f"{path}: member {key!r} is not UTF-8 JSON bytes")
    try:
        return json.loads(a.tobytes().decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{path}: member {key!r} is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path}: member {key!r} is not valid JSON ({_short(e)})") from None


def _check_array(path: str, key: str, a: np.ndarray, like: np.ndarray) -> None:
    if a.shape != like.shape:
        raise CheckpointError(f"{path}: {key} has shape {a.shape}, the architecture needs "
                              f"{like.shape}")
    if a.dtype != like.dtype:
        raise CheckpointError(f"{path}: {key} has dtype {a.dtype}, the architecture needs "
                              f"{like.dtype}")
    if not np.isfinite(a).all():
        raise CheckpointError(f"{path}: {key} holds values that are not finite")


def _version(path: str, arrays: dict) -> int:
    v = arrays.get("format_version")
    if v is None:
        raise CheckpointError(f"{path} is not a ConvScope model file (no format version)")
    if v.shape != () or v.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: the format version is not a whole number")
    v = int(v)
    if v > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer ConvScope (format {v}; this "
                              f"version reads formats up to {FORMAT_VERSION})")
    if v < 1:
        raise CheckpointError(f"{path}: unknown format version {v}")
    return v


def _check_weights(path: str, members: list, shapes: dict) -> None:
    """The weight members' names against the weights the config needs, before reading any."""
    saved = {k[len("param/"):] for k in members}
    if saved != set(shapes):
        missing, unknown = sorted(set(shapes) - saved), sorted(saved - set(shapes))
        what = (f"missing weights {', '.join(missing)}" if missing
                else f"unknown weights {', '.join(unknown)}")
        raise CheckpointError(f"{path}: {what} for this architecture")


def _info(path: str, arrays: dict) -> dict:
    info = _json(path, arrays, "model")
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise CheckpointError(f"{path}: the architecture config is missing")
    preset = info["config"].get("preset", "custom")
    if not isinstance(preset, str) or not preset or clean_text(preset, 40) != preset:
        raise CheckpointError(f"{path}: the architecture's name is not short plain text")
    seed = info.get("seed", 0)
    if not _whole(seed) or not 0 <= seed < 2**64:
        raise CheckpointError(f"{path}: the seed is not a whole number from 0 to 2^64-1")
    return info


def _config_shapes(path: str, arrays: dict) -> dict:
    """The weight shapes of the file's config, once its sizes and costs are within limits."""
    info = _info(path, arrays)
    try:
        dtype = np.dtype(info.get("dtype", "float32"))
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"unsupported weight dtype {dtype}")
        return config_shapes(info["config"])  # sizes and costs within limits, nothing built
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise CheckpointError(f"{path}: bad architecture config ({_short(e)})") from None


def _model(path: str, arrays: dict) -> Model:
    info = _info(path, arrays)
    for name, shape in config_shapes(info["config"]).items():
        a = arrays[f"param/{name}"]
        if a.shape != shape:
            raise CheckpointError(f"{path}: {name} has shape {a.shape}, the architecture needs "
                                  f"{shape}")
    try:
        model = Model(info["config"], info.get("seed", 0), np.dtype(info.get("dtype",
                                                                            "float32")).type)
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise CheckpointError(f"{path}: bad architecture config ({_short(e)})") from None
    own = model.params()
    for name, like in own.items():
        _check_array(path, name, arrays[f"param/{name}"], like)
    for name, w in own.items():
        w[...] = arrays[f"param/{name}"]
    return model


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _state(path: str, arrays: dict, model: Model) -> dict | None:
    keys = [k for k in arrays if k.startswith("state/")]
    if not keys:
        return None
    meta = _json(path, arrays, "state/meta")
    problem = meta_problem(meta)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    order = arrays.get("state/order")
    if order is None or order.ndim != 1 or order.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: the training state has no valid sample order")
    if not np.array_equal(np.sort(order), np.arange(len(order))):
        raise CheckpointError(f"{path}: the saved sample order is not a permutation")
    if meta["cursor"] > len(order) or meta["batch_size"] > len(order):
        raise CheckpointError(f"{path}: the training position is out of range")
    params = model.params()
    velocity = {}
    for key in keys:
        if key.startswith("state/velocity/"):
            name = key[len("state/velocity/"):]
            if name not in params:
                raise CheckpointError(f"{path}: momentum for unknown weight {name}")
            _check_array(path, key, arrays[key], params[name])
            velocity[name] = arrays[key]
        elif key not in ("state/meta", "state/order"):
            raise CheckpointError(f"{path}: unknown member {key!r}")
    return {"params": {k: v.copy() for k, v in params.items()}, "velocity": velocity,
            "order": order.astype(np.intp), "meta": meta}


def load_model(path) -> tuple[Model, dict | None, dict]:
    """(model, trainer state for ``Trainer.set_state`` or None, extra dict) from ``path``."""
    path = os.fspath(path)
    arrays = _read_all(path)
    model = _model(path, arrays)
    state = _state(path, arrays, model)
    extra = _json(path, arrays, "extra") if "extra" in arrays else {}
    if not isinstance(extra, dict):
        raise CheckpointError(f"{path}: member 'extra' is not a JSON object")
    names = extra.get("class_names")
    if names is not None:  # shown in labels and printed: plain text, one per output
        if not isinstance(names, list) or len(names) != model.classes or not all(
                isinstance(n, str) for n in names):
            raise CheckpointError(f"{path}: the class names are not a list of "
                                  f"{model.classes} names")
        extra["class_names"] = [clean_text(n, 40) for n in names]
    if extra.get("convert", "mnist") not in ("mnist", "resize"):  # engine/data/folders.py
        raise CheckpointError(f"{path}: the saved conversion of pictures is not mnist or resize")
    return model, state, extra


def model_class_names(model: Model, extra: dict | None) -> list[str]:
    """The classes a loaded model tells apart, as its file's facts name them (made plain by
    ``load_model``), else as its config does (the digits for files from before classes)."""
    names = (extra or {}).get("class_names")
    return list(names) if names else list(model.class_names)


def check_classes(model_names, data_names, what: str) -> None:
    """CheckpointError (one line) unless ``data_names`` are the classes the model was
    trained on, in the same order."""
    if list(model_names) == list(data_names):
        return
    def show(names):
        text = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        return f"{len(names)} classes ({clean_text(text, 80)})"
    raise CheckpointError(f"{what}: the model tells apart {show(list(model_names))}, the data "
                          f"has {show(list(data_names))}; use data with the model's classes")
