"""The engine bench's plumbing: a short real run, the JSON shape, the README section.
(Speed itself is never asserted.)"""
from __future__ import annotations

import argparse
import json

import pytest

from convscope.bench import engine as bench


def _args(*argv):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--debug", action="store_true")
    return p.parse_args(list(argv))


@pytest.fixture(scope="module")
def result():
    """One short real run without PyTorch (a few seconds), one preset network."""
    return bench.run_bench(_args("--quick", "--rounds", "1", "--no-torch"),
                           progress=lambda line: None, epoch_images=640, networks=["deep-8"])


@pytest.mark.slow
def test_json_has_the_agreed_keys(result, capsys):
    train = result["train_samples_per_sec"]
    assert set(train["engine"]) == {"1", "8", "32", "128"}
    assert set(train["reference"]) == {"1"} and train["torch"] is None
    assert all(v > 0 for v in train["engine"].values())
    assert result["ratios"]["engine/reference"]["1"] == pytest.approx(
        train["engine"]["1"] / train["reference"]["1"], rel=0.01)
    assert set(result["infer_single_us"]) == {"engine", "reference"}
    assert set(result["infer_10k_ms"]) == {"engine", "reference"}
    assert result["epoch_60k_batch32_s"] > 0
    deep = result["presets"]["deep-8"]
    assert set(result["presets"]) == {"deep-8"}
    assert (deep["preset"], deep["filters"], deep["batch"]) == ("deep", 8, 32)
    assert set(deep["train_samples_per_sec"]) == {"engine"} and deep["ratios"] == {}
    assert deep["train_samples_per_sec"]["engine"] > 0 and deep["infer_10k_ms"]["engine"] > 0
    bench.report(_args("--json"), result)
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["train_samples_per_sec"]["engine"] == train["engine"]
    assert last["presets"]["deep-8"]["first_loss"] == deep["first_loss"]


def test_torch_columns_and_ratios():
    fake = {"engine": {b: [100.0 * b] for b in bench.BATCHES},
            "torch": {b: [20.0 * b] for b in bench.BATCHES},
            "reference": {1: [0.25]}}
    info = {"cpus": 2, "cpu": "x", "python": "3", "numpy": "2", "load_average": 0.1,
            "load_average_end": 0.2, "blas": None, "torch": "2"}
    result = bench.summarise(fake, {"engine": [10.0], "torch": [30.0], "reference": [900.0]},
                             {"engine": [5.0], "torch": [9.0], "reference": [9e3]}, 0.5,
                             {"engine": 2.3, "torch": 2.3}, info, 1, True)
    assert result["ratios"]["engine/torch"] == {"1": 5.0, "8": 5.0, "32": 5.0, "128": 5.0}
    assert result["ratios"]["engine/reference"] == {"1": 400.0}
    assert all(result["targets_met"].values())
    lines = bench.table(result)
    assert lines[0].startswith("| implementation |") and any("PyTorch, 2 threads" in x
                                                              for x in lines)


@pytest.mark.slow
def test_readme_section_is_replaced_in_place(result, tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# Benchmarks\n\nGUI figures stay.\n")
    bench.write_readme(result, path)
    bench.write_readme(result, path)
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nGUI figures stay.\n")
    assert text.count(bench.BEGIN) == 1 and text.count(bench.END) == 1
    assert "python main.py bench --write-readme" in text and "| engine (NumPy) |" in text
    assert "| `deep` 8 filters |" in text


def test_child_command_line_keeps_the_options():
    args = _args("--quick", "--rounds", "2", "--no-torch", "--json")
    assert _args(*bench.child_argv(args)) == args


def test_bad_rounds_is_bad_usage():
    with pytest.raises(SystemExit) as info:
        _args("--rounds", "0")
    assert info.value.code == 2


def test_preset_rows_give_ratios_against_pytorch():
    from convscope.bench import presets
    row = presets.summarise_one("lenet", 16, {"engine": [900.0, 1000.0, 1100.0],
                                              "torch": [2000.0], "torch_1thread": [1000.0]},
                                {"engine": [400.0], "torch": [500.0], "torch_1thread": []},
                                {"engine": 2.3, "torch": 2.3})
    assert row["ratios"] == {"engine/torch": 0.5, "engine/torch_1thread": 1.0}
    assert row["infer_10k_ms"] == {"engine": 400.0, "torch": 500.0}
    assert row["infer_ratio"] == 1.25
    lines = presets.table({"lenet-16": row})
    assert "| `lenet` 16 filters | 1,000 | 2,000 | 1,000 | 0.50x (target 0.75x) | 1.00x |" in (
        lines[2])
    assert ("deep", 8) in presets.networks() and ("deep", 16) in presets.networks()
