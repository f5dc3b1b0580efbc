"""The learner's own digits: drawings kept on disk as a plain image-folder dataset.

    <data dir>/my-digits/<class name>/<id>.png     28x28 8-bit grey, ink bright on black

exactly as the network sees a digit (the drawing after MNIST-style preprocessing). The folder
is itself a dataset of one subfolder per class, so it can be copied, edited by hand, exported
and imported. Which digits are held back for testing depends only on the file names (a hash,
and each class's first file), so a digit held back stays held back as the set grows, and every
class of two or more digits has one.

Reading is bounded: at most MAX_DIGITS files, each a regular file of at most MAX_PNG_BYTES that
decodes to 28x28; anything else is skipped and counted, never an error.
"""
from __future__ import annotations

import os
import re
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from convscope.engine.data.idx import DataError
from convscope.engine.data.preprocess import load_image, preprocess_digit
from convscope.engine.files.atomic import atomic_path
from convscope.engine.files.guard import open_regular
from convscope.engine.files.places import data_dir

SIZE = 28
MAX_DIGITS = 20_000  # files read from the folder (a few hours of drawing)
MAX_PNG_BYTES = 64_000  # a 28x28 grey PNG is under 1 KB
HOLD_BACK = 5  # one digit in five (by its name's hash) is held back for testing
_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,40}$")  # a class name that is a safe folder name


def default_root() -> Path:
    return data_dir() / "my-digits"


@dataclass
class Digits:
    """What was read: images uint8 (N, 28, 28), labels (class names), the files, and how
    many files were skipped (not PNG, not 28x28, not regular, over the bounds)."""
    images: np.ndarray
    labels: list[str]
    paths: list[Path]
    skipped: int = 0
    held_back: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def check_class_name(name: str) -> str:
    name = str(name).strip()
    if not _NAME.match(name) or name in (".", ".."):
        raise ValueError(f"{name!r} cannot name a class (1-40 characters, no slashes)")
    return name


