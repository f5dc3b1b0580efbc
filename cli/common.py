"""What every command shares: errors, option checks, JSON output, progress bars."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

DATASET_NAMES = ("mini", "mnist", "fashion")


class UsageError(Exception):
    """Bad usage found after parsing (e.g. a batch larger than the training set): exit 2."""


class CommandError(Exception):
    """A failure to report on one line of stderr: exit 1."""


# ---- option types (argparse turns their ArgumentTypeError into exit 2 with the reason) ----
def int_range(lo: int, hi: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            span = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def float_range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = (math.isfinite(value) and (value > lo if lo_open else value >= lo)
              and (value < hi if hi_open else value <= hi))
        if not ok:
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            raise argparse.ArgumentTypeError(f"must be in {left}{lo:g}, {hi:g}{right}, got {text}")
        return value
    parse.__name__ = "number"
    return parse


def data_spec(text: str) -> str:
    """mini | mnist | fashion | an existing directory (IDX files, or class folders)."""
    if text in DATASET_NAMES or os.path.isdir(text):
        return text
    raise argparse.ArgumentTypeError(
        f"expected {', '.join(DATASET_NAMES)} or an existing directory, got {text!r}")


def add_convert(parser: argparse.ArgumentParser) -> None:
    """--convert, for a folder of class folders of images."""
    parser.add_argument("--convert", choices=("mnist", "resize"), default=None,
                        help="how pictures of a folder of class folders become 28x28: mnist "
                        "(crop, scale to 20 px, centre the ink, as MNIST was made) or resize "
                        "(the whole picture); default: the model's, else mnist")


def size_spec(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height), each 200..8000 pixels."""
    parts = text.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x800, "
                                         f"got {text!r}") from None
    if not (200 <= w <= 8000 and 200 <= h <= 8000):
        raise argparse.ArgumentTypeError(f"width and height must be 200..8000, got {text}")
    return w, h


def add_common(parser: argparse.ArgumentParser) -> None:
    """--json and --debug, on every command."""
    for flag, text in (("--json", "print exactly one JSON object on the last line of stdout"),
                       ("--debug", "show the full traceback on failure")):
        try:
            parser.add_argument(flag, action="store_true", help=text)
        except argparse.ArgumentError:
            pass  # the command defines it already


# ---- output --------------------------------------------------------------------------
def plain(value):
    """JSON-able copy: numpy scalars/arrays to Python, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit(args, payload: dict, lines=()) -> None:
    """Human-readable ``lines`` on stdout, or with --json only the payload as one line."""
    if getattr(args, "json", False):
        print(json.dumps(plain(payload), allow_nan=False), flush=True)
    else:
        for line in lines:
            print(one_line(line) if line else "")  # a blank line stays blank
        sys.stdout.flush()


def info(args, line: str) -> None:
    """An intermediate message: stdout normally; with --json only to an interactive stderr."""
    from tqdm import tqdm
    line = one_line(line)
    if not getattr(args, "json", False):
        tqdm.write(line, file=sys.stdout)  # clears and redraws a progress bar around it
    elif interactive():
        tqdm.write(line, file=sys.stderr)


def interactive() -> bool:
    """Progress bars only when stderr is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(total: int, desc: str, unit: str = "img"):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False,
                file=sys.stderr, disable=not interactive(), dynamic_ncols=True)


def one_line(text: str) -> str:
    """``text`` on one line, without control characters or terminal escapes (an error may
    quote a file's contents)."""
    from convscope.engine.files.guard import clean_text
    return " ".join(clean_text(text, 2000).split()) or "failed"
