"""MNIST-format IDX files, gzipped or raw.

Images: magic 0x00000803, count, rows, cols (big-endian uint32), then uint8 pixels.
Labels: magic 0x00000801, count, then uint8 labels. A file whose name ends in ``.gz`` must be
gzip; gzip is also recognised by its own magic bytes whatever the name. Every problem raises
``DataError`` with one line naming the file; nothing half-read is ever returned.
"""
from __future__ import annotations

import gzip
import io
import os
import threading
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"
IMAGE_SIZE = (28, 28)
MAX_IMAGES = 1_000_000  # images (or labels) one IDX file may declare: EMNIST has 814,255


class DataError(ValueError):
    """A data file or dataset is missing or malformed (message: one line, names the file)."""


def read_raw(path) -> bytes:
    """The bytes of ``path`` as stored (DataError when missing or unreadable)."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def decompress(path, data: bytes) -> bytes:
    """``data`` read from ``path``, un-gzipped when named .gz or when it starts like gzip."""
    is_gzip = data[:2] == GZIP_MAGIC
    if Path(path).name.endswith(".gz") and not is_gzip:
        raise DataError(f"{path}: not a gzip file although its name ends in .gz")
    if not is_gzip:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: damaged gzip data ({e})") from None


def read_bytes(path) -> bytes:
    """The decompressed contents of ``path``."""
    return decompress(path, read_raw(path))


def _parse(path, data: bytes, magic: int, ndim: int, what: str) -> tuple[tuple[int, ...], bytes]:
    header = 4 + 4 * ndim
    found = int.from_bytes(data[:4], "big")
    if len(data) >= 4 and found != magic:
        raise DataError(f"{path}: wrong magic number 0x{found:08x} "
                        f"(an IDX {what} file starts with 0x{magic:08x})")
    if len(data) < header:
        raise DataError(f"{path}: truncated: {len(data)} bytes, shorter than the "
                        f"{header}-byte IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    need = int(np.prod(shape, dtype=np.int64))
    body = len(data) - header
    if body < need:
        raise DataError(f"{path}: truncated: {shape[0]} {what} need {need} bytes of data, "
                        f"the file has {body}")
    if body > need:
        raise DataError(f"{path}: trailing garbage: {body - need} extra bytes after "
                        f"the {shape[0]} {what}")
    return shape, data[header:]


def read_idx_images(path, data: bytes | None = None) -> np.ndarray:
    """uint8 (N, 28, 28) images from an IDX image file (or from its decompressed ``data``)."""
    data = read_bytes(path) if data is None else data
    shape, body = _parse(path, data, IMAGES_MAGIC, 3, "images")
    if shape[1:] != IMAGE_SIZE:
        raise DataError(f"{path}: images are {shape[1]}x{shape[2]} pixels, expected 28x28")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def read_idx_labels(path, data: bytes | None = None) -> np.ndarray:
    """uint8 (N,) labels from an IDX label file (or its decompressed ``data``), all in 0-9."""
    data = read_bytes(path) if data is None else data
    _, body = _parse(path, data, LABELS_MAGIC, 1, "labels")
    labels = np.frombuffer(body, dtype=np.uint8)
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: label {labels[i]} at index {i} is outside 0-9 "
                        f"({bad.size} such labels)")
    return labels


def check_pair(images_path, images: np.ndarray, labels_path, labels: np.ndarray) -> None:
    if len(images) != len(labels):
        raise DataError(f"{images_path}: {len(images)} images but {labels_path} has "
                        f"{len(labels)} labels")


def read_idx_pair(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) that must have the same count."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
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
