"""`gradcheck`: compare the analytic gradients with centred differences in float64."""
from __future__ import annotations

import argparse

from convscope.cli.common import CommandError, UsageError, emit, int_range


def add_parser(subparsers) -> argparse.ArgumentParser:
    from convscope.engine.net.model import PRESETS
    p = subparsers.add_parser(
        "gradcheck", help="check the backward pass against numerical gradients",
        description="Check every gradient of a network against centred differences (float64, "
        "a few small inputs). Exits 1 when a relative error is too large.")
    p.add_argument("--preset", choices=list(PRESETS), default="seed",
                   help="network (default seed)")
    p.add_argument("--filters", type=int_range(1, 64), metavar="N",
                   help="filters of the first conv layer, 1..64 (default: the preset's)")
    p.add_argument("--pool", choices=("max", "avg", "min"), default="max",
                   help="pooling (default max)")
    p.add_argument("--relu", action=argparse.BooleanOptionalAction, default=None,
                   help="ReLU after each conv layer (default: the preset's)")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0, metavar="S",
                   help="seed for the weights, jitter and sampled entries (default 0)")
    p.add_argument("--samples", type=int_range(1, 100), default=2, metavar="N",
                   help="digits of the embedded test set to check on (default 2)")
    p.add_argument("--entries", type=int_range(1), default=100, metavar="N",
                   help="entries checked per parameter, sampled (default 100)")
    return p


def run(args) -> int:
    from convscope.engine.data.datasets import load_dataset
    from convscope.engine.net.model import build_config
    from convscope.engine.tools.gradcheck import gradcheck

    try:
        config = build_config(args.preset, args.filters, args.pool, args.relu)
    except ValueError as e:
        raise UsageError(str(e)) from None
    digits = load_dataset("mini", progress=False)
    x, labels = digits.x_test[:args.samples], digits.y_test[:args.samples]
    result = gradcheck(config, x, labels, seed=args.seed, max_entries=args.entries)
    per_param = {k: v["max_rel_error"] for k, v in result["params"].items()}
    per_layer = dict(result["layers"])
    worst = float(result["max_rel_error"])
    passed = bool(result["passed"])
    payload = {"preset": args.preset, "filters": config["filters"], "pool": args.pool,
               "relu": config["relu"], "seed": args.seed, "max_relative_error": worst,
               "per_layer": per_layer, "per_param": per_param,
               "threshold": result["threshold"], "samples": len(x),
               "kinks": result["kinks"], "passed": passed}
    lines = [f"{k:<12} {v:.2e}" for k, v in per_param.items()]
    lines.append(f"max relative error {worst:.2e}: {'passed' if passed else 'FAILED'}")
    emit(args, payload, lines)
    if not passed:
        raise CommandError(f"gradient check failed: max relative error {worst:.2e}")
    return 0
