"""The converted images of an image folder, kept in the cache folder so they are made once.

One ``.npz`` per folder (plain arrays, never pickled objects): x_train, y_train, x_test,
y_test (uint8), names (UTF-8 JSON: the class names and the line on skipped files) and digest
(the sha256 of all of them). Its name is made of a hash of the folder's path, the conversion
and a hash of what was converted (every file's relative path, size and modification time):
a changed file gives a new name, and the older file of the same folder and conversion is
removed. A cached file is read within bounds (the number
of images the folder holds) and its digest checked; anything wrong and it is made again.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from convscope.engine.data.idx import DataError
from convscope.engine.files.archive import Archive
from convscope.engine.files.atomic import atomic_path
from convscope.engine.files.limits import names_problem

VERSION = 1  # of the conversion: a new version makes every cached folder again
WRITE_CHUNK = 1 << 20  # bytes written at a time
ARRAYS = ("x_train", "y_train", "x_test", "y_test", "names")


def folder_hash(root: Path) -> str:
    return hashlib.sha256(os.fsencode(str(root.resolve()))).hexdigest()[:16]


def content_key(entries, convert: str) -> str:
    """sha256 of the conversion and each (relative path, size, mtime in ns)."""
    h = hashlib.sha256(f"convscope folder {VERSION} {convert}\n".encode())
    for rel, size, mtime in entries:
        h.update(os.fsencode(rel) + f"\0{size}\0{mtime}\n".encode())
    return h.hexdigest()[:24]


def cache_file(cache_dir: Path, root: Path, convert: str, key: str) -> Path:
    return Path(cache_dir) / "folders" / f"{folder_hash(root)}-{convert}-{key}.npz"


def _digest(arrays: dict) -> np.ndarray:
    h = hashlib.sha256()
    for name in ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name} {a.dtype.str} {a.shape}\n".encode())
        h.update(memoryview(a).cast("B"))
    return np.frombuffer(h.digest(), np.uint8)


def _write_npz(path, arrays: dict) -> None:
    """What ``np.savez`` writes (stored .npy members), each array written from its own
    memory a chunk at a time: savez copies up to 16 MB of it into bytes at once."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            with archive.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(
                    f, np.lib.format.header_data_from_array_1_0(a))
                flat = memoryview(a).cast("B")
                for start in range(0, len(flat), WRITE_CHUNK):
                    f.write(flat[start:start + WRITE_CHUNK])


def save(path: Path, x_train, y_train, x_test, y_test, names, skipped: str = "") -> None:
    """Write the converted set atomically; remove older files of the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
              "names": np.frombuffer(json.dumps({"class_names": list(names), "skipped": skipped})
                                   .encode("utf-8"), np.uint8)}
    arrays["digest"] = _digest(arrays)
    with atomic_path(path) as tmp:
        _write_npz(tmp, arrays)
    prefix = path.name.rsplit("-", 1)[0] + "-"  # the same folder and conversion
    for old in [*path.parent.glob(prefix + "*.npz"), *path.parent.glob(prefix + "*.log")]:
        if old.stem != path.stem:
            old.unlink(missing_ok=True)


def load(path: Path, max_images: int):
    """(x_train, y_train, x_test, y_test, names, skipped line) of a cached file, or None when
    there is none
    or it does not check out (too large, damaged, digest differs)."""
    if not path.is_file():
        return None
    pixels = max_images * 28 * 28
    limits = {"x_train": pixels, "x_test": pixels, "y_train": max_images,
              "y_test": max_images, "names": 64 * 1024, "digest": 32}
    try:
        with Archive(path, DataError, "cache file") as archive:
            if sorted(archive.names) != sorted(limits):
                return None
            arrays = {name: archive.read(name, limit) for name, limit in limits.items()}
        if not np.array_equal(arrays["digest"], _digest(arrays)):
            return None
        facts = json.loads(arrays["names"].tobytes().decode("utf-8"))
        names, skipped = facts["class_names"], str(facts["skipped"])
    except (DataError, ValueError, UnicodeDecodeError, TypeError, KeyError):
        return None
    x_train, y_train, x_test, y_test = (arrays[k] for k in ARRAYS[:4])
    good = (names_problem(names) is None
            and all(a.dtype == np.uint8 for a in (x_train, y_train, x_test, y_test))
            and x_train.shape[1:] == x_test.shape[1:] == (28, 28)
            and len(x_train) == len(y_train) and len(x_test) == len(y_test)
            and not (y_train >= len(names)).any() and not (y_test >= len(names)).any())
    if not good:
        return None
    for a in (x_train, y_train, x_test, y_test):
        a.flags.writeable = False
    return x_train, y_train, x_test, y_test, names, skipped
