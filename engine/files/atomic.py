"""Atomic file writes: a temporary file in the same folder, fsync, then one rename.

A crash or a kill at any moment leaves either the old file or the new one under the real
name, never half a file; a failed write removes its temporary file, and one left by a killed
process (``.<name>.saving-XXXX<suffix>``, older than STALE_SECONDS) is removed by the next
save to the same name. Only regular files are replaced: a FIFO, a device or a folder under
the name is refused with one line. A symlink is written through: the file it points to is
replaced and the link stays a link. ``check_target`` finds an unwritable target before any
work is done (``save_model(..., trial=True)`` goes further and writes a whole file aside).
"""
from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from convscope.engine.files.guard import special_file

STALE_SECONDS = 600.0  # a temporary file this old belongs to no save in progress
MARK = ".saving-"
_WORDS = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
          errno.EROFS: "the file system is read-only", errno.ENOSPC: "the disk is full",
          errno.EDQUOT: "the disk quota is used up", errno.ENOENT: "the folder does not exist",
          errno.ENOTDIR: "a part of the path is not a folder",
          errno.EISDIR: "it is a folder", errno.ENAMETOOLONG: "the name is too long"}


def why(error: OSError) -> str:
    """The reason of an OSError in words."""
    return _WORDS.get(error.errno, error.strerror or str(error))


def target(path) -> str:
    """The file a save to ``path`` replaces (a symlink's target), after refusing an empty name
    and anything but a regular file or nothing (OSError, one line)."""
    path = os.fspath(path)
    if not path:
        raise OSError("no file name given")
    real = os.path.realpath(path)
    kind = special_file(real)
    if kind is not None:
        raise OSError(f"cannot save to {path}: it is {kind}, not a regular file")
    return real


def check_target(path) -> None:
    """OSError (one line, in words) unless a save to ``path`` could create its temporary
    file beside the target: the folder exists and is writable."""
    real = target(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(real),
                                   prefix="." + os.path.basename(real) + MARK)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OSError(f"cannot save to {path}: {why(e)}") from None


def remove_stale(real: str, now: float | None = None) -> None:
    """Temporary files of saves to ``real`` killed long ago."""
    folder, name = os.path.split(real)
    now = time.time() if now is None else now
    try:
        entries = os.scandir(folder)
    except OSError:
        return
    with entries:
        for entry in entries:
            if entry.name.startswith("." + name + MARK):
                try:
                    if entry.is_file(follow_symlinks=False) and \
                            now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                        os.unlink(entry.path)
                except OSError:
                    pass


@contextmanager
def atomic_path(path, suffix: str = ".tmp", keep: bool = True) -> Iterator[str]:
    """Yields a temporary path beside ``path`` to write (hidden, named after ``path``, ending
    in ``suffix``: pass the real extension for writers that choose a format by it); on
    success it gets ordinary permissions (0666 less the umask), is synced and renamed over
    ``path`` (with ``keep=False`` it is removed instead: a trial of the whole save)."""
    real = target(path)
    folder, name = os.path.split(real)
    remove_stale(real)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + name + MARK, suffix=suffix)
    except OSError as e:
        raise OSError(f"cannot save to {os.fspath(path)}: {why(e)}") from None
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, not mkstemp's owner-only one
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if not keep:
            os.unlink(tmp)
            return
        os.replace(tmp, real)
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