class MyDigits:
    """The folder of the learner's digits: add, list, relabel, delete, export, import."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_root()

    # ---- writing ----------------------------------------------------------------------
    def add(self, image: np.ndarray, label: str) -> Path:
        """Keep one 28x28 uint8 digit under class ``label``; returns its file."""
        image = np.asarray(image)
        if image.shape != (SIZE, SIZE):
            raise ValueError(f"a digit is {SIZE}x{SIZE} pixels, not {image.shape}")
        folder = self.root / check_class_name(label)
        folder.mkdir(parents=True, exist_ok=True)
        if self.count() >= MAX_DIGITS:
            raise ValueError(f"the set holds {MAX_DIGITS:,} digits already")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        n = 0
        while (path := folder / f"{stamp}-{n:03d}.png").exists():
            n += 1
        pixels = np.clip(image, 0, 255).astype(np.uint8)
        with atomic_path(path, suffix=".png") as tmp:
            Image.fromarray(pixels, mode="L").save(tmp, format="PNG")
        return path

    def delete(self, path) -> None:
        self._own(path).unlink()

    def relabel(self, path, label: str) -> Path:
        """Move a digit to class ``label``; returns its new file."""
        path = self._own(path)
        folder = self.root / check_class_name(label)
        folder.mkdir(parents=True, exist_ok=True)
        new = folder / path.name
        n = 0
        while new.exists():
            n += 1
            new = folder / f"{path.stem}-{n}.png"
        os.replace(path, new)
        return new

    def _own(self, path) -> Path:
        path = Path(path)
        if path.resolve().parent.parent != self.root.resolve() or not path.is_file():
            raise ValueError(f"{path} is not one of the digits in {self.root}")
        return path

    # ---- reading ----------------------------------------------------------------------
    def files(self) -> list[tuple[Path, str]]:
        """(file, class name) of every PNG in a class folder, sorted, at most MAX_DIGITS."""
        found = []
        if not self.root.is_dir():
            return found
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if not _NAME.match(folder.name):
                continue
            for path in sorted(folder.glob("*.png")):
                found.append((path, folder.name))
                if len(found) >= MAX_DIGITS:
                    return found
        return found

    def count(self) -> int:
        return len(self.files())

    def load(self, label: str | None = None) -> Digits:
        """Every digit (or those of class ``label``) as arrays; unreadable files skipped."""
        images, labels, paths, skipped = [], [], [], 0
        for path, name in self.files():
            if label is not None and name != label:
                continue
            pixels = read_digit(path)
            if pixels is None:
                skipped += 1
                continue
            images.append(pixels)
            labels.append(name)
            paths.append(path)
        stack = np.stack(images) if images else np.zeros((0, SIZE, SIZE), np.uint8)
        return Digits(stack, labels, paths, skipped, held_back(paths, labels))

    # ---- folders ----------------------------------------------------------------------
    def export(self, dest) -> int:
        """Copy the set to ``dest`` (class folders of PNGs); returns the number copied."""
        dest, n = Path(dest), 0
        for path, name in self.files():
            (dest / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / name / path.name)
            n += 1
        return n

    def import_folder(self, src) -> tuple[int, int]:
        """Add the images of ``src``'s class folders (28x28 grey PNGs as they are, any other
        picture made MNIST-style); returns (added, skipped)."""
        added = skipped = 0
        src = Path(src)
        if not src.is_dir():
            raise DataError(f"{src} is not a folder")
        for folder in sorted(p for p in src.iterdir() if p.is_dir()):
            for path in sorted(folder.iterdir())[:MAX_DIGITS]:
                pixels = read_digit(path) if path.suffix.lower() == ".png" else None
                if pixels is None:
                    pixels = _converted(path)
                if pixels is None:
                    skipped += 1
                    continue
                try:
                    self.add(pixels, folder.name)
                except ValueError:
                    skipped += 1
                    continue
                added += 1
        return added, skipped


def read_digit(path) -> np.ndarray | None:
    """A stored digit: uint8 (28, 28), or None for anything else (never raises)."""
    try:
        with open_regular(path, DataError, "digit", MAX_PNG_BYTES) as f:
            with Image.open(f, formats=["PNG"]) as img:
                if img.size != (SIZE, SIZE):
                    return None
                return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    except (DataError, OSError, ValueError, SyntaxError):
        return None


def _converted(path) -> np.ndarray | None:
    try:
        digit = preprocess_digit(load_image(path))
    except (DataError, OSError, ValueError):
        return None
    return digit  # uint8 (28, 28), or None for a blank picture


def held_back(paths: list[Path], labels: list[str]) -> np.ndarray:
    """True for the digits kept for testing: one in HOLD_BACK by the hash of the file name,
    and in every class of two or more digits its first file by name (the oldest: names start
    with the time they were added). Adding digits never moves one from testing to training."""
    out = np.array([zlib.crc32(p.name.encode()) % HOLD_BACK == 0 for p in paths], dtype=bool)
    members: dict[str, list[int]] = {}
    for i, name in enumerate(labels):
        members.setdefault(name, []).append(i)
    for rows in members.values():
        if len(rows) == 1:
            out[rows[0]] = False  # a lone digit is for training
        else:
            out[min(rows, key=lambda i: paths[i].name)] = True
    return out


def mixed(x_data: np.ndarray, y_data: np.ndarray, x_own: np.ndarray, y_own: np.ndarray,
          own_share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One fine-tuning epoch: every own digit once, and as many dataset digits (drawn at
    random) as make the own digits ``own_share`` of the whole (0 < own_share <= 1)."""
    if not 0 < own_share <= 1:
        raise ValueError(f"the share of own digits must be in (0, 1], not {own_share}")
    n_data = min(len(x_data), round(len(x_own) * (1 - own_share) / own_share))
    pick = rng.choice(len(x_data), n_data, replace=False) if n_data else np.zeros(0, np.intp)
    x = np.concatenate([x_own, x_data[pick]])
    y = np.concatenate([np.asarray(y_own, np.intp), np.asarray(y_data, np.intp)[pick]])
    order = rng.permutation(len(x))
    return x[order], y[order]
