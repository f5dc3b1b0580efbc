"""Every preset side by side with PyTorch: training samples/s at batch 32 and the time to
predict 10,000 images, at each preset's default filters and at 16 filters.

Both run the same network from the same weights (checked: equal first loss) and the same
loop, SGD with momentum 0.9: uint8 batch -> x/255 - 0.5 -> forward, loss, backward, update.
PyTorch runs with 2 threads and, for reference, 1. Implementations alternate inside each
round; every figure is a median over rounds.
"""
from __future__ import annotations

import statistics
import time

from convscope.bench.impls import Engine, Torch, rate

BATCH = 32
# the least engine / PyTorch (2 threads) training ratio each preset aims at, at batch 32
TARGETS = {"seed": 2.0, "deep": 1.0, "lenet": 0.75}


def networks() -> list[tuple[str, int]]:
    """(preset, filters): every preset at its default filters, and at 16 when that differs."""
    from convscope.engine.net.model import PRESETS
    rows = []
    for name, (_, default, _, _) in PRESETS.items():
        rows += [(name, default)] + ([(name, 16)] if default != 16 else [])
    return rows


def run_presets(images, labels, test, rounds: int, seconds: float, quick: bool,
                use_torch: bool, progress=print, only=None) -> dict:
    """{"deep-16": {...}, ...}: samples/s, ratios and 10,000-image inference per network
    (of the networks named in ``only``, e.g. ["deep-16"], when given)."""
    import numpy as np

    from convscope.engine.net.model import build_config
    count = 1000 if quick else 10000  # a quick run times 1,000 images and scales up
    x = np.resize(test, (count, 28, 28))
    results = {}
    for preset, filters in networks():
        name = f"{preset}-{filters}"
        if only is not None and name not in only:
            continue
        engine = Engine(images, labels, build_config(preset, filters), lr=0.005, momentum=0.9)
        impls = [engine]
        if use_torch:
            impls += [Torch(engine, images, labels, 2), Torch(engine, images, labels, 1)]
        steps = {impl.name: impl.train_step(BATCH) for impl in impls}
        train = {impl.name: [] for impl in impls}
        infer = {impl.name: [] for impl in impls}
        for r in range(rounds):
            progress(f"{name}: round {r + 1}/{rounds}")
            for impl in impls:
                impl.activate()
                train[impl.name].append(rate(steps[impl.name], BATCH, seconds))
            if r < (1 if quick else rounds):
                for impl in impls:
                    impl.activate()
                    start = time.perf_counter()
                    impl.predict(x)
                    infer[impl.name].append((time.perf_counter() - start) * 1e3 * 10000 / count)
        for impl in impls:
            impl.activate()
        check = {impl.name: round(impl.first_loss(test[:100], np.zeros(100, "int64") + 3), 6)
                 for impl in impls}
        results[name] = summarise_one(preset, filters, train, infer, check)
    return results


def summarise_one(preset, filters, train, infer, check) -> dict:
    med = statistics.median
    rates = {k: round(med(v)) for k, v in train.items()}
    ms = {k: round(med(v), 1) for k, v in infer.items() if v}
    ratios = {f"engine/{k}": round(med(train["engine"]) / med(v), 2)
              for k, v in train.items() if k != "engine"}
    out = {"preset": preset, "filters": filters, "batch": BATCH,
           "train_samples_per_sec": rates, "ratios": ratios, "infer_10k_ms": ms,
           "first_loss": check}
    if "torch" in ms:
        out["infer_ratio"] = round(ms["torch"] / ms["engine"], 2)  # > 1: the engine is faster
    return out


def _num(v, digits=0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def table(presets: dict) -> list[str]:
    """Markdown lines: one row per network."""
    lines = ["| network (batch 32) | engine (samples/s) | PyTorch 2 threads | PyTorch 1 thread "
             "| engine / PyTorch | engine / PyTorch 1 thread | infer 10,000: engine (ms) "
             "| PyTorch (ms) |", "|---|" + "---:|" * 7]
    for r in presets.values():
        t, ratio, ms = r["train_samples_per_sec"], r["ratios"], r["infer_10k_ms"]
        target = TARGETS.get(r["preset"])
        mark = ""
        if "engine/torch" in ratio and target:
            mark = " (met)" if ratio["engine/torch"] >= target else f" (target {target}x)"
        lines.append(f"| `{r['preset']}` {r['filters']} filters | {_num(t['engine'])} "
                     f"| {_num(t.get('torch'))} | {_num(t.get('torch_1thread'))} "
                     f"| {_num(ratio.get('engine/torch'), 2)}x{mark} "
                     f"| {_num(ratio.get('engine/torch_1thread'), 2)}x "
                     f"| {_num(ms.get('engine'), 1)} | {_num(ms.get('torch'), 1)} |")
    losses = "; ".join(f"{name} " + ", ".join(f"{k} {v:.4f}" for k, v in r["first_loss"].items())
                       for name, r in presets.items())
    lines += ["", f"Same network check, mean loss of 100 digits before training: {losses}."]
    return lines
