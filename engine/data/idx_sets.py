"""IDX folders with any label range: MNIST's four files, or sets named like EMNIST's.

A folder holds ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]`` and the two
``t10k-*`` (or ``test-*``) files, or the same names behind a prefix, as EMNIST publishes them:
``emnist-letters-train-images-idx3-ubyte.gz``. The classes are named, first found first:

    <prefix>mapping.txt   EMNIST's lines "label ascii_code [ascii_code]": label 1 65 97 is "Aa";
                          the labels are mapped to 0-based indices in the file's order
    classes.txt           one name per line, line i naming label i (0-based)
    the folder's name     fashion -> Fashion-MNIST's names, kmnist -> KMNIST's; else labels
                          0-9 are the digits, and any other range is named by its numbers
                          (labels starting at 1 counted from 1)

EMNIST stores every image transposed (column by column): a set is EMNIST when its prefix
starts with "emnist" or a mapping file names it, and its images are transposed back.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from convscope.engine.data.idx import DataError, check_pair, read_idx_images, read_idx_labels
from convscope.engine.files.guard import open_regular
from convscope.engine.files.limits import DIGIT_NAMES, MAX_CLASSES, names_problem

FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
# KMNIST's ten classes (Clanuwat et al., 2018): a hiragana character each, with its reading
KMNIST_NAMES = ["お o", "き ki", "す su", "つ tsu", "な na", "は ha", "ま ma", "や ya",
                "れ re", "を wo"]
NAMES_BYTES = 64 * 1024  # a mapping file or classes.txt is small text
_NAME = re.compile(r"^(?P<prefix>.*?)(?P<split>train|t10k|test)-(?P<kind>images-idx3|labels-idx1)"
                   r"-ubyte(?P<gz>\.gz)?$")


def idx_sets(folder: Path) -> dict[str, dict[tuple[str, str], Path]]:
    """{prefix: {("train" | "test", "images" | "labels"): path}} of the IDX files in
    ``folder`` (a raw file preferred to its .gz)."""
    sets: dict = {}
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        m = _NAME.match(path.name)
        if m is None:
            continue
        split = "train" if m["split"] == "train" else "test"
        key = (split, m["kind"].split("-")[0])
        files = sets.setdefault(m["prefix"], {})
        if key not in files or not m["gz"]:
            files[key] = path
    return sets


def pick_set(folder: Path, need_train: bool = True) -> tuple[str, dict] | None:
    """(prefix, files) of the one IDX set in ``folder``, or None when there is none."""
    sets = idx_sets(folder)
    if not sets:
        return None
    whole = {p: f for p, f in sets.items() if len(f) == 4}
    if len(whole) > 1 or (not whole and len(sets) > 1):
        names = ", ".join(p.rstrip("-_ ") or "(no prefix)" for p in sorted(whole or sets))
        raise DataError(f"{folder}: holds several IDX sets ({names}); put each set in a "
                        f"folder of its own")
    prefix = next(iter(whole or sets))
    files = sets[prefix]
    for split in ("train", "test") if need_train else ("test",):
        for kind in ("images", "labels"):
            if (split, kind) not in files:
                stem = f"{prefix}{'train' if split == 'train' else 't10k'}-{kind}-" \
                       f"{'idx3' if kind == 'images' else 'idx1'}-ubyte"
                raise DataError(f"{folder}: no {stem}[.gz] in this folder")
    return prefix, files


def _text_lines(path: Path) -> list[str]:
    with open_regular(path, DataError, "class names file", NAMES_BYTES) as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_mapping(path: Path) -> tuple[list[int], list[str]]:
    """(labels, names) of an EMNIST mapping file: "label code [code]" per line."""
    labels, names = [], []
    for n, line in enumerate(_text_lines(path), 1):
        parts = line.split()
        try:
            label, codes = int(parts[0]), [int(p) for p in parts[1:]]
            chars = [chr(c) for c in codes if 32 < c < 0x110000]
        except (ValueError, IndexError, OverflowError):
            raise DataError(f"{path}: line {n} is not \"label code\" (whole numbers)") from None
        if not 0 <= label <= 255 or not codes or len(chars) != len(codes):
            raise DataError(f"{path}: line {n} has a label outside 0-255 or a code that is "
                            f"not a printable character")
        labels.append(label)
        names.append("".join(dict.fromkeys(chars)))  # "A" and "a" -> "Aa"; "5" -> "5"
    if len(set(labels)) != len(labels):
        raise DataError(f"{path}: a label is named twice")
    return labels, names


def folder_names(folder: Path) -> list[str]:
    """The class names a folder of 10 classes takes from its name."""
    name = folder.resolve().name.lower()
    if "kmnist" in name:
        return list(KMNIST_NAMES)
    return list(FASHION_NAMES if "fashion" in name else DIGIT_NAMES)


def class_table(folder: Path, prefix: str, labels: list[np.ndarray]) -> tuple[list, np.ndarray]:
    """(class names, lookup table (256,) label -> 0-based index, 255 for no class) of the
    labels found in the set ``prefix`` of ``folder``."""
    seen = np.zeros(256, bool)
    for y in labels:
        seen[np.unique(y)] = True
    mapping = _mapping_file(folder, prefix)
    if mapping is not None:
        values, names = read_mapping(mapping)
        where = mapping
    elif (folder / "classes.txt").exists():
        where = folder / "classes.txt"
        names = _text_lines(where)
        values = list(range(len(names)))
    else:
        where = folder
        found = np.flatnonzero(seen)
        top = int(found.max()) if found.size else 0
        if top < 10:
            names, values = folder_names(folder), list(range(10))
        else:
            low = 1 if found.min() == 1 else 0
            values = list(range(low, top + 1))
            names = [str(v) for v in values]
    if len(names) > MAX_CLASSES:
        raise DataError(f"{where}: {len(names)} classes is more than the {MAX_CLASSES} a "
                        f"dataset may have")
    problem = names_problem(names)
    if problem:
        raise DataError(f"{where}: {problem}")
    table = np.full(256, 255, np.uint8)
    table[values] = np.arange(len(values))
    unnamed = np.flatnonzero(seen & (table == 255))
    if unnamed.size:
        raise DataError(f"{where}: names no class for label {int(unnamed[0])} "
                        f"({unnamed.size} such labels in the data)")
    return names, table


def _mapping_file(folder: Path, prefix: str) -> Path | None:
    own = folder / f"{prefix}mapping.txt"
    if own.exists():
        return own
    others = sorted(folder.glob("*mapping.txt"))
    return others[0] if len(others) == 1 else None


def is_emnist(folder: Path, prefix: str) -> bool:
    return prefix.lower().startswith("emnist") or _mapping_file(folder, prefix) is not None


def transposed(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Each (28, 28) image transposed, in place a chunk at a time (no second copy)."""
    images.flags.writeable = True  # the array was just read: nobody else holds it
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk]
        part[...] = part.transpose(0, 2, 1).copy()
    images.flags.writeable = False
    return images


def load_set(folder: Path, prefix: str, files: dict, splits=("train", "test"),
             class_names=None) -> tuple[dict, list]:
    """{split: (images (N, 28, 28), labels (N,) 0-based)} and the class names of a set.
    ``class_names`` given: the labels must already be 0-based indices into them."""
    raw_labels = {s: read_idx_labels(files[(s, "labels")], num_classes=256) for s in splits}
    if class_names is not None:
        names, table = list(class_names), np.full(256, 255, np.uint8)
        table[:len(names)] = np.arange(len(names))
        for s in splits:
            read_idx_labels(files[(s, "labels")], num_classes=len(names))  # its own message
    else:
        names, table = class_table(folder, prefix, list(raw_labels.values()))
    out = {}
    for s in splits:
        images = read_idx_images(files[(s, "images")])
        check_pair(files[(s, "images")], images, files[(s, "labels")], raw_labels[s])
        if is_emnist(folder, prefix):
            images = transposed(images)
        labels = table[raw_labels[s]]
        labels.flags.writeable = False
        out[s] = (images, labels)
    return out, names
