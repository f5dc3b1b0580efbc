"""Opening files that may be hostile: only regular files, of a bounded size; text made safe.

A FIFO, a device, a socket or a folder given where a file is expected is refused with one
line, without blocking (the file is opened non-blocking and checked with ``fstat``, so a FIFO
swapped in after a check cannot hang the reader either). A symlink is followed.
``clean_text`` removes control characters and terminal escape sequences from text that came
from a file before it reaches a terminal or a label; printable Unicode stays.
"""
from __future__ import annotations

import os
import re
import stat
import unicodedata

# ESC [ ... final byte (CSI), ESC ] ... BEL or ESC \ (OSC), ESC and one more character
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]?|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?"
                      r"|\x9b[0-?]*[ -/]*[@-~]?|\x9d[^\x07\x1b\x9c]*(?:\x07|\x9c)?")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path, error, what: str = "file", max_bytes: int | None = None):
    """``path`` opened for binary reading when it is a regular file of at most ``max_bytes``;
    otherwise ``error`` (an exception class) with one line naming the file."""
    path = os.fspath(path)
    a_what = ("an " if what[:1] in "aeiou" else "a ") + what
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path} is a folder, not {a_what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is {_kind(info.st_mode)}, not {a_what} (only regular files "
                        f"are read)")
        if max_bytes is not None and info.st_size > max_bytes:
            raise error(f"{path}: {info.st_size:,} bytes is more than {a_what} may have "
                        f"({max_bytes:,})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def special_file(path) -> str | None:
    """"a FIFO", "a device", ... when ``path`` (followed if a symlink) exists and is not a
    regular file; None when it is one or does not exist."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else _kind(mode)


def clean_text(text, max_chars: int = 200) -> str:
    """``text`` without escape sequences or control characters (line breaks become spaces),
    at most ``max_chars`` characters."""
    text = _ESCAPES.sub("", str(text))
    text = "".join(" " if ch in "\t\n\r\v\f" else ch for ch in text
                   if ch in "\t\n\r\v\f" or not unicodedata.category(ch).startswith("C"))
    return text if len(text) <= max_chars else text[:max_chars - 3] + "..."
