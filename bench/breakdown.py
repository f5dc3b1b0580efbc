"""Where a conv-stack step goes: each phase of ``StackNet.loss_and_grads`` timed alone, beside
this machine's matrix-product rate and memory bandwidth.

    python -m convscope.bench.breakdown [--preset lenet] [--filters 16] [--batch 32]

Each phase runs on the pass's own work arrays after one real step; figures are the fastest of
several repeats in CPU time (the least disturbed by other programs), on one BLAS thread as
the pass runs.
GFLOP/s of a product = 2 * M * N * K / time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def fastest(call, repeats: int = 15) -> float:
    """Milliseconds of the fastest of ``repeats`` calls (after one warm-up call), in this
    thread's CPU time: on a busy machine a call of several ms is nearly always interrupted,
    and its wall-clock time then counts other programs' turns."""
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        call()
        best = min(best, time.thread_time() - start)
    return best * 1e3


def machine_rates() -> dict:
    """One-thread sgemm GFLOP/s (1024^3) and copy bandwidth GB/s (64 MB read + written)."""
    import numpy as np
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    out = np.empty_like(a)
    gemm = 2 * 1024 ** 3 / fastest(lambda: np.dot(a, a, out=out), 5) / 1e6
    big = np.ones(16_000_000, np.float32)
    copy = np.empty_like(big)
    bandwidth = 2 * big.nbytes / fastest(lambda: np.copyto(copy, big), 5) / 1e6
    return {"gemm_gflops": round(gemm, 1), "copy_gbs": round(bandwidth, 1)}


def phases(preset: str, filters: int, batch: int) -> list[tuple[str, float, float]]:
    """[(phase, ms, GFLOP or 0), ...] of one step, then ("whole step", ms, total GFLOP), all
    on this thread: each phase's CPU time is the whole of its work."""
    from convscope.engine.fast import pair
    was = pair.use_pair(False)
    try:
        return _phases(preset, filters, batch)
    finally:
        pair.use_pair(was)


def _phases(preset: str, filters: int, batch: int) -> list[tuple[str, float, float]]:
    import numpy as np

    from convscope.engine.data.datasets import load_mini
    from convscope.engine.net.model import Model, build_config, prepare_input
    data = load_mini()
    model = Model(build_config(preset, filters), 0)
    net = model.fast_pass
    if not hasattr(net, "blocks"):
        raise SystemExit(f"breakdown: {preset} does not use the conv-stack pass")
    x = prepare_input(data.x_train[:batch])
    labels = data.y_train[:batch].astype(np.intp)
    xp = net.prepare(x)  # zero-bordered images, what the pass reads
    net.loss_and_grads(xp, labels)
    bufs = net._buffers(batch)
    out = []

    def add(name, call, flop=0.0):
        out.append((name, fastest(call), flop / 1e9))
    add("first conv's patches", lambda: net._gather(xp, net.blocks[0], bufs[0]["patches"]))
    for i, b in enumerate(net.blocks):
        d, w = bufs[i], net.mats[b.conv]
        m = batch * b.rows
        flop = 2.0 * m * b.width * b.c_out
        tag = f"conv{i + 1} ({m} x {b.width} x {b.c_out})"
        if i:  # (the first conv's patches: the line above)
            add(f"conv{i + 1}: gather patches ({d['patches'].nbytes / 1e6:.1f} MB)",
                lambda d=d, b=b: net._gather(d["xp"], b, d["patches"]))
        rows = d["conv"].reshape(m, b.c_out)
        add(f"{tag}: product", lambda d=d, w=w, rows=rows: np.dot(d["P"], w[0], rows), flop)
        add(f"conv{i + 1}: pool, ReLU, winners, routing", lambda i=i, d=d, b=b: (
            b.reduce(d["conv"], axis=1, out=d["pooled"]),
            net._winners(d["conv"], d["pooled"], d),
            np.multiply(d["mask"], d["pooled"][:, None], out=d["dconv"])))
        drows = d["dconv"].reshape(m, b.c_out)
        add(f"{tag}: weight gradient product",  # the pass's orientation: (dconv^T P)^T
            lambda d=d, drows=drows: np.dot(drows.T, d["P"], out=d["gradT"]), flop)
        if i:
            k, mo = b.k, batch * b.ho * b.wo
            wts = w[0][:b.kk].reshape(k * k, b.c_in, b.c_out).transpose(0, 2, 1)
            dout = d["dout"].reshape(1, mo, b.c_out)
            add(f"conv{i + 1}: input gradient, {k * k} products ({mo} x {b.c_out} x {b.c_in})",
                lambda d=d, wts=wts, dout=dout: np.matmul(dout, wts, out=d["dpatch"]),
                2.0 * k * k * mo * b.c_out * b.c_in)

            def scatter(d=d, b=b, k=k):
                dpatch = d["dpatch"].reshape(k, k, batch, b.ho, b.wo, b.c_in)
                d["dxp"].fill(0)
                for r in range(k):
                    for c in range(k):
                        d["dxp"][:, r:r + b.ho, c:c + b.wo] += dpatch[r, c]
            add(f"conv{i + 1}: input gradient, {k * k} slab adds "
                f"({d['dpatch'].nbytes / 1e6:.1f} MB)", scatter)
    whole = fastest(lambda: net.loss_and_grads(xp, labels))
    flops = sum(f for _, _, f in out) + sum(6.0 * batch * layer.params["W"].size / 1e9
                                           for layer, _ in net.dense)
    out.append(("whole step (the pass, from the padded images)", whole, flops))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m convscope.bench.breakdown",
                                description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="lenet")
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args(argv)
    import numpy  # noqa: F401 - loaded first, so that the limit below reaches its BLAS
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        rows = phases(args.preset, args.filters, args.batch)
        rates = machine_rates()
    print(f"`{args.preset}` {args.filters} filters, batch {args.batch}; one-thread sgemm "
          f"{rates['gemm_gflops']} GFLOP/s, copy {rates['copy_gbs']} GB/s; load average "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| phase | ms | GFLOP/s |\n|---|---:|---:|")
    for name, ms, gflop in rows:
        rate = f"{gflop / ms * 1e3:.1f}" if gflop else ""
        print(f"| {name} | {ms:.2f} | {rate} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
