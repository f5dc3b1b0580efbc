"""Model files: one ``.npz`` with the architecture, the weights and the training state.

Members (plain arrays only, never pickled objects):
    format_version   int64 ()               FORMAT_VERSION of the writer
    model            uint8 (bytes,)         JSON {"config": ..., "seed": ..., "dtype": ...}
    param/<name>     float (shape of <name>) every weight, e.g. param/conv1.W (3, 3, 1, 8)
    extra            uint8 (bytes,)         JSON dict of free-form facts (dataset, accuracy...)
    state/meta       uint8 (bytes,)         JSON Trainer meta (step, epoch, cursor, lr, rng...),
                                            optionally "lr_schedule" (see engine.train)
    state/order      int64 (N,)             the epoch's permutation of the training set
    state/velocity/<name>  float            momentum buffers (only those that exist)
The three state/ members are present only when a trainer state was saved; any other member
is refused.

``save_model`` writes atomically (temporary file in the same folder, fsync, rename), so a
crash never leaves half a file under the real name. ``load_model`` reads with
``allow_pickle=False`` and checks everything before building anything: the config's sizes
against the limits of ``engine.model`` and the weights' shapes against the config. Any
problem is a ``CheckpointError`` with one line naming the file.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
import zlib

import numpy as np

from convscope.engine.files.atomic import atomic_path
from convscope.engine.net.model import Model, config_shapes
from convscope.engine.net.train import LR_SCHEDULES

FORMAT_VERSION = 1
STATE_META_KEYS = ("step", "epoch", "cursor", "samples_seen", "lr", "batch_size", "momentum",
                   "seed", "epoch_loss_sum", "epoch_correct", "epoch_seen", "rng")
TOP_MEMBERS = ("format_version", "model", "extra")  # besides param/... and state/...
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class CheckpointError(ValueError):
    """A model file that cannot be written or must not be loaded (one-line message)."""


def _json_bytes(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode("utf-8"), dtype=np.uint8)


def save_model(path, model: Model, trainer_state: dict | None = None,
               extra: dict | None = None) -> None:
    """Write ``model`` (and ``Trainer.get_state()`` if given) to ``path`` atomically.

    The state's weights are the model's: only the model's weights are stored.
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
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


# ---- loading ------------------------------------------------------------------------------
def _read_all(path: str) -> dict[str, np.ndarray]:
    """Every member of the archive, read eagerly with allow_pickle=False."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such model file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a model file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if magic.startswith(b"\x93NUMPY"):
        raise CheckpointError(f"{path} is not a model file (a single .npy array, "
                              f"not an .npz archive)")
    if not magic.startswith(b"PK"):
        raise CheckpointError(f"{path} is not a model file (not an .npz archive)")
    try:  # open the file here: np.load leaves its own handle open when the zip is damaged
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise CheckpointError(f"{path} holds pickled Python objects, which are never "
                                  f"loaded") from None
        raise CheckpointError(f"{path} is not a model file ({_short(e)})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise CheckpointError(f"{path} is not a readable model file (truncated or "
                              f"damaged: {_short(e)})") from None
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):  # np.load hands other members over as raw bytes
            raise CheckpointError(f"{path}: member {name!r} is not a NumPy array")
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


def _check_members(path: str, arrays: dict) -> None:
    for key in arrays:
        if key not in TOP_MEMBERS and not key.startswith(("param/", "state/")):
            raise CheckpointError(f"{path}: unknown member {key!r}")


def _check_weights(path: str, arrays: dict, shapes: dict) -> None:
    """The weight arrays against the shapes the config needs, before anything is built."""
    saved = {k[len("param/"):] for k in arrays if k.startswith("param/")}
    if saved != set(shapes):
        missing, unknown = sorted(set(shapes) - saved), sorted(saved - set(shapes))
        what = (f"missing weights {', '.join(missing)}" if missing
                else f"unknown weights {', '.join(unknown)}")
        raise CheckpointError(f"{path}: {what} for this architecture")
    for name, shape in shapes.items():
        a = arrays[f"param/{name}"]
        if a.shape != shape:
            raise CheckpointError(f"{path}: {name} has shape {a.shape}, the architecture needs "
                                  f"{shape}")


def _model(path: str, arrays: dict) -> Model:
    info = _json(path, arrays, "model")
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise CheckpointError(f"{path}: the architecture config is missing")
    try:
        dtype = np.dtype(info.get("dtype", "float32"))
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"unsupported weight dtype {dtype}")
        shapes = config_shapes(info["config"])  # sizes within limits, nothing built yet
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise CheckpointError(f"{path}: bad architecture config ({_short(e)})") from None
    _check_weights(path, arrays, shapes)
    try:
        model = Model(info["config"], int(info.get("seed", 0)), dtype.type)
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


def _check_schedule(path: str, schedule) -> None:
    """{"name": "cosine", "base_lr": 0.05, "start_epoch": 0, "epochs": 2} (engine.train)."""
    s = schedule if isinstance(schedule, dict) else {}
    lr = s.get("base_lr")
    good = (s.get("name") in LR_SCHEDULES
            and _whole(s.get("start_epoch")) and s["start_epoch"] >= 0
            and _whole(s.get("epochs")) and s["epochs"] >= 1
            and isinstance(lr, (int, float)) and not isinstance(lr, bool)
            and 0 < lr < math.inf)
    if not good:
        raise CheckpointError(f"{path}: the training state has a bad learning-rate schedule")


def _state(path: str, arrays: dict, model: Model) -> dict | None:
    keys = [k for k in arrays if k.startswith("state/")]
    if not keys:
        return None
    meta = _json(path, arrays, "state/meta")
    if not isinstance(meta, dict) or any(k not in meta for k in STATE_META_KEYS):
        missing = [k for k in STATE_META_KEYS if not isinstance(meta, dict) or k not in meta]
        raise CheckpointError(f"{path}: the training state lacks {', '.join(missing)}")
    order = arrays.get("state/order")
    if order is None or order.ndim != 1 or order.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: the training state has no valid sample order")
    if not np.array_equal(np.sort(order), np.arange(len(order))):
        raise CheckpointError(f"{path}: the saved sample order is not a permutation")
    try:
        counters = [int(meta[k]) for k in ("step", "epoch", "cursor", "samples_seen",
                                            "batch_size", "epoch_correct", "epoch_seen")]
        [float(meta[k]) for k in ("lr", "momentum", "epoch_loss_sum")]
        rng = meta["rng"]
        if not isinstance(rng, dict) or rng.get("bit_generator") not in BIT_GENERATORS:
            raise ValueError("unknown random generator")
        getattr(np.random, rng["bit_generator"])().state = rng
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: bad training state ({_short(e)})") from None
    if "lr_schedule" in meta:
        _check_schedule(path, meta["lr_schedule"])
    if min(counters) < 0 or counters[2] > len(order):
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
    _version(path, arrays)
    _check_members(path, arrays)
    model = _model(path, arrays)
    state = _state(path, arrays, model)
    extra = _json(path, arrays, "extra") if "extra" in arrays else {}
    if not isinstance(extra, dict):
        raise CheckpointError(f"{path}: member 'extra' is not a JSON object")
    return model, state, extra
