"""Train the `best` preset's recipe and ship its weights as assets/best.npz.

    python scripts/train_best.py --official /path/to/mnist --seeds 0 1 2

Each seed runs exactly `convscope train --preset best --seed S` (the 9,000 embedded digits,
augmentation and evaluation included) in a process of its own, timed, with its peak memory;
then `convscope eval` measures it on the official 10,000-digit MNIST test set when --official
names a folder holding t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz). The first
seed's weights are written to --out (default assets/best.npz) without the training state
(float32 weights and a label only: small), labelled with the preset, its recipe, the seed,
what it was trained on and the accuracies measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convscope(*argv: str) -> dict:
    """Run a convscope command in a new process; its --json payload."""
    done = subprocess.run([sys.executable, "-m", "convscope", *argv, "--json"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"convscope {' '.join(argv)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout.splitlines()[-1])


def train_one(seed: int, path: str, official: str | None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = convscope("train", "--preset", "best", "--seed", str(seed), "--save", path)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = {"seed": seed, "wall_seconds": round(wall, 1),
           "cpu_seconds": round(after.ru_utime + after.ru_stime
                                - before.ru_utime - before.ru_stime, 1),
           "peak_rss_mb": round(after.ru_maxrss / 1024, 1),  # the largest child so far
           "mini_test_accuracy": result["test_accuracy"],
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    if official:
        row["official_test_accuracy"] = convscope("eval", "--model", path,
                                                  "--data", official)["test_accuracy"]
    print(json.dumps(row), flush=True)
    return row


def ship(path: str, out: str, rows: list) -> None:
    """The first seed's model, without its training state, labelled."""
    from convscope.engine.files.checkpoint import load_model, save_model
    from convscope.engine.recipes import recipe
    model, _, extra = load_model(path)
    label = {
        "preset": "best", "recipe": {k: list(v) if isinstance(v, tuple) else v
                                     for k, v in recipe("best").items()},
        "seed": rows[0]["seed"], "dataset": "mini",
        "trained_on": "the 9,000 embedded digits (the first 9,000 MNIST training digits)",
        "test_accuracy": extra.get("test_accuracy"), "test_size": extra.get("test_size"),
        "class_names": extra.get("class_names"),
        "official_test_accuracy": rows[0].get("official_test_accuracy"),
        "command": f"convscope train --preset best --seed {rows[0]['seed']}",
    }
    save_model(out, model, None, label)
    print(f"wrote {out} ({os.path.getsize(out) / 1024:.0f} KB)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--official", help="folder with the official MNIST t10k files")
    p.add_argument("--out", default=os.path.join(ROOT, "assets", "best.npz"))
    p.add_argument("--no-ship", action="store_true", help="measure only")
    args = p.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [train_one(s, os.path.join(tmp, f"best-{s}.npz"), args.official)
                for s in args.seeds]
        if not args.no_ship:
            ship(os.path.join(tmp, f"best-{args.seeds[0]}.npz"), args.out, rows)
    accs = [r["official_test_accuracy"] for r in rows if "official_test_accuracy" in r]
    if accs:
        print(f"official test accuracy over {len(accs)} seeds: mean {sum(accs) / len(accs):.4f}"
              f", range {min(accs):.4f}-{max(accs):.4f}")
    walls = [r["wall_seconds"] for r in rows]
    print(f"wall time per run: {min(walls)}-{max(walls)} s; peak RSS "
          f"{max(r['peak_rss_mb'] for r in rows)} MB")


if __name__ == "__main__":
    main()
