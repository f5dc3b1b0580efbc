"""The files of a folder of class folders, listed compactly before anything is read.

A folder of 100,000 pictures must not cost a Python object per file: ``FileList`` keeps every
file's name in one joined byte buffer with its end offsets, and its size, modification time,
class and split in numpy arrays, about 26 bytes per file beside the name itself. A file's
path is made again when it is opened (``path(i)``). Class folders are listed one at a time
(``os.scandir``, one entry at a time) and each is sorted by name (byte order) through its own
short-lived arrays, so the working set of a scan is one class folder's names, never a list
of objects.
"""
from __future__ import annotations

import os
import re
import stat
from array import array
from pathlib import Path

import numpy as np

from convscope.engine.data.idx import MAX_IMAGES, DataError
from convscope.engine.files.limits import MAX_CLASSES, names_problem

SPLITS = ("train", "test")


def natural_key(name: str):
    """"a2" before "a10": runs of digits compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower())
            for t in re.split(r"(\d+)", name) if t] + [(2, 0, name)]


def subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir()),
                  key=lambda p: natural_key(p.name))


class FileList:
    """The regular files found: file i is ``tops[split[i]]/class_names[label[i]]/name(i)``.

    ``ends`` (n,) int64: where each name ends in ``names`` (a bytearray of the names,
    file-system encoded, joined); ``sizes``, ``mtimes`` (n,) int64 (bytes, ns);
    ``labels`` (n,) uint8 class index; ``split`` (n,) uint8 index into ``tops``."""

    def __init__(self, tops: list[str], class_names: list[str]):
        self.tops, self.class_names = tops, class_names
        self.names = bytearray()
        self._ends, self._sizes, self._mtimes = array("q"), array("q"), array("q")
        self._labels, self._split = array("B"), array("B")

    def __len__(self) -> int:
        return len(self._ends)

    @property
    def ends(self) -> np.ndarray:
        return np.frombuffer(self._ends, np.int64)

    @property
    def sizes(self) -> np.ndarray:
        return np.frombuffer(self._sizes, np.int64)

    @property
    def mtimes(self) -> np.ndarray:
        return np.frombuffer(self._mtimes, np.int64)

    @property
    def labels(self) -> np.ndarray:
        return np.frombuffer(self._labels, np.uint8)

    @property
    def split(self) -> np.ndarray:
        return np.frombuffer(self._split, np.uint8)

    def nbytes(self) -> int:
        """Bytes held for the list (the buffers as allocated, not counting growth room)."""
        return len(self.names) + 8 * 3 * len(self) + 2 * len(self)

    def name(self, i: int) -> bytes:
        start = self._ends[i - 1] if i else 0
        return bytes(self.names[start:self._ends[i]])

    def folder(self, i: int) -> str:
        return os.path.join(self.tops[self._split[i]], self.class_names[self._labels[i]])

    def path(self, i: int) -> str:
        """The path to open (as ``os.scandir`` gave it: the folder joined with the name)."""
        return os.path.join(self.folder(i), os.fsdecode(self.name(i)))

    def entries(self, root: str):
        """(path relative to ``root``, size, mtime) of every file, file-system encoded: what
        the cache key covers."""
        folders: dict = {}
        for i in range(len(self)):
            where = (self._split[i], self._labels[i])
            if where not in folders:
                top = os.path.relpath(self.tops[where[0]], root)
                folders[where] = os.fsencode(os.path.join(
                    "" if top == "." else top, self.class_names[where[1]], ""))
            yield folders[where] + self.name(i), self._sizes[i], self._mtimes[i]

    def add_folder(self, folder: str, label: int, split: int, skipped: list) -> None:
        """The regular files of one class folder, sorted by name; the rest ``skipped``."""
        names, ends, sizes, mtimes = bytearray(), array("q"), array("q"), array("q")
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    info = entry.stat()  # follows a symlink
                except OSError:
                    skipped.append((Path(entry.path), "unreadable"))
                    continue
                if not stat.S_ISREG(info.st_mode):
                    skipped.append((Path(entry.path), "not a regular file"))
                    continue
                names += os.fsencode(entry.name)
                ends.append(len(names))
                sizes.append(info.st_size)
                mtimes.append(info.st_mtime_ns)
        if len(ends) + len(self) > MAX_IMAGES:
            raise DataError(f"{folder}: more than the {MAX_IMAGES:,} images a dataset may "
                            f"have")
        for i in _name_order(names, np.frombuffer(ends, np.int64)):
            start = ends[i - 1] if i else 0
            self.names += names[start:ends[i]]
            self._ends.append(len(self.names))
            self._sizes.append(sizes[i])
            self._mtimes.append(mtimes[i])
        self._labels.extend(bytes([label]) * len(ends))
        self._split.extend(bytes([split]) * len(ends))


def _name_order(names: bytearray, ends: np.ndarray) -> np.ndarray:
    """Indices that sort the joined ``names`` in byte order, through one fixed-width array
    (n, longest name) of the folder: at most 255 bytes a file, freed on return."""
    if not len(ends):
        return np.empty(0, np.intp)
    starts = np.concatenate([[0], ends[:-1]])
    width = int((ends - starts).max())
    keys = np.zeros(len(ends), f"S{width}")
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        keys[i] = bytes(names[a:b])
    return np.argsort(keys, kind="stable")


def scan(root: Path):
    """(class names, FileList, paired, skipped [(path, reason)]) of an image folder, nothing
    read yet; ``paired``: the folder holds train/ and test/ (split 0 and 1 of the list)."""
    skipped: list = []
    train, test = root / "train", root / "test"
    paired = bool(train.is_dir() and test.is_dir() and subfolders(train) and subfolders(test))
    tops = [train, test] if paired else [root]
    names = [p.name for p in subfolders(tops[0])]
    if paired:
        extra = [p.name for p in subfolders(test) if p.name not in names]
        if extra:
            raise DataError(f"{test}: class folder {extra[0]!r} has no folder in {train}")
    if len(names) > MAX_CLASSES:
        raise DataError(f"{root}: {len(names)} class folders is more than the {MAX_CLASSES} "
                        f"a dataset may have")
    problem = names_problem(names) if len(names) >= 2 else None
    if problem:
        raise DataError(f"{root}: {problem}")
    files = FileList([str(t) for t in tops], names)
    try:
        for split, top in enumerate(tops):
            for index, name in enumerate(names):
                if (top / name).is_dir():
                    files.add_folder(str(top / name), index, split, skipped)
    except DataError:
        raise DataError(f"{root}: more than the {MAX_IMAGES:,} images a dataset may "
                        f"have") from None
    return names, files, paired, skipped
