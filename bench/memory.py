"""Memory over long runs: the live app over many epochs, and one 60,000-image epoch headless.

    python -m convscope.bench.memory [--quick] [--epochs 20] [--batches 32 1] [--json]
                                     [--write-readme]

1. live: the real main window (offscreen, every panel visible and repainting) trains the
   ``seed`` net at full speed on the embedded set (9,000 training digits) for ``--epochs``
   epochs, in a fresh process for each batch size (batch 1 makes 9,000 steps an epoch, so
   the loss curves and the timeline reach their bounds); the process's resident memory (RSS)
   is read at the end of every epoch. Memory is flat when the largest RSS of the second half
   of the epochs is within FLAT_MB of the largest RSS of the first half after epoch 1 (the
   largest, because single readings swing by about 20 MB as the allocator hands memory back;
   after epoch 1, because at batch 32 an epoch lasts 0.15 s: the window's first repaints
   and evaluation buffers are still being allocated then);
2. 60,000-image epoch: a fresh headless process trains one epoch of 60,000 images at
   ``--batch`` and evaluates 10,000 test images; its peak RSS (VmHWM), before and after.
   The full MNIST training images are not available offline here, so the 60,000 images are
   the embedded set tiled (same size and dtype); when Fashion-MNIST is installed
   (``/usr/share/datasets/fashion-mnist``, Debian's dataset-fashion-mnist) its real 60,000
   images are measured too.

``python -m convscope.bench`` runs this without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from convscope.bench import ROOT, measuring_env
from convscope.bench.readme import README, require_checkout, write_section

SECTION = "memory bench"
EPOCH_CHILD = "--epoch-child"
LIVE_CHILD = "--live-child"
FLAT_MB = 5.0  # growth after the first epoch still called flat


def status_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


# ---- 1. the live app ----------------------------------------------------------------------
def live(epochs: int, batch: int, max_seconds: float, dataset: str = "mini") -> dict:
    from PyQt5.QtCore import QTimer

    from convscope.visualizer.app import make_app, wait_until
    from convscope.visualizer.main_window import MainWindow
    from convscope.visualizer.messages import Hyper, RunSettings

    app = make_app()
    start_rss = status_mb("VmRSS")
    window = MainWindow(settings=RunSettings(dataset=dataset, epochs=epochs),  # none paused
                        hyper=Hyper(lr=0.01, batch_size=batch), theme="dark")
    window.resize(1600, 1000)
    window.show()
    if not wait_until(lambda: window.info is not None and window.latest is not None, 60):
        raise RuntimeError("the window did not start")
    window.controls.speed_slider.setValue(window.controls.speed_slider.maximum())  # full
    per_epoch: list[dict] = []
    samples: list[tuple[float, float]] = []
    t0 = time.perf_counter()

    def on_epoch(report) -> None:
        per_epoch.append({"epoch": report.epoch, "step": report.step,
                          "rss_mb": round(status_mb("VmRSS"), 1),
                          "seconds": round(time.perf_counter() - t0, 1),
                          "test_accuracy": report.test_accuracy,
                          "curve_points": window.loss_panel.point_count()
                          + window.accuracy_panel.point_count(),
                          "timeline_mb": round(window.worker.timeline.memory_used / 2**20, 2)})

    window.epoch_ended.connect(on_epoch)
    sampler = QTimer()
    sampler.timeout.connect(lambda: samples.append((time.perf_counter() - t0,
                                                    status_mb("VmRSS"))))
    sampler.start(500)
    window.controls.train_button.click()
    done = wait_until(lambda: len(per_epoch) >= epochs, max_seconds)
    sampler.stop()
    window.close()
    app.processEvents()
    if not done:
        raise RuntimeError(f"only {len(per_epoch)} of {epochs} epochs in {max_seconds:.0f} s")
    rss = [e["rss_mb"] for e in per_epoch[:epochs]]
    return {"dataset": dataset, "n_train": window.info.n_train, "epochs": epochs,
            "batch": batch, "seconds": per_epoch[epochs - 1]["seconds"],
            "steps": per_epoch[epochs - 1]["step"],
            "test_accuracy": per_epoch[epochs - 1]["test_accuracy"],
            "rss_before_window_mb": round(start_rss, 1), "per_epoch": per_epoch,
            "rss_epoch1_mb": rss[0], "rss_last_mb": rss[-1],
            "growth_after_epoch1_mb": round(rss[-1] - rss[0], 1),
            "growth_between_halves_mb": growth_between_halves(rss),
            "max_after_epoch1_mb": max(rss[1:] or rss),
            "peak_mb": round(max([status_mb("VmHWM"), *rss, *(v for _, v in samples)]), 1)}


def growth_between_halves(rss: list[float]) -> float:
    """Largest RSS of the second half of the epochs minus the largest of the first half,
    epoch 1 left out (what a leak would make grow, not what the allocator swings)."""
    later = rss[1:]
    half = max(1, len(later) // 2)
    return round(max(later[half:] or later) - max(later[:half]), 1)


# ---- 2. one 60,000-image epoch, headless ----------------------------------------------------
def epoch_child(source: str, batch: int) -> dict:
    """In a fresh process: load 60,000 training and 10,000 test images, train one epoch."""
    import numpy as np

    from convscope.engine.data.datasets import FASHION_SYSTEM_DIRS, load_dir, load_mini
    from convscope.engine.net.model import Model, build_config
    from convscope.engine.net.train import Trainer, evaluate

    base = status_mb("VmRSS")
    if source == "tiled":
        mini = load_mini()
        x_train = np.ascontiguousarray(np.resize(mini.x_train, (60_000, 28, 28)))
        y_train = np.resize(mini.y_train, 60_000)
        x_test = np.ascontiguousarray(np.resize(mini.x_test, (10_000, 28, 28)))
        y_test = np.resize(mini.y_test, 10_000)
    else:
        data = load_dir(FASHION_SYSTEM_DIRS[0], "fashion")
        x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    loaded = status_mb("VmRSS")
    trainer = Trainer(Model(build_config("seed"), 0), x_train, y_train, lr=0.01,
                      batch_size=batch)
    t0 = time.perf_counter()
    report = trainer.run_epoch()
    seconds = time.perf_counter() - t0
    test_loss, test_acc, _ = evaluate(trainer.model, x_test, y_test)
    return {"source": source, "train_images": len(x_train), "test_images": len(x_test),
            "batch": batch, "rss_after_imports_mb": round(base, 1),
            "rss_after_loading_mb": round(loaded, 1), "rss_after_epoch_mb":
            round(status_mb("VmRSS"), 1), "peak_mb": round(status_mb("VmHWM"), 1),
            "epoch_seconds": round(seconds, 1), "train_loss": round(report.train_loss, 4),
            "test_accuracy": round(test_acc, 4)}


def child(*argv: str) -> dict:
    """Run ``python -m convscope.bench.memory *argv`` in a fresh process; its last line is JSON."""
    out = subprocess.run([sys.executable, "-m", "convscope.bench.memory", *argv],
                         env=measuring_env(QT_QPA_PLATFORM="offscreen"), cwd=ROOT,
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- report -------------------------------------------------------------------------------
def summary(result: dict) -> list[str]:
    runs = result["live"]
    epochs = runs[0]["epochs"]
    head = "| after epoch |" + "".join(
        f" RSS, batch {r['batch']} (MB) | curve points | timeline (MB) |" for r in runs)
    lines = [f"Live app: the `seed` net at full speed, every panel visible, {epochs} epochs "
             f"of the embedded set (9,000 digits), one fresh process per batch size:", "",
             head, "|---:|" + "---:|---:|---:|" * len(runs)]
    for k in range(epochs):
        row = f"| {k + 1} |"
        for r in runs:
            e = r["per_epoch"][k]
            row += f" {e['rss_mb']:.1f} | {e['curve_points']:,} | {e['timeline_mb']:.1f} |"
        lines.append(row)
    lines += ["", "RSS is read from /proc/self/status at the end of each epoch (at batch 32 it "
              "swings by about 20 MB with the allocator). Curve points: every point of the loss "
              "and accuracy curves, at most 8,192 per curve, then averaged in pairs. Timeline: "
              "the training states kept for scrubbing, at most about 128 states of the "
              "network (7 MB for the `seed` net): batch 1 fills it within two epochs, batch 32 "
              "adds 0.18 MB an epoch until it is full.", ""]
    for r in runs:
        growth = r["growth_between_halves_mb"]
        half = (epochs - 1) // 2 + 1
        lines.append(
            f"- Batch {r['batch']}: {r['steps']:,} steps in {r['seconds']:.0f} s; largest RSS "
            f"of epochs {half + 1}-{epochs} minus largest of epochs 2-{half}: "
            f"**{growth:+.1f} MB** ({'flat' if growth <= FLAT_MB else 'NOT flat'}; target <= "
            f"{FLAT_MB:g} MB). RSS {r['rss_epoch1_mb']:.1f} MB after epoch 1, "
            f"{r['rss_last_mb']:.1f} MB after epoch {epochs} "
            f"({r['growth_after_epoch1_mb']:+.1f} MB; epoch 1 ended "
            f"{r['per_epoch'][0]['seconds']:.1f} s after Train was pressed); largest epoch-end "
            f"RSS after epoch 1 "
            f"{r['max_after_epoch1_mb']:.1f} MB; process peak {r['peak_mb']:.1f} MB; test "
            f"accuracy {100 * r['test_accuracy']:.1f}%.")
    for ep in result["epochs_60k"]:
        what = ("the embedded 9,000 training and 1,000 test digits tiled to 60,000 and "
                "10,000, as the full MNIST training images are not available offline"
                if ep["source"] == "tiled" else
                "Fashion-MNIST's 60,000 and 10,000 real images (Debian's dataset-fashion-mnist)")
        lines.append(f"- One 60,000-image epoch headless, batch {ep['batch']}, then 10,000 "
                     f"test images ({what}): peak RSS {ep['peak_mb']:.1f} MB (after imports "
                     f"{ep['rss_after_imports_mb']:.1f}, with the data loaded "
                     f"{ep['rss_after_loading_mb']:.1f}, after the epoch "
                     f"{ep['rss_after_epoch_mb']:.1f}); the epoch took "
                     f"{ep['epoch_seconds']:.1f} s.")
    big = result.get("live_60k")
    if big:
        rss = [e["rss_mb"] for e in big["per_epoch"]]
        lines.append(f"- The live app on Fashion-MNIST's {big['n_train']:,} real training images, "
                     f"batch {big['batch']}, every panel live: RSS {rss[0]:.1f} MB after "
                     f"epoch 1 and {rss[-1]:.1f} MB after epoch {len(rss)}; process peak "
                     f"{big['peak_mb']:.1f} MB (before the window {big['rss_before_window_mb']:.1f}"
                     f" MB); {big['seconds']:.0f} s for the {len(rss)} epochs.")
    return lines


def write_readme(result: dict, path=README) -> None:
    write_section(SECTION, ["## Memory (`python -m convscope.bench.memory`)", "",
                            *summary(result)], path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m convscope.bench.memory",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 epochs at batch 32, tiled 60k only")
    p.add_argument("--epochs", type=int, default=20, help="epochs of the live runs (20)")
    p.add_argument("--batches", type=int, nargs="+", default=[32, 1],
                   help="batch sizes of the live runs (32 1)")
    p.add_argument("--batch", type=int, default=32, help="batch of the 60k epoch (32)")
    p.add_argument("--max-seconds", type=float, default=1200, help="give a live run up after")
    p.add_argument("--json", action="store_true", help="one JSON object on the last line")
    p.add_argument("--write-readme", action="store_true", help="rewrite its README section")
    p.add_argument(EPOCH_CHILD, choices=("tiled", "fashion"), help=argparse.SUPPRESS)
    p.add_argument(LIVE_CHILD, type=int, metavar="BATCH", help=argparse.SUPPRESS)
    p.add_argument("--live-dataset", default="mini", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.write_readme:
        require_checkout()
    if args.epoch_child:
        print(json.dumps(epoch_child(args.epoch_child, args.batch)))
        return 0
    if args.live_child:
        print(json.dumps(live(args.epochs, args.live_child, args.max_seconds,
                              args.live_dataset)))
        return 0
    from convscope.engine.data.datasets import (
        FASHION_SYSTEM_DIRS,
        TEST_FILES,
        TRAIN_FILES,
        find_idx,
    )

    epochs, batches = (5, [32]) if args.quick else (args.epochs, args.batches)
    result = {"live": [child(LIVE_CHILD, str(b), "--epochs", str(epochs), "--max-seconds",
                             str(args.max_seconds)) for b in batches], "epochs_60k": []}
    sources = ["tiled"]
    if not args.quick and all(find_idx(FASHION_SYSTEM_DIRS[0], s)
                              for s in TRAIN_FILES + TEST_FILES):
        sources.append("fashion")
    for source in sources:
        result["epochs_60k"].append(child(EPOCH_CHILD, source, "--batch", str(args.batch)))
    if "fashion" in sources:  # the live app on 60,000 real images: two epochs
        result["live_60k"] = child(LIVE_CHILD, str(args.batch), "--epochs", "2",
                                   "--max-seconds", str(args.max_seconds),
                                   "--live-dataset", "fashion")
    for line in summary(result):
        print(line)
    if args.write_readme:
        write_readme(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
