"""Training throughput with the whole app live versus headless, launch time and close time.

    QT_QPA_PLATFORM=offscreen python -m bench.gui [--seconds 12] [--rounds 8] [--batch 32]
                                                  [--size 1600x1000]

1. headless: the Trainer alone on the embedded data (no callbacks), samples/s;
2. app: the real main window, every panel visible and repainting, training at full speed on
   its worker thread: samples/s, the GUI event loop's worst stall (a 10 ms timer's largest
   gap: does the window freeze?) and the panels' repaint rate.
   The two alternate in short rounds so that other load on the machine hits both alike;
3. launch: a fresh process from start to the window painted with the first snapshot;
4. close: closing the window mid-training until the worker thread has ended.

The ratio app / headless is what issue 4 bounds (>= 0.70 at batch 32). For comparable figures
unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this command only:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.gui
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

LAUNCH_CHILD = "--launch-child"
T_IMPORT = time.perf_counter()


def headless_trainer(batch: int, lr: float):
    from engine.datasets import load_dataset
    from engine.model import Model, build_config
    from engine.train import Trainer

    data = load_dataset("mini")
    trainer = Trainer(Model(build_config("seed"), 0), data.x_train, data.y_train,
                      data.x_test, data.y_test, lr=lr, batch_size=batch)
    for _ in range(20):  # warm up
        trainer.step()
    return trainer


def headless(trainer, seconds: float) -> float:
    """Samples/s of the bare Trainer on this (the main) thread."""
    start, t0 = trainer.samples_seen, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        trainer.step()
    return (trainer.samples_seen - start) / (time.perf_counter() - t0)


class LiveApp:
    """The real main window, every panel visible; train() measures one stretch of training."""

    def __init__(self, batch: int, lr: float, size: tuple[int, int]):
        from PyQt5.QtCore import QTimer

        from visualizer.app import make_app, wait_until
        from visualizer.main_window import MainWindow
        from visualizer.worker import Hyper

        self.app, self.wait_until = make_app(), wait_until
        self.window = w = MainWindow(hyper=Hyper(lr=lr, batch_size=batch), theme="dark")
        w.resize(*size)
        w.show()
        wait_until(lambda: w.info is not None and w.latest is not None, 60)
        self.painted, self.gaps, self.last = [], [], time.perf_counter()
        w.snapshot_shown.connect(lambda s: self.painted.append(s.step))
        self.probe = QTimer()
        self.probe.setInterval(10)
        self.probe.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def train(self, seconds: float) -> dict:
        w, wait = self.window, self.wait_until
        w.worker.submit("train")
        wait(lambda: w.running, 30)
        # the headless rounds ran on this thread: do not let the window's time budget count
        # them as its own painting
        w.busy, w._tick = 0.0, (time.perf_counter(), time.thread_time())
        wait(lambda: False, 0.5)  # warm up
        self.gaps.clear()
        self.painted.clear()
        self.last = time.perf_counter()
        self.probe.start()
        trainer = w.worker.trainer
        s0, t0 = trainer.samples_seen, time.perf_counter()  # an int read: safe across threads
        cpu0 = time.thread_time()  # this is the GUI thread
        wait(lambda: False, seconds)
        elapsed = time.perf_counter() - t0
        rate = (trainer.samples_seen - s0) / elapsed
        busy = (time.thread_time() - cpu0) / elapsed
        self.probe.stop()
        w.worker.submit("pause")
        wait(lambda: not w.running, 30)
        return {"rate": rate, "max_gap_ms": 1000 * max(self.gaps, default=0),
                "repaints_per_s": len(self.painted) / elapsed, "busy": busy}

    def close_while_training(self) -> tuple[float, bool]:
        w = self.window
        w.worker.submit("train")
        self.wait_until(lambda: w.running, 30)
        self.wait_until(lambda: False, 0.5)
        t0 = time.perf_counter()
        w.close()
        closed = time.perf_counter() - t0
        self.app.processEvents()
        return closed, w.thread.isRunning()


def launch_child() -> None:
    """Run in a fresh process: print when the window is shown and when its first snapshot
    is painted (seconds since this module started)."""
    from visualizer.app import make_app, wait_until
    from visualizer.main_window import MainWindow

    app = make_app()
    window = MainWindow()
    window.show()
    shown = time.perf_counter() - T_IMPORT
    wait_until(lambda: window.latest is not None
               and window._painted.get("Feature maps") is window.latest, 60)
    print(f"{shown:.3f} {time.perf_counter() - T_IMPORT:.3f}", flush=True)
    window.close()
    app.processEvents()


def launch(repeats: int = 3) -> tuple[float, float]:
    """(window shown, first snapshot painted) in seconds from the process start, best of n."""
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "bench.gui", LAUNCH_CHILD],
                                 stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        line = child.stdout.readline()
        ready = time.perf_counter() - t0
        child.wait()
        shown_in_child, ready_in_child = (float(v) for v in line.split())
        shown = ready - (ready_in_child - shown_in_child)
        best = (shown, ready) if best is None or ready < best[1] else best
    return best


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                     f"x{i.get('num_threads')}" for i in threadpool_info())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if LAUNCH_CHILD in argv:
        launch_child()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="per side, in total")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--size", default="1600x1000")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    size = tuple(int(v) for v in args.size.lower().split("x"))
    import numpy as np  # noqa: F401 - load BLAS before reporting it

    print(f"BLAS: {blas_info()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    trainer = headless_trainer(args.batch, args.lr)
    live = LiveApp(args.batch, args.lr, size)
    span = args.seconds / args.rounds
    rows = []  # alternate the two so that other load on the machine hits both alike
    for _ in range(args.rounds):
        base = headless(trainer, span)
        rows.append((base, live.train(span)))
    base = statistics.median(b for b, _ in rows)
    rate = statistics.median(r["rate"] for _, r in rows)
    ratios = sorted(r["rate"] / b for b, r in rows)
    print(f"headless      : {base:9.0f} samples/s (batch {args.batch}, median of "
          f"{args.rounds} x {span:.1f} s)")
    print(f"app, all live : {rate:9.0f} samples/s -> ratio {statistics.median(ratios):.2f} "
          f"(median of the rounds' ratios; range {ratios[0]:.2f}..{ratios[-1]:.2f})")
    print(f"  GUI         : worst gap of a 10 ms timer "
          f"{max(r['max_gap_ms'] for _, r in rows):.0f} ms; "
          f"{statistics.median(r['repaints_per_s'] for _, r in rows):.1f} snapshot repaints/s; "
          f"GUI thread busy {statistics.median(r['busy'] for _, r in rows):.0%}")
    closed, running = live.close_while_training()
    print(f"  close       : {closed * 1000:.0f} ms mid-training, thread still running: {running}")
    shown, ready = launch()
    print(f"launch        : window shown {shown:.2f} s, first snapshot painted {ready:.2f} s "
          f"(from interpreter start, best of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
