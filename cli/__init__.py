"""Headless commands (train, eval, predict, gradcheck, bench, screenshot) and the app launcher.

``run(argv) -> exit status``: 0 success, 2 bad usage, 1 any other failure (one line on stderr,
the traceback only with --debug), 130 interrupted. No command launches the app.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from convscope import __version__
from convscope.cli.common import CommandError, UsageError, add_common, one_line

PROG = "convscope"
COMMANDS = ("train", "evaluate", "predict", "gradcheck", "bench", "screenshot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Watch a CNN written in NumPy learn to read digits. "
        "Without a command, the app starts.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"convscope.cli.{name}")
        before = set(subparsers.choices)
        module.add_parser(subparsers)
        for added in set(subparsers.choices) - before:
            sub = subparsers.choices[added]
            if sub.get_default("run") is None:
                sub.set_defaults(run=module.run)
            sub.set_defaults(command=added)
            add_common(sub)
    return parser


def _error(prog: str, message: str) -> None:
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr, flush=True)


def run(argv) -> int:
    argv = list(argv)
    if not argv:
        return _guarded(PROG, False, _launch_app)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or bad usage (2), already printed by argparse
        return e.code if isinstance(e.code, int) else 2
    if getattr(args, "run", None) is None:
        parser.print_usage(sys.stderr)
        _error(PROG, "choose a command")
        return 2
    return _guarded(f"{PROG} {args.command}", getattr(args, "debug", False), args.run, args)


def _launch_app() -> int:
    from convscope.visualizer.app import run_app
    return run_app()


def _guarded(prog: str, debug: bool, func, *args) -> int:
    """func(*args) as an exit status: exceptions become one line on stderr."""
    try:
        return int(func(*args) or 0)
    except UsageError as e:
        _error(prog, str(e))
        return 2
    except KeyboardInterrupt:
        _error(prog, "interrupted")
        return 130
    except Exception as e:
        if debug:
            traceback.print_exc()
        known = isinstance(e, (CommandError, ValueError, OSError, ImportError))
        _error(prog, str(e) if known else f"{type(e).__name__}: {e} (--debug shows where)")
        return 1
