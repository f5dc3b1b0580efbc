"""Engine speed, side by side: the NumPy engine, the loop reference and PyTorch (when installed).

    python main.py bench [--quick] [--json] [--write-readme]
    python -m convscope.bench.engine [--quick] [--json] [--write-readme]

The design notes' network (``seed``: conv 3x3x8, max-pool 2, dense 1352 -> 10, float32), on the
embedded digits:
- training samples/s at batch 1, 8, 32 and 128 (the loop reference at batch 1 only): one step
  is what the app runs, uint8 batch -> x/255 - 0.5 -> forward -> loss -> backward -> SGD
  update (``Trainer.step`` for the engine; the same loop in PyTorch, loss read back each step);
- a 60,000-image epoch at batch 32 (``Trainer.run_epoch``);
- single-image inference latency (us) and 10,000-image inference time (ms), uint8 in,
  probabilities out;
- then every preset at batch 32 and its 10,000-image inference, side by side with PyTorch
  (bench/presets.py; ``--json`` puts them under ``presets``).
PyTorch runs the same network with the engine's initial weights (checked: equal first loss)
with 2 threads (torch.set_num_threads(2)) and, for reference, 1 thread.

Every figure is the median of several rounds and the implementations alternate inside each
round, so load from other programs hits them alike. The process first frees a 64 MB block,
as loading a dataset does (glibc then returns large temporaries to the system on every free;
a fast path must not depend on that not happening). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
are removed for the measuring process only (``--keep-blas-env`` keeps them).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from convscope.bench import BLAS_VARS, presets
from convscope.bench.impls import Engine, Reference, Torch, latency, rate
from convscope.bench.readme import README, markers, require_checkout, write_section

BATCHES = (1, 8, 32, 128)
CHILD_FLAG = "--measuring-child"
SECTION = "engine bench"
BEGIN, END = markers(SECTION)


def _rounds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="short rounds (whole run under 30 s)")
    p.add_argument("--rounds", type=_rounds, default=None, help="rounds per figure (default 5, "
                   "quick 3)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--write-readme", action="store_true",
                   help="write the table into bench/README.md")
    p.add_argument("--keep-blas-env", action="store_true",
                   help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for the measurement")


def child_argv(args) -> list[str]:
    """The options of ``args`` as a command line for ``python -m convscope.bench.engine``."""
    argv = [flag for flag, on in (("--quick", args.quick), ("--no-torch", args.no_torch),
                                  ("--write-readme", args.write_readme),
                                  ("--keep-blas-env", args.keep_blas_env),
                                  ("--json", getattr(args, "json", False)),
                                  ("--debug", getattr(args, "debug", False))) if on]
    return argv + (["--rounds", str(args.rounds)] if args.rounds else [])


def measure_in_child(args, argv: list[str]) -> int:
    """Run the measurement in a fresh interpreter without the OpenBLAS overrides."""
    env = dict(os.environ)
    if not args.keep_blas_env:
        for var in BLAS_VARS:
            env.pop(var, None)
    cmd = [sys.executable, "-m", "convscope.bench.engine", CHILD_FLAG, *argv]
    return subprocess.run(cmd, env=env).returncode


# ---- the run ------------------------------------------------------------------------------
def machine_info() -> dict:
    import numpy as np
    info = {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__,
            "load_average": round(os.getloadavg()[0], 2)}
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        info["cpu"] = names[0] if names else info["cpu"]
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "architecture",
                                               "num_threads")}
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = None
    info["blas_env"] = {v: os.environ[v] for v in BLAS_VARS if v in os.environ}
    return info


def load_digits():
    from convscope.engine.data.datasets import load_mini
    data = load_mini()
    return data.x_train, data.y_train.astype("int64"), data.x_test


def run_bench(args, progress=print, epoch_images: int = 60000, networks=None) -> dict:
    """The seed network's table, then every preset side by side (``networks``: only
    these, e.g. ["deep-16"])."""
    import numpy as np
    block = np.ones(64 * 2 ** 20 // 8)  # a freed 64 MB block, as after loading a dataset
    del block
    quick = args.quick
    rounds = args.rounds or (3 if quick else 5)
    seconds = 0.1 if quick else 0.4
    images, labels, test = load_digits()
    engine = Engine(images, labels)
    impls = [engine]
    torch_version = None
    if not args.no_torch:
        try:
            import torch
            torch_version = torch.__version__
            impls += [Torch(engine, images, labels, 2), Torch(engine, images, labels, 1)]
        except ImportError:
            progress("PyTorch is not installed: its columns stay empty")
    reference = Reference(engine, images, labels)
    info = machine_info()
    info["torch"] = torch_version
    for impl in impls:
        impl.activate()
    check = {impl.name: impl.first_loss(test[:100], np.zeros(100, "int64") + 3)
             for impl in impls}
    samples = {impl.name: {b: [] for b in BATCHES} for impl in impls}
    samples["reference"] = {1: []}
    single = {name: [] for name in [*samples]}
    ten_k = {name: [] for name in [*samples]}
    x10k = np.resize(test, (10000, 28, 28))
    for r in range(rounds):
        progress(f"round {r + 1}/{rounds}: training")
        for batch in BATCHES:
            for impl in impls:
                impl.activate()
                samples[impl.name][batch].append(rate(impl.train_step(batch), batch, seconds))
        samples["reference"][1].append(rate(reference.train_step(1), 1, seconds))
        progress(f"round {r + 1}/{rounds}: inference")
        for impl in [*impls, reference]:
            impl.activate()
            single[impl.name].append(latency(lambda impl=impl: impl.predict(test[:1]),
                                             seconds / 2) * 1e6)
        for impl in impls:
            impl.activate()
            start = time.perf_counter()
            impl.predict(x10k)
            ten_k[impl.name].append((time.perf_counter() - start) * 1e3)
        # the reference would take minutes: its single-image latency times 10,000
        ten_k["reference"].append(single["reference"][-1] * 10000 / 1e3)
    progress("a 60,000-image epoch at batch 32")
    epoch = epoch_seconds(images, labels, 1 if quick else 3, epoch_images)
    nets = presets.run_presets(images, labels, test, 1 if quick else rounds,
                               seconds, quick, torch_version is not None, progress, networks)
    info["load_average_end"] = round(os.getloadavg()[0], 2)
    result = summarise(samples, single, ten_k, epoch, check, info, rounds, quick)
    result["presets"] = nets
    return result


def epoch_seconds(images, labels, repeats: int, size: int = 60000) -> float:
    """Median seconds of ``Trainer.run_epoch`` over ``size`` images (the embedded digits
    repeated) at batch 32, scaled to 60,000 images when ``size`` is smaller."""
    import numpy as np

    from convscope.engine.net.model import Model, build_config
    from convscope.engine.net.train import Trainer
    x = np.resize(images, (size, 28, 28))
    y = np.resize(labels, size)
    trainer = Trainer(Model(build_config("seed"), 0), x, y, lr=0.005, batch_size=32)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.run_epoch()
        times.append((time.perf_counter() - start) * 60000 / size)
    return statistics.median(times)


def _round(v: float) -> float:
    """Whole numbers from 100 up, else three significant digits (a loop reference at 1.37
    samples/s on a busy machine keeps its ratio to the engine)."""
    return round(v) if v >= 100 else float(f"{v:.3g}")


def summarise(samples, single, ten_k, epoch, check, info, rounds, quick) -> dict:
    med = statistics.median
    raw = {name: {str(b): med(v) for b, v in per.items()} for name, per in samples.items()}
    train = {name: {b: _round(v) for b, v in per.items()} for name, per in raw.items()}
    result = {
        "train_samples_per_sec": {"engine": train["engine"], "reference": train["reference"],
                                  "torch": train.get("torch")},
        "ratios": {},
        "infer_single_us": {k: round(med(v), 1) for k, v in single.items()},
        "infer_10k_ms": {k: round(med(v), 1) for k, v in ten_k.items()},
        "epoch_60k_batch32_s": round(epoch, 3),
        "rounds": rounds, "quick": quick, "first_loss": check, "machine": info,
    }
    if "torch_1thread" in train:
        result["train_samples_per_sec"]["torch_1thread"] = train["torch_1thread"]
    ratios = result["ratios"]
    ratios["engine/reference"] = {"1": round(raw["engine"]["1"] / raw["reference"]["1"], 1)}
    for other in ("torch", "torch_1thread"):
        if other in raw:
            ratios[f"engine/{other}"] = {b: round(raw["engine"][b] / raw[other][b], 2)
                                         for b in raw["engine"]}
    met = {"engine/reference at batch 1 >= 300": ratios["engine/reference"]["1"] >= 300,
           "epoch of 60,000 at batch 32 < 1 s": epoch < 1.0}
    if "engine/torch" in ratios:
        met["engine/torch at batch 1 >= 5"] = ratios["engine/torch"]["1"] >= 5
        met["engine/torch at batch 32 >= 2"] = ratios["engine/torch"]["32"] >= 2
    result["targets_met"] = met
    return result


# ---- output -------------------------------------------------------------------------------
def _num(v, digits=0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def table(result: dict) -> list[str]:
    """Markdown table lines (readable in a terminal too)."""
    train = result["train_samples_per_sec"]
    names = [n for n in ("engine", "reference", "torch", "torch_1thread") if train.get(n)]
    label = {"engine": "engine (NumPy)", "reference": "loop reference",
             "torch": "PyTorch, 2 threads", "torch_1thread": "PyTorch, 1 thread"}
    lines = ["| implementation | " + " | ".join(f"train b{b} (samples/s)" for b in BATCHES)
             + " | infer 1 image (us) | infer 10,000 (ms) |",
             "|---|" + "---:|" * (len(BATCHES) + 2)]
    for n in names:
        cells = [_num(train[n].get(str(b))) for b in BATCHES]
        cells += [_num(result["infer_single_us"].get(n), 1),
                  _num(result["infer_10k_ms"].get(n), 1)]
        lines.append(f"| {label[n]} | " + " | ".join(cells) + " |")
    ratios, met = result["ratios"], result["targets_met"]

    def verdict(name):
        return "met" if met.get(name) else "missed"
    lines.append("")
    lines.append(f"- engine / loop reference at batch 1: **{ratios['engine/reference']['1']:,}x** "
                 f"(target >= 300x: {verdict('engine/reference at batch 1 >= 300')})")
    for other, what in (("torch", "PyTorch 2 threads"), ("torch_1thread", "PyTorch 1 thread")):
        if f"engine/{other}" in ratios:
            r = ratios[f"engine/{other}"]
            lines.append(f"- engine / {what}: " + ", ".join(f"batch {b}: **{v}x**"
                                                            for b, v in r.items())
                         + (f" (targets: >= 5x at batch 1: "
                            f"{verdict('engine/torch at batch 1 >= 5')}; >= 2x at batch 32: "
                            f"{verdict('engine/torch at batch 32 >= 2')})"
                            if other == "torch" else ""))
    t2, t1 = train.get("torch"), train.get("torch_1thread")
    if t2 and t1 and min(t2["1"] / t1["1"], t2["32"] / t1["32"]) < 0.5:
        load = result["machine"]["load_average"]
        lines.append(f"- PyTorch ran far slower on 2 threads than on 1: with other programs on "
                     f"the machine (load average {load}) its second thread keeps waiting for a "
                     f"busy core. Its 2-thread ratios then say more about the machine than "
                     f"about PyTorch; the 1-thread row is the like-for-like comparison.")
    lines.append(f"- a 60,000-image epoch at batch 32 (Trainer.run_epoch): "
                 f"**{result['epoch_60k_batch32_s']:.2f} s** (target < 1 s: "
                 f"{verdict('epoch of 60,000 at batch 32 < 1 s')})")
    lines.append("- the loop reference's 10,000-image time is its single-image latency x 10,000")
    return lines


def describe(result: dict) -> list[str]:
    m = result["machine"]
    blas = m.get("blas") or []
    kernels = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']} kernel, "
                        f"{b['num_threads']} threads)" for b in blas) or "unknown BLAS"
    losses = ", ".join(f"{k} {v:.6f}" for k, v in result["first_loss"].items())
    return [f"Machine: {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, NumPy {m['numpy']}, "
            f"{kernels}; PyTorch {m.get('torch') or 'not installed'}. "
            f"Load average {m['load_average']} at the start, {m['load_average_end']} at the end "
            f"(other programs share this machine). Medians of {result['rounds']} rounds"
            f"{' (quick run)' if result['quick'] else ''}.",
            f"Same network check, mean loss of 100 digits before training: {losses}."]


def preset_lines(result: dict) -> list[str]:
    if not result.get("presets"):
        return []
    return ["", "### Every preset, side by side with PyTorch", "",
            "Training at batch 32 with SGD and momentum 0.9, the same loop and the same starting "
            "weights in both; 10,000-image inference, uint8 in, probabilities out.", "",
            *presets.table(result["presets"])]


def write_readme(result: dict, path: Path = README) -> None:
    write_section(SECTION, ["## Engine speed (`seed` network, float32)", "",
                            "Regenerate: `python main.py bench --write-readme` "
                            "(or `python -m convscope.bench.engine --write-readme`).", "",
                            *table(result), *preset_lines(result), "", *describe(result)],
                  path)


def report(args, result: dict) -> None:
    if args.write_readme:
        write_readme(result)
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print("\n".join(["", *table(result), *preset_lines(result), "", *describe(result)]),
              flush=True)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m convscope.bench.engine",
                                description=__doc__.split("\n")[0])
    add_arguments(p)
    p.add_argument("--json", action="store_true", help="one JSON object on the last line")
    p.add_argument("--debug", action="store_true", help="show the traceback on failure")
    child = CHILD_FLAG in argv
    args = p.parse_args([a for a in argv if a != CHILD_FLAG])
    if args.write_readme:
        require_checkout()
    if not child and not args.keep_blas_env and any(v in os.environ for v in BLAS_VARS):
        return measure_in_child(args, argv)

    def progress(line):
        if sys.stderr.isatty():
            print(line, file=sys.stderr, flush=True)
    try:
        report(args, run_bench(args, progress))
    except KeyboardInterrupt:
        print("convscope bench: error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        message = " ".join(f"{type(e).__name__}: {e}".split())
        print(f"convscope bench: error: {message} (--debug shows where)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
