"""Atomic file writes: a temporary file in the same folder, fsync, then one rename.

A crash or a kill at any moment leaves either the old file or the new one under the real
name, never half a file; a failed write removes its temporary file.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[str]:
    """Yields a temporary path beside ``path`` to write (hidden, named after ``path``, ending
    in ``suffix``: pass the real extension for writers that choose a format by it); on
    success it gets ordinary permissions (0666 less the umask), is synced and renamed over
    ``path``."""
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + name + ".", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, not mkstemp's owner-only one
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort: not every system allows it)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
