"""How an explanation reads: the ``Explanation`` record, small matrices side by side, long
sums cut to their largest terms, numbers as a student reads them, lines wrapped between terms."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import numpy as np

SHOWN_TERMS = 10  # long sums list their largest terms only


@dataclass(frozen=True)
class Explanation:
    key: str
    index: tuple
    title: str  # what the cell is, in the notes' names
    formula: str  # the rule, symbolically
    lines: tuple  # the arithmetic with the actual numbers: a str per line, or a Grids
    value: float  # recomputed here (float64) from the inputs of the rule
    stored: float  # the cell's value in the trace
    terms: tuple = ()  # the numbers summed or compared (all of them, float64)
    notes: tuple = ()  # winners, ties, what was left out
    sources: tuple = field(default=())  # ((trace key, index), ...) cells it is computed from

    def text(self, width: int = 64) -> str:
        """Plain text at most ``width`` characters a line where it can be: long lines broken
        between terms (``wrap``), small matrices side by side or one above the other."""
        out = []
        for line in [self.title, self.formula, ""] + list(self.lines):
            out += line.render(width) if isinstance(line, Grids) else wrap(line, width)
        for note in self.notes:
            out += [""] + textwrap.wrap(note, width, break_long_words=False,
                                        break_on_hyphens=False)
        return "\n".join(out)


@dataclass(frozen=True)
class Grids:
    """Small matrices with captions (a conv region and its filter), a line of ``lines``."""
    captions: tuple  # one str per matrix
    matrices: tuple  # one tuple of rows per matrix, each row a tuple of floats

    def render(self, width: int = 64) -> list:
        """Side by side when they fit in ``width``, else one above the other (with 2
        significant digits if 3 are too wide); a row's numbers always stay on one line."""
        blocks = [_block(c, m) for c, m in zip(self.captions, self.matrices, strict=True)]
        widths = [max(len(line) for line in b) for b in blocks]
        if sum(widths) + 3 * (len(blocks) - 1) <= width and len({len(b) for b in blocks}) == 1:
            return ["   ".join(line.ljust(w) for line, w in zip(rows, widths, strict=True))
                    .rstrip() for rows in zip(*blocks, strict=True)]
        if max(widths) > width:
            blocks = [_block(c, m, 2) for c, m in zip(self.captions, self.matrices, strict=True)]
        return [line for b in blocks for line in b]


def _block(caption: str, rows, digits: int = 3) -> list:
    """A caption and a matrix, its numbers right-aligned in columns."""
    texts = [[f"{v:.{digits}g}" for v in row] for row in rows]
    n = max(len(t) for row in texts for t in row)
    return [caption] + ["  " + " ".join(t.rjust(n) for t in row) for row in texts]


BREAKS = (" = ", " + ", " - ", " * ", " ")  # where a long line may break, best first


def wrap(line: str, width: int) -> list:
    """``line`` as lines of at most ``width`` characters, continued 4 spaces further in:
    broken before an " = " if that is enough, else also between the terms of a sum, then
    between factors, last between words; never inside a number or a name."""
    lead = len(line) - len(line.lstrip(" "))
    return _wrap(line, width, " " * (lead + 4), 0)


def _wrap(line: str, width: int, indent: str, level: int) -> list:
    if len(line) <= width or level == len(BREAKS):
        return [line]
    sep = BREAKS[level]
    lead = len(line) - len(line.lstrip(" "))
    head, *rest = line[lead:].split(sep)
    out = [line[:lead] + head]
    for piece in rest:
        if len(out[-1]) + len(sep) + len(piece) <= width:
            out[-1] += sep + piece
        else:
            out.append(indent + sep.lstrip() + piece)
    return [part for p in out for part in _wrap(p, width, indent, level + 1)]


def fmt(v: float) -> str:
    """A number as a student reads it: 4 significant digits, fixed width."""
    v = float(v)
    if v == 0:
        return "0"
    return f"{v:.4g}" if 1e-4 <= abs(v) < 1e5 else f"{v:.3e}"


def matrix_rows(m: np.ndarray) -> tuple:
    """A (k, k) array as a tuple of rows of floats (plain, comparable data)."""
    return tuple(tuple(float(v) for v in row) for row in m)


def _largest(terms, count=SHOWN_TERMS):
    """Indices of the ``count`` largest |terms|, in order of size."""
    order = np.argsort(-np.abs(np.asarray(terms)), kind="stable")
    return [int(i) for i in order[:count]]


def sum_lines(values, labels, what: str) -> list:
    values = np.asarray(values, dtype=np.float64)
    nonzero = int(np.count_nonzero(values))
    lines = []
    if len(values) <= 12:
        lines += [f"  {lab} = {fmt(v)}" for lab, v in zip(labels, values, strict=True)]
    elif nonzero == 0:
        lines.append(f"all {len(values)} {what} are 0")
    else:
        lines.append(f"{len(values)} {what}, {nonzero} non-zero; the {min(SHOWN_TERMS, nonzero)} "
                     "largest:")
        lines += [f"  {labels[i]} = {fmt(values[i])}" for i in _largest(values)
                  if values[i] != 0]
        pos, neg = values[values > 0].sum(), values[values < 0].sum()
        lines.append(f"  positive terms add up to {fmt(pos)}, negative to {fmt(neg)}")
    return lines
