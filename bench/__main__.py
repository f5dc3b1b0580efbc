"""Every benchmark in turn, each rewriting its section of bench/README.md.

    python -m convscope.bench [--quick] [--only engine gui draw memory]

Each runs in a fresh interpreter without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (OpenBLAS then
picks its kernel itself) and offscreen. bench.memory runs when it is there; when it cannot
write its own section, its printed figures go into the "memory bench" section.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from convscope.bench import ROOT, measuring_env
from convscope.bench.readme import README, require_checkout, write_section

NAMES = ("engine", "gui", "draw", "memory")


def options(name: str) -> set[str]:
    """The flags ``python -m convscope.bench.NAME --help`` lists (empty without such a module)."""
    if not (ROOT / "bench" / f"{name}.py").exists():
        return set()
    out = subprocess.run([sys.executable, "-m", f"convscope.bench.{name}", "--help"],
                         env=measuring_env(),
                         cwd=ROOT, capture_output=True, text=True).stdout
    return {word.strip("[],") for word in out.split() if word.startswith(("--", "[--"))}


def output_section(name: str, command: str, text: str, path=README) -> None:
    """Section ``NAME bench`` holding what ``command`` printed, as a block."""
    write_section(f"{name} bench", [f"## {name.capitalize()} (`{command}`)", "",
                                    "Printed by the command:", "", "```",
                                    *text.strip("\n").splitlines(), "```"], path)


def run_one(name: str, quick: bool) -> int:
    flags = options(name)
    if not flags:
        print(f"bench: {name}: no bench/{name}.py here, skipped", file=sys.stderr)
        return 0
    writes = "--write-readme" in flags
    argv = [*(["--quick"] if quick and "--quick" in flags else []),
            *(["--write-readme"] if writes else [])]
    cmd = [sys.executable, "-m", f"convscope.bench.{name}", *argv]
    print(f"== python -m convscope.bench.{name} {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=measuring_env(QT_QPA_PLATFORM="offscreen"), cwd=ROOT,
                          stdout=None if writes else subprocess.PIPE, text=True)
    if not writes:
        print(done.stdout, end="", flush=True)
        if done.returncode == 0:
            command = f"python -m convscope.bench.{name} {' '.join(argv)}".strip()
            output_section(name, command, done.stdout)
    print(f"== {name}: {'done' if done.returncode == 0 else f'failed ({done.returncode})'} in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return done.returncode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m convscope.bench",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short version of each (about 1 min)")
    p.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES),
                   help="run only these")
    args = p.parse_args(argv)
    require_checkout()  # every run rewrites bench/README.md
    failed = [name for name in NAMES if name in args.only and run_one(name, args.quick) != 0]
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"bench: {README} rewritten", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
