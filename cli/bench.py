"""``bench``: the engine speed table (engine, loop reference, PyTorch when installed).

The measurement runs in a fresh interpreter (bench/engine.py) so that it starts from a clean
process and without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides.
"""
from __future__ import annotations


def add_parser(subparsers):
    from convscope.bench.engine import add_arguments
    p = subparsers.add_parser(
        "bench", help="engine training and inference speed, side by side",
        description="Training samples/s of the design notes' network at batch 1, 8, 32, 128, "
        "single-image latency and 10,000-image inference time, for the engine, the loop "
        "reference and PyTorch (2 threads, when installed). Medians of interleaved rounds.")
    add_arguments(p)
    return p


def run(args) -> int:
    from convscope.bench.engine import child_argv, measure_in_child
    return measure_in_child(args, child_argv(args))
