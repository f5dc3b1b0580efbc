"""Datasets: the embedded MNIST subset, full MNIST, Fashion-MNIST, or any folder of IDX files.

Images stay uint8 (N, 28, 28) and read-only (the full 60,000 are 47 MB); convert batches to
float on the fly with ``prepare_input`` (engine/net/model.py). Labels are uint8 (N,). Every
problem raises ``DataError`` with a one-line message; a dataset is returned whole or not at all.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from convscope.engine.data.idx import (
    DataError,
    check_pair,
    read_idx_images,
    read_idx_labels,
    read_idx_pair,
    read_raw,
)
from convscope.engine.data.idx_sets import (  # noqa: F401 (the names, from here too)
    FASHION_NAMES,
    KMNIST_NAMES,
    load_set,
    pick_set,
)
from convscope.engine.files.limits import DIGIT_NAMES

ASSETS = Path(str(resources.files("convscope") / "assets"))  # package data, also in a wheel
MINI_IMAGES = "mnist-first10k-images-idx3-ubyte.gz"
MINI_LABELS = "mnist-first10k-labels-idx1-ubyte.gz"
MINI_SHA256 = {  # printed by scripts/build_mini_mnist.py
    MINI_IMAGES: "36707bfd63bcc1baf911512db8f40af1940d9fc513cb862f99741a994da05181",
    MINI_LABELS: "ddb336c35d26d6499f325832214cfd852954d037817de7f291d8e80ad0912b32",
}
MINI_TRAIN = 9_000  # train = the first 9,000 training digits, test = the next 1,000

FASHION_SYSTEM_DIRS = [Path("/usr/share/datasets/fashion-mnist")]  # Debian dataset-fashion-mnist

TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass
class Dataset:
    """x_*: uint8 (N, 28, 28), y_*: uint8 (N,) 0-based class indices, class_names: 2 to
    MAX_CLASSES (engine/files/limits.py) str; ``skipped``: a line on files left out."""
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    skipped: str = ""

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
                f"classes={self.class_names[:3]}...)")


def _verified_bytes(path: Path) -> bytes:
    """Stored bytes of an embedded file, once they match MINI_SHA256."""
    raw = read_raw(path)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MINI_SHA256[path.name]:
        raise DataError(f"{path}: sha256 {digest[:12]}... differs from the expected "
                        f"{MINI_SHA256[path.name][:12]}...; the file is damaged "
                        f"(rebuild it with scripts/build_mini_mnist.py)")
    return raw


@functools.lru_cache(maxsize=1)
def _mini_arrays(images_path: Path, labels_path: Path):
    images = read_idx_images(images_path, _verified_bytes(images_path))
    labels = read_idx_labels(labels_path, _verified_bytes(labels_path))
    check_pair(images_path, images, labels_path, labels)
    return images, labels


def load_mini() -> Dataset:
    """The embedded 10,000 first official MNIST training digits, checked against their sha256.
    Train = the first 9,000 (canonical order), test = the last 1,000. Arrays are read-only."""
    images, labels = _mini_arrays(ASSETS / MINI_IMAGES, ASSETS / MINI_LABELS)
    return Dataset("mini", images[:MINI_TRAIN], labels[:MINI_TRAIN],
                   images[MINI_TRAIN:], labels[MINI_TRAIN:], list(DIGIT_NAMES))


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz`` (raw preferred), or None. Whatever exists under
    the name is returned: reading refuses what is not a regular file, naming it."""
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    return None


def load_verified(folder: Path, name: str, class_names) -> Dataset:
    """The four published .gz files of ``folder`` (never an uncompressed file beside them),
    each checked against its published md5 first."""
    from convscope.engine.data.download import MD5, check_md5

    paths = {}
    for stem in TRAIN_FILES + TEST_FILES:
        paths[stem] = folder / (stem + ".gz")
        check_md5(paths[stem], MD5[name][stem + ".gz"])
    classes = len(class_names)
    x_train, y_train = read_idx_pair(*(paths[s] for s in TRAIN_FILES), num_classes=classes)
    x_test, y_test = read_idx_pair(*(paths[s] for s in TEST_FILES), num_classes=classes)
    return Dataset(name, x_train, y_train, x_test, y_test, list(class_names))


def load_dir(path, name: str | None = None, class_names=None) -> Dataset:
    """A folder holding an IDX set: the four MNIST files (train-* and t10k-*, .gz or raw) or
    the same behind a prefix, as EMNIST's (engine/data/idx_sets.py names the classes)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    found = pick_set(folder, need_train=False)
    if found is None:
        raise DataError(f"{folder}: no {TRAIN_FILES[0]}[.gz] in this folder")
    prefix, files = found
    if not any(split == "train" for split, _ in files):
        raise DataError(f"{folder}: holds only the t10k test files; it can be used for "
                        f"evaluation but not for training")
    pick_set(folder, need_train=True)  # names the first missing file
    splits, names = load_set(folder, prefix, files, ("train", "test"), class_names)
    return Dataset(name or folder.resolve().name, *splits["train"], *splits["test"], names)


def load_test_dir(path, class_names=None) -> Dataset:
    """A folder holding an IDX set's test files (train files ignored): x_train is empty."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    found = pick_set(folder, need_train=False)
    if found is None:
        raise DataError(f"{folder}: no {TEST_FILES[0]}[.gz] in this folder")
    prefix, files = found
    splits, names = load_set(folder, prefix, files, ("test",), class_names)
    return Dataset(folder.resolve().name, np.empty((0, 28, 28), np.uint8),
                   np.empty((0,), np.uint8), *splits["test"], names)


def load_dataset(spec: str, cache_dir=None, progress: bool = True, convert: str = "mnist",
                 on_progress=None) -> Dataset:
    """``spec``: "mini" (embedded), "mnist" (cache, else download), "fashion" (system folder,
    else cache, else download), a folder holding IDX files, or a folder of class folders of
    images (engine/data/folders.py: converted with ``convert``, "mnist" or "resize", and
    cached; ``on_progress(done, total)`` while converting). Only files checked against their
    published md5 are read from the cache and the system folder."""
    from convscope.engine.data.download import fetch_dataset

    if spec == "mini":
        return load_mini()
    if spec == "mnist":
        return load_verified(fetch_dataset("mnist", cache_dir, progress), "mnist", DIGIT_NAMES)
    if spec == "fashion":
        for folder in FASHION_SYSTEM_DIRS:  # Debian's copy, checked like a download
            if all((folder / (s + ".gz")).is_file() for s in TRAIN_FILES + TEST_FILES):
                return load_verified(folder, "fashion", FASHION_NAMES)
        return load_verified(fetch_dataset("fashion", cache_dir, progress), "fashion",
                             FASHION_NAMES)
    if Path(spec).is_dir():
        if pick_set(Path(spec), need_train=False) is not None:  # IDX files win
            return load_dir(spec)
        from convscope.engine.data.folders import load_image_folder
        return load_image_folder(spec, convert=convert, cache_dir=cache_dir,
                                 on_progress=on_progress, progress=progress)
    raise DataError(f"unknown dataset {spec!r}: use mini, mnist, fashion, a folder holding "
                    f"IDX files or a folder of class folders of images")
