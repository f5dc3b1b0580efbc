"""bench/README.md sections: each benchmark rewrites the text between its two markers,
``<!-- NAME: begin -->`` and ``<!-- NAME: end -->``, and leaves everything else as it is."""
from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).with_name("README.md")


def require_checkout() -> None:
    """``--write-readme`` rewrites bench/README.md of a checkout, never an installed copy:
    exit 1 with one line when this copy of ConvScope is not a checkout."""
    if not (README.parents[1] / "pyproject.toml").is_file():
        print("convscope bench: error: --write-readme rewrites bench/README.md of a ConvScope "
              "checkout; this is an installed copy (leave the option out)", file=sys.stderr)
        raise SystemExit(1)


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of section ``name`` (e.g. "engine bench")."""
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def replace_section(text: str, name: str, lines: list[str]) -> str:
    """``text`` with section ``name`` holding ``lines`` (markers included), in place when the
    markers are there, appended at the end otherwise."""
    begin, end = markers(name)
    section = "\n".join([begin, *lines, end])
    if begin in text and end in text[text.index(begin):]:
        start = text.index(begin)
        stop = text.index(end, start) + len(end)
        return text[:start] + section + text[stop:]
    return text.rstrip("\n") + "\n\n" + section + "\n"


def write_section(name: str, lines: list[str], path: Path = README) -> None:
    """Rewrite section ``name`` of the README at ``path`` (created when missing)."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_section(text, name, lines))
