"""`screenshot`: the real main window, offscreen, after N training steps, saved as PNG."""
from __future__ import annotations

import argparse
import os
import sys

from convscope.cli.common import (
    CommandError,
    UsageError,
    data_spec,
    emit,
    int_range,
    size_spec,
)


def scale_spec(text: str) -> float:
    """A device pixel ratio from 1 to 4."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 2, got {text!r}") from None
    if not 1.0 <= value <= 4.0:
        raise argparse.ArgumentTypeError(f"the scale must be 1..4, got {text}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "screenshot", help="save a picture of the app after some training",
        description="Start the main window (offscreen when there is no display), train N steps "
        "on a dataset (the embedded digits by default) and save the whole window as a PNG.")
    p.add_argument("--out", required=True, metavar="PATH", help="PNG file to write")
    p.add_argument("--steps", type=int_range(0, 1_000_000), default=300, metavar="N",
                   help="training steps before the picture (default 300)")
    p.add_argument("--probe", type=int_range(0), default=0, metavar="INDEX",
                   help="index of the test digit traced through the network (default 0)")
    p.add_argument("--size", type=size_spec, default=None, metavar="WxH",
                   help="window size in device pixels, e.g. 1280x720 or 2560x1440 "
                   "(default: 1600x1000)")
    p.add_argument("--scale", type=scale_spec, default=1.0, metavar="RATIO",
                   help="device pixel ratio, like QT_SCALE_FACTOR: --size 2560x1440 --scale 2 "
                   "lays the window out at 1280x720 and saves it at 2560x1440 (default 1)")
    p.add_argument("--tab", default=None, metavar="NAME",
                   help="central tab to show, e.g. Inspector or Evaluation (default: the first)")
    p.add_argument("--theme", choices=("system", "light", "dark"), default="system",
                   help="colour theme of the picture (default: system)")
    p.add_argument("--data", type=data_spec, default="mini", metavar="{mini,mnist,fashion,DIR}",
                   help="dataset to train on (default mini); --probe indexes its test split")
    p.add_argument("--preset", default="seed", help="network (default seed)")
    return p


def headless() -> bool:
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or sys.platform in ("win32", "darwin"))


def check_probe(index: int, data: str = "mini") -> None:
    """The probe must be an image of the test split the app trains on."""
    from convscope.engine.data.datasets import load_dataset
    n = len(load_dataset(data, progress=False).x_test)
    split = "the embedded test split" if data == "mini" else f"the test split of {data}"
    if index >= n:
        raise UsageError(f"--probe {index} is out of range: {split} has {n:,} "
                         f"{'digits' if data == 'mini' else 'images'}, so INDEX goes from 0 "
                         f"to {n - 1:,}")


def _run_options(args) -> dict:
    """The dataset and network to train, when they are not the default ones."""
    given = {"data": args.data, "preset": args.preset}
    return {} if given == {"data": "mini", "preset": "seed"} else given


def run(args) -> int:
    from convscope.engine.net.model import PRESETS
    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r} (choose from {', '.join(PRESETS)})")
    check_probe(args.probe, args.data)
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise CommandError(f"cannot write {args.out}: folder {folder} does not exist")
    if headless():
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from convscope.visualizer.app import take_screenshot
    except ImportError as e:
        raise CommandError(f"the screenshot command needs visualizer.app.take_screenshot "
                           f"({e})") from None
    status = int(take_screenshot(args.out, args.steps, args.probe, args.size,
                                 theme=args.theme, tab=args.tab, scale=args.scale,
                                 **_run_options(args)) or 0)
    if status != 0:
        raise CommandError(f"the screenshot failed (status {status})")
    if not os.path.isfile(args.out):
        raise CommandError(f"the screenshot was not written to {args.out}")
    from PIL import Image
    with Image.open(args.out) as im:
        width, height = im.size
    emit(args, {"out": args.out, "steps": args.steps, "probe": args.probe,
                "width": width, "height": height, "scale": args.scale},
         [f"saved {args.out} ({width}x{height}) after {args.steps} steps"])
    return 0
