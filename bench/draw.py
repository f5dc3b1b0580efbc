"""Latency of the draw panel: end of a stroke -> probabilities painted on screen.

    QT_QPA_PLATFORM=offscreen python -m bench.draw [--preset deep] [--repeats 200] [--scale 2]
                                                   [--training]

Each repeat draws a "7" with synthetic mouse events, then times from sending the button
release to the end of the probability bars' next paint (the whole path: ink image -> array ->
MNIST-style preprocessing -> forward pass -> saliency -> widgets -> paint). The parts are
timed separately as well. ``--scale 2`` renders the canvas at device pixel ratio 2 (a high-DPI
screen: the ink array is 560 x 560). The model's weights do not change the cost, so it is
not trained. ``--training`` measures the panel inside the main window while the seed network
trains at full speed on the worker thread (weights arrive ~30 times a second).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def stats(ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"median {statistics.median(ms):7.3f} ms   p95 {p95:7.3f} ms   max {ms[-1]:7.3f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="deep")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--scale", type=float, default=1.0, help="device pixel ratio")
    parser.add_argument("--training", action="store_true",
                        help="inside the main window, while training runs at full speed")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.scale != 1.0:
        os.environ["QT_SCALE_FACTOR"] = str(args.scale)

    import numpy as np
    from PyQt5.QtCore import QEvent, QPointF, Qt
    from PyQt5.QtGui import QMouseEvent
    from PyQt5.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from engine.layers import softmax
    from engine.model import Model, build_config, prepare_input
    from engine.preprocess import preprocess_digit
    from engine.saliency import saliency
    from visualizer.draw_panel import DrawPanel

    def send(widget, kind, x, y):
        changed = Qt.NoButton if kind == QEvent.MouseMove else Qt.LeftButton
        held = Qt.NoButton if kind == QEvent.MouseButtonRelease else Qt.LeftButton
        QApplication.sendEvent(widget, QMouseEvent(kind, QPointF(x, y), changed, held,
                                                   Qt.NoModifier))

    seven = [(70 + t, 70) for t in range(0, 141, 5)] + [
        (210 - t * 0.55, 70 + t) for t in range(5, 161, 5)]
    window = None
    if args.training:
        from visualizer.app import wait_until
        from visualizer.main_window import MainWindow
        window = MainWindow()
        window.resize(1280, 800)
        window.show()
        if not wait_until(lambda: window.info is not None, 30):
            raise SystemExit("the main window did not start a run")
        panel = window.draw_panel
        tabs = window.tabs
        tabs.setCurrentIndex(next(i for i in range(tabs.count())  # the draw tab
                                  if tabs.widget(i) is panel or tabs.widget(i).isAncestorOf(panel)))
        window.worker.submit("speed", 0)
        window.worker.submit("train")
        if not wait_until(lambda: panel.model is not None and window.running, 30):
            raise SystemExit("training did not start")
    else:
        panel = DrawPanel()
        panel.set_model(Model(build_config(args.preset), seed=0))
        panel.show()
    app.processEvents()
    canvas, bars = panel.canvas, panel.prob_bars

    end_to_end, per_move = [], []
    for _ in range(args.repeats):
        canvas.clear()
        app.processEvents()
        send(canvas, QEvent.MouseButtonPress, *seven[0])
        for p in seven[1:]:
            t = time.perf_counter()
            send(canvas, QEvent.MouseMove, *p)
            per_move.append(time.perf_counter() - t)
        app.processEvents()
        panel._throttle.stop()  # a pending mid-stroke update would blur the measurement
        painted = bars.paint_count
        t0 = time.perf_counter()
        send(canvas, QEvent.MouseButtonRelease, *seven[-1])
        deadline = t0 + 10
        while bars.paint_count == painted:
            app.processEvents()
            if time.perf_counter() > deadline:
                raise SystemExit("the probabilities were not painted within 10 s")
        end_to_end.append(bars.painted_at - t0)
        assert panel.prediction() is not None

    parts: dict[str, list[float]] = {k: [] for k in
                                     ("ink_array", "preprocess", "forward", "saliency")}
    model = panel.model
    for _ in range(args.repeats):
        t = time.perf_counter()
        ink = canvas.ink_array()
        t1 = time.perf_counter()
        digit = preprocess_digit(ink)
        t2 = time.perf_counter()
        x = prepare_input(digit[None])
        probs = softmax(model.forward(x))[0]
        t3 = time.perf_counter()
        saliency(model, x[0], int(np.argmax(probs)))
        t4 = time.perf_counter()
        for key, a, b in (("ink_array", t, t1), ("preprocess", t1, t2), ("forward", t2, t3),
                          ("saliency", t3, t4)):
            parts[key].append(b - a)

    steps = None
    if window is not None:
        steps = window.status.values.get("step", 0)
        window.close()
    ms = lambda xs: [1000 * v for v in xs]  # noqa: E731
    ink_shape = canvas.ink_array().shape
    where = "in the main window while training" if window is not None else "alone"
    preset = window.info.settings.preset if window is not None else args.preset
    print(f"draw panel {where}, preset {preset}, device pixel ratio {canvas.devicePixelRatioF():g}"
          f" (ink array {ink_shape[1]}x{ink_shape[0]}), {args.repeats} strokes")
    print(f"  end of stroke -> probabilities painted  {stats(ms(end_to_end))}")
    for key, values in parts.items():
        print(f"    {key:<12}                         {stats(ms(values))}")
    print(f"  one mouse move while drawing          {stats(ms(per_move))}")
    if steps is not None:
        print(f"  training reached step {steps} meanwhile")
    print("  (one frame at 60 Hz is 16.7 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
