"""Atomic model saves: a process killed (SIGKILL) at random points of many saves leaves the
model file either as it was or as the newest complete save, never broken."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from convscope.engine.files.checkpoint import load_model, save_model
from convscope.engine.net.model import Model, build_config

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 24

# Saves generation after generation: every weight of generation g equals g, and the extra dict
# says g, so a file mixing two saves (or cut short) cannot pass the checks below.
SAVER = textwrap.dedent("""
    import os, sys
    from convscope.engine.files.checkpoint import load_model, save_model
    from convscope.engine.net.model import Model, build_config
    path = sys.argv[1]
    if os.path.exists(path):
        model, _, extra = load_model(path)
        gen = extra["gen"]
    else:
        model, gen = Model(build_config("lenet"), 0), 0
    print("ready", flush=True)
    while True:
        gen += 1
        for w in model.params().values():
            w[...] = gen
        save_model(path, model, None, {"gen": gen})
""")

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def generation(path: Path) -> int:
    """The generation of a complete, valid model file (load_model raises otherwise)."""
    model, state, extra = load_model(path)
    gen = extra["gen"]
    assert state is None
    for name, w in model.params().items():
        assert np.all(w == gen), f"{name} mixes generations"
    return gen


def kill_while_saving(path: Path, rng: random.Random) -> None:
    """Start the saver, let it save for a random moment, then SIGKILL it and reap it."""
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.1))  # long enough for several saves to start
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)  # reaped: no zombie
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_during_saves_leaves_the_old_or_the_new_model(tmp_path):
    rng = random.Random(20240607)
    path = tmp_path / "model.npz"
    model = Model(build_config("lenet"), 0)
    for w in model.params().values():
        w[...] = 0
    save_model(path, model, None, {"gen": 0})
    last, interrupted = 0, 0
    for round_ in range(ROUNDS):
        fresh = round_ % 6 == 5  # now and then the very first save of a new file
        if fresh:
            path.unlink()
        fresh = not path.exists()  # also after a fresh round killed before its first save
        before = set(os.listdir(tmp_path))
        kill_while_saving(path, rng)
        strays = set(os.listdir(tmp_path)) - before - {path.name}
        interrupted += bool(strays)
        for name in strays:  # a save cut short leaves only a hidden temporary file
            assert name.startswith(".model.npz.") and name.endswith(".tmp"), name
        assert sorted(p.name for p in tmp_path.glob("*.npz")) == (
            [path.name] if path.exists() else [])  # temporaries never look like models
        if fresh and not path.exists():
            last = 0
            continue
        gen = generation(path)
        assert gen >= (0 if fresh else last)  # the old file or a newer one, never older
        last = gen
    assert last > 0  # saves did complete
    assert interrupted > 0  # and some kills did land in the middle of a save
    print(f"{interrupted} of {ROUNDS} kills landed inside a save; last generation {last}")

