"""A folder of images, one subfolder per class, as a dataset: your own handwriting.

    letters/            the class names are the folder names (in natural order: 2 before 10)
        a/  1.png 2.jpg ...
        b/  ...
    or  letters/train/a/ ..., letters/test/a/ ...   (a train/test pair is the split)

Every picture Pillow opens (PNG, JPEG, BMP, GIF, WebP, TIFF), of any size and colour, is
converted once to 28x28 grey, ink bright on black as in MNIST: ``mnist`` crops, scales to
20 px and centres the ink's mass (engine/data/preprocess.py); ``resize`` only scales the
whole picture (inverted when its border is light). The result is cached
(engine/data/folder_cache.py). Without a train/test pair a seeded sixth of each class is
the test split (at least one picture of each class with two or more).

Pictures that cannot be read, are not regular files, are larger than the pixel budget or are
blank, and class folders left empty, are skipped, counted in one line and listed in a log
beside the cache; fewer than two classes is refused. Memory: the uint8 result (allocated once
for every file found), the compact list of the files (engine/data/folder_scan.py: about 26
bytes a file beside its name) and one picture at a time.
"""
from __future__ import annotations

from itertools import chain
from pathlib import Path

import numpy as np
from PIL import Image

from convscope.engine.data import folder_cache
from convscope.engine.data.folder_scan import FileList, scan
from convscope.engine.data.idx import DataError
from convscope.engine.data.preprocess import load_image, preprocess_digit
from convscope.engine.files import places

CONVERSIONS = ("mnist", "resize")
TEST_SHARE = 1 / 6  # of each class, when the folder has no train/test pair
SPLIT_SEED = 0
PROGRESS_EVERY = 64  # pictures between two progress calls


def convert_image(path, convert: str) -> np.ndarray | None:
    """uint8 (28, 28) ink bright on black from a picture file; None when it is blank.
    DataError when it cannot be read (one line, naming the file)."""
    image = load_image(path)  # (H, W) float32 in [0, 1], bounded before decoding
    if convert == "mnist":
        return preprocess_digit(image)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if border.mean() > 0.5:
        image = 1.0 - image
    if np.ptp(image) < 0.1:
        return None
    small = Image.fromarray(image.astype(np.float32)).resize((28, 28), Image.Resampling.BOX
                                                              if min(image.shape) >= 28 else
                                                              Image.Resampling.BILINEAR)
    return np.round(np.clip(np.asarray(small), 0, 1) * 255).astype(np.uint8)


def _reason(error: DataError) -> str:
    text = str(error)
    if "more than" in text:
        return "too large"
    if "not a regular file" in text or "only regular files" in text:
        return "not a regular file"
    return "unreadable"


def _convert_all(files: FileList, which: np.ndarray, convert, skipped, tick):
    """(images (n, 28, 28), labels (n,)) of the files ``which`` (indices into ``files``)
    that convert; the rest skipped."""
    x = np.empty((len(which), 28, 28), np.uint8)  # the result, allocated once
    y = np.empty(len(which), np.uint8)
    labels, n = files.labels, 0
    for i in which.tolist():
        path = files.path(i)
        try:
            image = convert_image(path, convert)
        except DataError as e:
            skipped.append((Path(path), _reason(e)))
            image = None
        else:
            if image is None:
                skipped.append((Path(path), "blank"))
        if image is not None:
            x[n], y[n] = image, labels[i]
            n += 1
        tick()
    return x[:n], y[:n]


def test_mask(labels: np.ndarray, classes: int) -> np.ndarray:
    """Seeded split of one folder's files (``labels`` (n,), in listing order): True for
    about TEST_SHARE of each class, the test set (decided before converting, so each split
    is written once into its own array)."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(labels), bool)
    for c in range(classes):
        where = np.flatnonzero(labels == c)
        if len(where) >= 2:
            k = max(1, round(len(where) * TEST_SHARE))
            test[rng.permutation(where)[:k]] = True
    return test


def _drop_empty(names, parts, skipped, root):
    """Classes without a training picture are dropped (counted); labels re-numbered."""
    x_train, y_train, x_test, y_test = parts
    present = np.bincount(y_train, minlength=len(names)) > 0
    for name, ok in zip(names, present, strict=True):
        if not ok:
            skipped.append((root / name, "empty class folder"))
    if present.sum() < 2:
        raise DataError(f"{root}: {int(present.sum())} class folder(s) with pictures; a "
                        f"dataset needs at least two classes")
    if present.all():
        return names, parts
    table = np.cumsum(present) - 1
    keep = present[y_test]
    return ([n for n, ok in zip(names, present, strict=True) if ok],
            (x_train, table[y_train].astype(np.uint8), x_test[keep],
             table[y_test[keep]].astype(np.uint8)))


def summary(skipped, log: Path) -> str:
    """"skipped 3 files (2 unreadable, 1 too large): see LOG", or "" when none were."""
    if not skipped:
        return ""
    counts: dict = {}
    for _, reason in skipped:
        counts[reason] = counts.get(reason, 0) + 1
    what = ", ".join(f"{n} {reason}" for reason, n in counts.items())
    return f"skipped {len(skipped)} file{'s' * (len(skipped) != 1)} ({what}): see {log}"


def _write_log(log: Path, skipped) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{reason}\t{path}\n" for path, reason in skipped)
    log.write_text(text, encoding="utf-8", errors="backslashreplace")


def load_image_folder(path, convert: str = "mnist", cache_dir=None, on_progress=None,
                      progress: bool = False):
    """The Dataset of an image folder (see the module's text). ``on_progress(done, total)``
    is called while pictures are converted; ``progress`` shows a bar on stderr."""
    from convscope.engine.data.datasets import Dataset

    root = Path(path)
    if convert not in CONVERSIONS:
        raise DataError(f"unknown conversion {convert!r} (mnist or resize)")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    names, files, paired, skipped = scan(root)
    if len(names) < 2:
        raise DataError(f"{root}: {len(names)} class folder(s); a folder of images needs one "
                        f"subfolder per class, at least two")
    entries = files.entries(str(root))  # as relative_to(root) gives
    key = folder_cache.content_key(chain(entries, ((p.name, 0, 0) for p, _ in skipped)),
                                   convert)
    cache = folder_cache.cache_file(Path(cache_dir or places.cache_dir()), root, convert,
                                   key)
    log = cache.with_suffix(".log")
    cached = folder_cache.load(cache, max(1, len(files)))
    if cached is not None:
        *parts, names, line = cached
        return Dataset(root.resolve().name, *parts, names, line)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(files), desc="convert", unit="img", leave=False)
    done = [0]

    def tick():
        done[0] += 1
        if bar is not None:
            bar.update(1)
        if on_progress is not None and (done[0] % PROGRESS_EVERY == 0 or done[0] == len(files)):
            on_progress(done[0], len(files))
    try:
        test = (files.split == 1) if paired else test_mask(files.labels, len(names))
        parts = (*_convert_all(files, np.flatnonzero(~test), convert, skipped, tick),
                 *_convert_all(files, np.flatnonzero(test), convert, skipped, tick))
    finally:
        if bar is not None:
            bar.close()
    names, parts = _drop_empty(names, parts, skipped, root)
    line = summary(skipped, log)
    if skipped:
        _write_log(log, skipped)
    folder_cache.save(cache, *parts, names, line)
    for a in parts:
        a.flags.writeable = False
    return Dataset(root.resolve().name, *parts, names, line)
