"""An ``.npz`` archive read within bounds stated before anything is decompressed.

``np.load`` decompresses whatever a member's header claims; a model file is read here instead:
1. the file must be a regular file; the zip's end record is read first and its central
   directory must be small (at most MAX_MEMBERS members, MAX_DIRECTORY_BYTES bytes);
2. every member must be a ``.npy`` array, stored or deflated, named once;
3. ``read(name, max_bytes)`` checks the member's size in the zip header and the shape and
   dtype in its ``.npy`` header against ``max_bytes`` before reading, then decompresses
   exactly the declared bytes (never pickled objects: only bool, int, uint and float).
Every problem is ``error`` (the caller's exception class) with one line naming the file.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib

import numpy as np

from convscope.engine.files.guard import open_regular

MAX_MEMBERS = 512
MAX_DIRECTORY_BYTES = 256 * 1024
NPY_HEADER_BYTES = 4096  # magic, length and the header dict of one .npy member
_END = b"PK\x05\x06"  # end of central directory record (22 bytes + comment)
_END64_LOCATOR = b"PK\x06\x07"
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error,
                struct.error, NotImplementedError, RuntimeError)


class Archive:
    """The members of ``path`` (``names``: member names without ``.npy``), read one by one."""

    def __init__(self, path, error, what: str = "model file"):
        self.path, self.error, self.what = os.fspath(path), error, what
        self.file = open_regular(self.path, error, what)
        try:
            self._check_directory()
            self.zip = zipfile.ZipFile(self.file)
            self.infos = self._members()
        except error:
            self.file.close()
            raise
        except _READ_ERRORS as e:
            self.file.close()
            raise error(f"{self.path} is not a readable {what} (not an .npz archive, or "
                        f"truncated or damaged: {_short(e)})") from None
        except BaseException:
            self.file.close()
            raise
        self.names = list(self.infos)

    def close(self) -> None:
        self.zip.close()
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fail(self, problem: str):
        raise self.error(f"{self.path}: {problem}")

    def _check_directory(self) -> None:
        """The end record's member count and directory size, before zipfile reads them."""
        f = self.file
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        magic = f.read(6)
        if magic.startswith(b"\x93NUMPY"):
            raise self.error(f"{self.path} is not a {self.what} (a single .npy array, not an "
                             f".npz archive)")
        if not magic.startswith(b"PK"):
            raise self.error(f"{self.path} is not a {self.what} (not an .npz archive)")
        tail_start = max(0, size - (22 + 65535))
        f.seek(tail_start)
        tail = f.read()
        at = len(tail) - 22 if tail[-22:-18] == _END else tail.rfind(_END)
        if at < 0 or len(tail) - at < 22:
            raise zipfile.BadZipFile("no end of central directory")
        count, directory = struct.unpack("<HI", tail[at + 10:at + 16])
        if at >= 20 and tail[at - 20:at - 16] == _END64_LOCATOR:
            raise zipfile.BadZipFile("a zip64 directory, which model files never need")
        if count > MAX_MEMBERS or directory > MAX_DIRECTORY_BYTES:
            self._fail(f"{count:,} members in a {directory:,}-byte directory is more than a "
                       f"{self.what} has (at most {MAX_MEMBERS} members)")
        f.seek(0)

    def _members(self) -> dict[str, zipfile.ZipInfo]:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in self.zip.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                self._fail(f"member {name!r} is not a NumPy array")
            if name[:-4] in infos:
                self._fail(f"member {name[:-4]!r} appears twice")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self._fail(f"member {name[:-4]!r} uses an unsupported compression")
            if info.flag_bits & 0x1:
                self._fail(f"member {name[:-4]!r} is encrypted")
            infos[name[:-4]] = info
        return infos

    def declared_bytes(self, name: str) -> int:
        """The uncompressed size the zip header declares for ``name``."""
        return self.infos[name].file_size

    def read(self, name: str, max_bytes: int) -> np.ndarray:
        """Member ``name`` as an array of at most ``max_bytes`` bytes of data."""
        info = self.infos[name]
        if info.file_size > max_bytes + NPY_HEADER_BYTES:
            self._fail(f"member {name!r} declares {info.file_size:,} bytes, more than the "
                       f"{max_bytes:,} it may hold")
        try:
            with self.zip.open(info) as f:
                array = self._read_npy(name, f, info.file_size, max_bytes)
        except self.error:
            raise
        except (*_READ_ERRORS, MemoryError) as e:
            self._fail(f"member {name!r} is truncated or damaged ({_short(e)})")
        return array

    def _read_npy(self, name: str, f, declared: int, max_bytes: int) -> np.ndarray:
        fmt = np.lib.format
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            self._fail(f"member {name!r} has an unsupported .npy version {version}")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else \
            fmt.read_array_header_2_0
        try:  # NumPy parses the header as a Python literal: any error means a damaged one
            shape, fortran, dtype = read_header(f, NPY_HEADER_BYTES)
        except Exception as e:  # noqa: BLE001 (SyntaxError, tokenize.TokenError, ...)
            self._fail(f"member {name!r} has a damaged .npy header ({_short(e)})")
        if any(d < 0 for d in shape):
            self._fail(f"member {name!r} declares a negative shape {shape}")
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.names or dtype.subdtype:
            self._fail(f"member {name!r} holds {dtype} values, not plain numbers (pickled "
                       f"objects are never loaded)")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes > max_bytes:
            self._fail(f"member {name!r} declares shape {shape} of {dtype} ({nbytes:,} "
                       f"bytes), more than the {max_bytes:,} it may hold")
        if declared != f.tell() + nbytes:
            self._fail(f"member {name!r}: its size in the archive ({declared:,} bytes) "
                       f"does not match its shape {shape} of {dtype}")
        array = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
        into = memoryview(array.reshape(-1).view(np.uint8))  # filled a chunk at a time: the
        for at in range(0, nbytes, READ_CHUNK):  # array and one chunk, never a second copy
            chunk = f.read(min(READ_CHUNK, nbytes - at))
            if len(chunk) != min(READ_CHUNK, nbytes - at):
                self._fail(f"member {name!r} is truncated")
            into[at:at + len(chunk)] = chunk
        if f.read(1):
            self._fail(f"member {name!r} is truncated")
        return array.T.copy() if fortran else array


READ_CHUNK = 1 << 20  # bytes read from a member at a time


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."
