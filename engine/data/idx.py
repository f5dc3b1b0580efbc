"""MNIST-format IDX files, gzipped or raw, read within the sizes their headers declare.

Images: magic 0x00000803, count, rows, cols (big-endian uint32), then uint8 pixels.
Labels: magic 0x00000801, count, then uint8 labels. A file whose name ends in ``.gz`` must be
gzip; gzip is also recognised by its own magic bytes whatever the name. Only regular files are
read. The header is read first and checked (at most MAX_IMAGES images of 28x28 pixels); then
exactly the declared bytes are decompressed, as a stream, straight into the array: a file
costs its own uint8 size and never more, and decompression stops where the header says the
data ends. Every problem raises ``DataError`` with one line naming the file; nothing half-read
is ever returned.
"""
from __future__ import annotations

import gzip
import io
import os
import threading
import zlib
from pathlib import Path

import numpy as np

from convscope.engine.files.guard import open_regular

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"
IMAGE_SIZE = (28, 28)
MAX_IMAGES = 1_000_000  # images (or labels) one IDX file may declare: EMNIST has 814,255
MAX_FILE_BYTES = 16 + MAX_IMAGES * 28 * 28 + (1 << 24)  # raw, or gzip of random pixels
NUM_CLASSES = 10  # the class sets ConvScope knows (digits, Fashion-MNIST) have 10 classes
_EXTRA_COUNTED = 1 << 20  # trailing bytes counted at most (then "more than")
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


class DataError(ValueError):
    """A data file or dataset is missing or malformed (message: one line, names the file)."""


def read_raw(path) -> bytes:
    """The bytes of ``path`` as stored (DataError when missing, unreadable or too large)."""
    with open_regular(path, DataError, "data file", MAX_FILE_BYTES) as f:
        try:
            return f.read()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _stream(path, raw):
    """A binary stream of the decompressed contents: of ``raw`` (bytes or an open file)."""
    if isinstance(raw, (bytes, bytearray)):
        raw = io.BytesIO(raw)
    head = raw.read(2)
    raw.seek(0)
    is_gzip = head == GZIP_MAGIC
    if Path(path).name.endswith(".gz") and not is_gzip:
        raise DataError(f"{path}: not a gzip file although its name ends in .gz")
    return gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw


def _fill(path, f, view: memoryview, what: str) -> int:
    """Read into ``view`` until full or the end of the data; the number of bytes read."""
    got = 0
    try:
        while got < len(view):
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
    except _GZIP_ERRORS as e:
        raise DataError(f"{path}: damaged gzip data ({e})") from None
    return got


def _extra(path, f) -> int:
    """Bytes left after the declared data (counted up to _EXTRA_COUNTED + 1)."""
    n = 0
    try:
        while n <= _EXTRA_COUNTED and (block := f.read(1 << 16)):
            n += len(block)
    except _GZIP_ERRORS as e:
        raise DataError(f"{path}: damaged gzip data ({e})") from None
    return n


def _read(path, raw, magic: int, ndim: int, what: str) -> np.ndarray:
    """uint8 array of the shape the header declares, from ``raw`` (bytes or a file)."""
    f = _stream(path, raw)
    size = 4 + 4 * ndim
    header = bytearray(size)
    got = _fill(path, f, memoryview(header), what)
    found = int.from_bytes(header[:4], "big")
    if got >= 4 and found != magic:
        raise DataError(f"{path}: wrong magic number 0x{found:08x} "
                        f"(an IDX {what} file starts with 0x{magic:08x})")
    if got < size:
        raise DataError(f"{path}: truncated: {got} bytes, shorter than the "
                        f"{size}-byte IDX header")
    shape = tuple(int.from_bytes(header[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if shape[0] > MAX_IMAGES:
        raise DataError(f"{path}: declares {shape[0]:,} {what}, more than the {MAX_IMAGES:,} "
                        f"a dataset may have")
    if ndim == 3 and shape[1:] != IMAGE_SIZE:
        raise DataError(f"{path}: images are {shape[1]}x{shape[2]} pixels, expected 28x28")
    need = int(np.prod(shape, dtype=np.int64))
    if not isinstance(f, gzip.GzipFile):  # a raw file's size is known: check it first
        body = f.seek(0, os.SEEK_END) - size
        f.seek(size)
        if body != need:
            what_is = "truncated" if body < need else "trailing garbage"
            raise DataError(f"{path}: {what_is}: {shape[0]} {what} need {need} bytes of "
                            f"data, the file has {body}")
    array = np.empty(shape, dtype=np.uint8)  # pages are used only as data arrive
    got = _fill(path, f, memoryview(array.reshape(-1)), what)
    if got < need:
        raise DataError(f"{path}: truncated: {shape[0]} {what} need {need} bytes of data, "
                        f"the file has {got}")
    extra = _extra(path, f)
    if extra:
        count = f"more than {_EXTRA_COUNTED:,}" if extra > _EXTRA_COUNTED else f"{extra}"
        raise DataError(f"{path}: trailing garbage: {count} extra bytes after "
                        f"the {shape[0]} {what}")
    array.flags.writeable = False  # shared by every view of the dataset
    return array


def _source(path, raw):
    return open_regular(path, DataError, "data file", MAX_FILE_BYTES) if raw is None else \
        io.BytesIO(raw)


def read_idx_images(path, raw: bytes | None = None) -> np.ndarray:
    """uint8 (N, 28, 28) images from an IDX image file (or from its stored bytes ``raw``)."""
    with _source(path, raw) as f:
        return _read(path, f, IMAGES_MAGIC, 3, "images")


def read_idx_labels(path, raw: bytes | None = None,
                    num_classes: int = NUM_CLASSES) -> np.ndarray:
    """uint8 (N,) labels from an IDX label file (or its stored bytes ``raw``), each a class
    of the dataset: 0 to num_classes - 1."""
    with _source(path, raw) as f:
        labels = _read(path, f, LABELS_MAGIC, 1, "labels")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: label {labels[i]} at index {i} is outside 0-"
                        f"{num_classes - 1} ({bad.size} such labels)")
    return labels


def check_pair(images_path, images: np.ndarray, labels_path, labels: np.ndarray) -> None:
    if len(images) != len(labels):
        raise DataError(f"{images_path}: {len(images)} images but {labels_path} has "
                        f"{len(labels)} labels")


def read_idx_pair(images_path, labels_path,
                  num_classes: int = NUM_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) in 0..num_classes-1 that must have the same count."""
    labels = read_idx_labels(labels_path, num_classes=num_classes)  # the small file first
    images = read_idx_images(images_path)
    check_pair(images_path, images, labels_path, labels)
    return images, labels


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: (N,) -> label file, (N, rows, cols) -> image file."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(f"write_idx needs uint8 (N,) or (N, rows, cols), got "
                         f"{array.dtype} {array.shape}")
    magic = LABELS_MAGIC if array.ndim == 1 else IMAGES_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def gzip_bytes(data: bytes) -> bytes:
    """gzip with a fixed header (no name, mtime 0, OS byte 255): same input, same bytes."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as f:
        f.write(data)
    return out.getvalue()


def write_idx(path, array: np.ndarray) -> None:
    """Write ``array`` as IDX, gzipped when ``path`` ends in .gz (mtime 0: reproducible bytes).
    The file appears whole or not at all (temporary name, then rename)."""
    path = Path(path)
    data = idx_bytes(array)
    if path.name.endswith(".gz"):
        data = gzip_bytes(data)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
