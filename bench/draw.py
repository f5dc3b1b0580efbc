"""Latency of the draw panel: end of a stroke -> probabilities painted on screen.

    python -m convscope.bench.draw [--preset deep] [--repeats 200] [--scale 2] [--training]
                                   [--quick]
                         [--json] [--write-readme]

Each repeat draws a "7" with synthetic mouse events, then times from sending the button
release to the end of the probability bars' next paint (the whole path: ink image -> array ->
MNIST-style preprocessing -> forward pass -> saliency -> widgets -> paint). The parts are
timed separately as well. ``--scale 2`` renders the canvas at device pixel ratio 2 (a high-DPI
screen: the ink array is 560 x 560). The model's weights do not change the cost, so it is
not trained. ``--training`` measures the panel inside the main window while the seed network
trains at full speed on the worker thread (weights arrive ~30 times a second).
``--write-readme`` measures both (the panel alone with ``--preset``, then in the main window
while training) and rewrites this section of bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from convscope.bench import percentile
from convscope.bench.readme import README, require_checkout, write_section

SECTION = "draw bench"


def figures(seconds: list[float]) -> dict:
    """Median, 95th percentile and worst, in ms."""
    ms = [1000 * v for v in seconds]
    return {"median": round(statistics.median(ms), 3), "p95": round(percentile(ms, 95), 3),
            "max": round(max(ms), 3)}


def stats(f: dict) -> str:
    return f"median {f['median']:7.3f} ms   p95 {f['p95']:7.3f} ms   max {f['max']:7.3f} ms"


def send(widget, kind, x, y):
    from PyQt5.QtCore import QEvent, QPointF, Qt
    from PyQt5.QtGui import QMouseEvent
    from PyQt5.QtWidgets import QApplication

    changed = Qt.NoButton if kind == QEvent.MouseMove else Qt.LeftButton
    held = Qt.NoButton if kind == QEvent.MouseButtonRelease else Qt.LeftButton
    QApplication.sendEvent(widget, QMouseEvent(kind, QPointF(x, y), changed, held,
                                               Qt.NoModifier))


SEVEN = [(70 + t, 70) for t in range(0, 141, 5)] + [
    (210 - t * 0.55, 70 + t) for t in range(5, 161, 5)]


def open_window():
    """The main window on its draw tab, the seed network training at full speed and reading
    the drawings (the live network, not the shipped one)."""
    from convscope.visualizer.app import wait_until
    from convscope.visualizer.main_window import MainWindow
    from convscope.visualizer.messages import RunSettings
    window = MainWindow(settings=RunSettings(epochs=1000))  # no pause at the recipe's end
    window.resize(1280, 800)
    window.show()
    if not wait_until(lambda: window.info is not None, 30):
        raise SystemExit("the main window did not start a run")
    panel = window.draw_panel
    panel.networks.choose("live")
    tabs = window.tabs
    tabs.setCurrentIndex(next(i for i in range(tabs.count())  # the draw tab
                              if tabs.widget(i) is panel or tabs.widget(i).isAncestorOf(panel)))
    window.worker.set_speed(0)
    window.worker.train()
    if not wait_until(lambda: panel.model is not None and window.running, 30):
        raise SystemExit("training did not start")
    return window, panel


def measure(panel, repeats: int, window=None) -> dict:
    """Draw ``repeats`` sevens on ``panel`` (a DrawPanel); latencies in ms (see the module
    docstring)."""
    import numpy as np
    from PyQt5.QtCore import QEvent
    from PyQt5.QtWidgets import QApplication

    from convscope.engine.data.preprocess import preprocess_digit
    from convscope.engine.net.layers import softmax
    from convscope.engine.net.model import prepare_input
    from convscope.engine.tools.saliency import saliency

    app = QApplication.instance()
    app.processEvents()
    canvas, chart = panel.canvas, panel.prob_chart
    paints = {"count": 0, "at": 0.0}  # the chart's paints, and when the last one ended
    paint = chart.paintEvent

    def timed_paint(event):
        paint(event)
        paints["count"] += 1
        paints["at"] = time.perf_counter()

    chart.paintEvent = timed_paint
    end_to_end, per_move = [], []
    for _ in range(repeats):
        canvas.clear()
        app.processEvents()
        send(canvas, QEvent.MouseButtonPress, *SEVEN[0])
        for p in SEVEN[1:]:
            t = time.perf_counter()
            send(canvas, QEvent.MouseMove, *p)
            per_move.append(time.perf_counter() - t)
        app.processEvents()
        panel._throttle.stop()  # a pending mid-stroke update would blur the measurement
        painted = paints["count"]
        t0 = time.perf_counter()
        send(canvas, QEvent.MouseButtonRelease, *SEVEN[-1])
        deadline = t0 + 10
        while paints["count"] == painted:
            app.processEvents()
            if time.perf_counter() > deadline:
                raise SystemExit("the probabilities were not painted within 10 s")
        end_to_end.append(paints["at"] - t0)
        assert panel.prediction() is not None

    parts: dict[str, list[float]] = {k: [] for k in
                                     ("ink_array", "preprocess", "forward", "saliency")}
    model = panel.model
    for _ in range(repeats):
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
    ink_shape = canvas.ink_array().shape
    return {"where": "in the main window while training" if window is not None else "alone",
            "preset": window.info.settings.preset if window is not None else None,
            "pixel_ratio": canvas.devicePixelRatioF(), "ink": f"{ink_shape[1]}x{ink_shape[0]}",
            "strokes": repeats, "end_to_end_ms": figures(end_to_end),
            "parts_ms": {k: figures(v) for k, v in parts.items()},
            "mouse_move_ms": figures(per_move),
            "training_steps": (window.status.values.get("step", 0)
                               if window is not None else None)}


def run(preset: str, repeats: int, training: bool) -> dict:
    from convscope.engine.net.model import Model, build_config
    from convscope.visualizer.draw_panel import DrawPanel

    if training:
        window, panel = open_window()
        try:
            return measure(panel, repeats, window)
        finally:
            window.close()
    panel = DrawPanel()
    panel.set_model(Model(build_config(preset), seed=0))
    panel.show()
    result = measure(panel, repeats)
    result["preset"] = preset
    panel.close()
    return result


def describe(r: dict) -> list[str]:
    lines = [f"draw panel {r['where']}, preset {r['preset']}, device pixel ratio "
             f"{r['pixel_ratio']:g} (ink array {r['ink']}), {r['strokes']} strokes",
             f"  end of stroke -> probabilities painted  {stats(r['end_to_end_ms'])}"]
    for key, values in r["parts_ms"].items():
        lines.append(f"    {key:<12}                         {stats(values)}")
    lines.append(f"  one mouse move while drawing          {stats(r['mouse_move_ms'])}")
    if r["training_steps"] is not None:
        lines.append(f"  training reached step {r['training_steps']} meanwhile")
    return lines


def readme_lines(results: list[dict]) -> list[str]:
    def cell(f):
        return f"{f['median']:.2f} / {f['p95']:.2f} / {f['max']:.2f}"
    lines = ["## Drawn digit to probabilities (`python -m convscope.bench.draw`)", "",
             "From the release of a synthetic mouse stroke (a \"7\" on the draw tab's canvas) to "
             "the end of the", "probability bars' next paint: ink image -> array -> MNIST-style "
             "preprocessing -> forward", "pass -> saliency -> widgets -> paint. Times in ms, "
             "median / 95th percentile / worst.", "",
             "| where | preset | strokes | stroke end -> probabilities painted | preprocess "
             "| forward | saliency | one mouse move |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        p = r["parts_ms"]
        lines.append(f"| {r['where']} | `{r['preset']}` | {r['strokes']} | "
                     f"**{cell(r['end_to_end_ms'])}** | {cell(p['preprocess'])} | "
                     f"{cell(p['forward'])} | {cell(p['saliency'])} | "
                     f"{cell(r['mouse_move_ms'])} |")
    lines += ["", f"Ink array {results[0]['ink']} (device pixel ratio "
              f"{results[0]['pixel_ratio']:g}); one frame at 60 Hz is 16.7 ms. No target is set "
              "for this figure."]
    return lines


def write_readme(results: list[dict], path=README) -> None:
    write_section(SECTION, readme_lines(results), path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convscope.bench.draw",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="deep")
    parser.add_argument("--repeats", type=int, default=None, help="default 200, quick 50")
    parser.add_argument("--quick", action="store_true", help="50 strokes")
    parser.add_argument("--scale", type=float, default=1.0, help="device pixel ratio")
    parser.add_argument("--training", action="store_true",
                        help="inside the main window, while training runs at full speed")
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument("--write-readme", action="store_true",
                        help="measure alone and while training; rewrite this section of "
                        "bench/README.md")
    args = parser.parse_args(argv)
    if args.write_readme:
        require_checkout()
    repeats = args.repeats or (50 if args.quick else 200)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.scale != 1.0:
        os.environ["QT_SCALE_FACTOR"] = str(args.scale)
    from PyQt5.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 - kept alive

    modes = [False, True] if args.write_readme else [args.training]
    results = [run(args.preset, repeats, training) for training in modes]
    for r in results:
        print("\n".join(describe(r)), flush=True)
    print("  (one frame at 60 Hz is 16.7 ms)")
    if args.write_readme:
        write_readme(results)
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
