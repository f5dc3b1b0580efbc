"""Headless commands: exit statuses, JSON shapes, help, divergence, save -> eval/predict/resume."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from cli_run import call, last_json
from PIL import Image

from convscope import cli
from convscope.cli import train as cli_train
from convscope.engine.data import datasets
from convscope.engine.tools import gradcheck
from convscope.engine.tools.metrics import confusion_matrix, per_class_accuracy

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--train-size", "500", "--test-size", "200", "--epochs", "1"]
TRAIN_KEYS = {"dataset", "train_size", "test_size", "preset", "epochs", "batch_size", "lr",
              "seed", "train_loss", "test_loss", "test_accuracy", "seconds", "samples_per_sec"}


def one_error_line(err: str, *words) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def step_log(monkeypatch):
    """(epochs completed, lr, loss) of every training step the commands take."""
    from convscope.engine.net.train import Trainer
    log = []
    real = Trainer.step

    def logged(self, *args, **kwargs):
        report = real(self, *args, **kwargs)
        log.append((report.epoch, report.lr, report.loss))
        return report
    monkeypatch.setattr(Trainer, "step", logged)
    return log


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A quick seed model saved with --save, and the train command's JSON."""
    path = tmp_path_factory.mktemp("model") / "seed.npz"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli.run(["train", *QUICK, "--save", str(path), "--json"])
    assert code == 0
    return path, json.loads(out.getvalue().splitlines()[-1])


# ---- help and dispatch -----------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "eval", "predict", "gradcheck", "bench",
                                     "screenshot"])
@pytest.mark.slow
def test_every_command_has_help(capsys, command):
    code, out, _ = call(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: convscope {command}")
    assert "--json" in out


@pytest.mark.slow
def test_top_level_help_lists_commands(capsys):
    code, out, _ = call(capsys, "--help")
    assert code == 0
    for command in ("train", "eval", "predict", "gradcheck", "bench", "screenshot"):
        assert command in out


@pytest.mark.slow
def test_unknown_command_is_bad_usage(capsys):
    code, out, err = call(capsys, "frobnicate")
    assert code == 2 and out == ""
    assert "invalid choice" in err


@pytest.mark.slow
def test_no_command_launches_the_app(monkeypatch):
    calls = []
    fake = types.ModuleType("convscope.visualizer.app")
    fake.run_app = lambda: calls.append("run") or 0
    monkeypatch.setitem(sys.modules, "convscope.visualizer.app", fake)
    assert cli.run([]) == 0
    assert calls == ["run"]


# ---- train -------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_json_has_the_agreed_keys(trained):
    path, result = trained
    assert TRAIN_KEYS <= set(result)
    assert (result["dataset"], result["train_size"], result["test_size"]) == ("mini", 500, 200)
    assert (result["preset"], result["epochs"], result["batch_size"]) == ("seed", 1, 1)
    assert result["lr"] == 0.005 and result["seed"] == 0 and result["steps"] == 500
    assert 0 < result["train_loss"] < 2.303  # below chance after one epoch
    assert 0.5 < result["test_accuracy"] <= 1
    assert result["seconds"] > 0 and result["samples_per_sec"] > 0
    assert result["saved"] == str(path) and path.is_file()


@pytest.mark.slow
def test_train_human_output(capsys):
    code, out, err = call(capsys, "train", "--train-size", "300", "--test-size", "0",
                          "--batch-size", "10", "--lr", "0.05")
    assert code == 0 and err == ""
    assert "epoch 1: train loss" in out and "test loss" not in out
    assert "images/s" in out.splitlines()[-1]


@pytest.mark.slow
def test_test_size_zero_gives_null_test_figures(capsys):
    code, out, _ = call(capsys, "train", "--train-size", "100", "--test-size", "0", "--json")
    result = last_json(out)
    assert code == 0 and result["test_size"] == 0
    assert result["test_loss"] is None and result["test_accuracy"] is None


@pytest.mark.parametrize("argv, reason", [
    (["--lr", "-1"], "--lr"), (["--lr", "0"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--lr", "101"], "--lr"),
    (["--batch-size", "0"], "--batch-size"), (["--preset", "resnet"], "invalid choice"),
    (["--filters", "0"], "between 1 and 64"), (["--filters", "65"], "between 1 and 64"),
    (["--pool", "median"], "--pool"), (["--momentum", "1"], "--momentum"),
    (["--epochs", "0"], "--epochs"), (["--seed", "-3"], "--seed"),
    (["--data", "no/such/dir"], "existing directory"),
    (["--train-size", "100", "--batch-size", "101"], "larger than the training set"),
    (["--train-size", "999999"], "more than the"),
    (["--test-size", "999999"], "more than the"),
])
@pytest.mark.slow
def test_train_bad_usage_exits_2_with_the_reason(capsys, tmp_path, argv, reason):
    code, out, err = call(capsys, "train", "--save", tmp_path / "m.npz", *argv)
    assert code == 2, err
    assert out == ""
    assert reason in err.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


def test_divergence_exits_1_and_writes_nothing(capsys, tmp_path):
    """lr 10 is accepted (watching the seed net blow up is a lesson) and diverges fast."""
    path = tmp_path / "diverged.npz"
    code, out, err = call(capsys, "train", "--preset", "seed", "--lr", "10", "--batch-size",
                          "8", *QUICK, "--save", path, "--json")
    assert code == 1
    assert out == ""
    one_error_line(err, "convscope train: error:", "diverged", "learning rate", "nothing")
    assert list(tmp_path.iterdir()) == []  # no model, no temporary file


@pytest.mark.slow
def test_save_into_a_missing_folder_fails_before_training(capsys, tmp_path):
    code, out, err = call(capsys, "train", *QUICK, "--save", tmp_path / "no" / "m.npz")
    assert code == 1 and out == ""
    one_error_line(err, "does not exist")


# ---- resume ------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_continues_exactly(capsys, tmp_path, trained):
    path, first = trained
    code, out, _ = call(capsys, "train", "--resume", path, "--epochs", "1", "--json")
    resumed = last_json(out)
    assert code == 0
    assert (resumed["train_size"], resumed["test_size"]) == (500, 200)  # from the file
    assert resumed["total_epochs"] == 2 and resumed["steps"] == 1000
    code, out, _ = call(capsys, "train", "--train-size", "500", "--test-size", "200",
                        "--epochs", "2", "--json")
    straight = last_json(out)
    assert code == 0
    assert resumed["test_loss"] == straight["test_loss"]  # bit-identical continuation
    assert resumed["train_loss"] == straight["train_loss"]


@pytest.mark.slow
def test_resume_refuses_a_different_architecture(capsys, trained):
    code, out, err = call(capsys, "train", "--resume", trained[0], "--preset", "lenet")
    assert code == 2 and out == ""
    assert "--preset lenet differs" in err


@pytest.mark.slow
def test_resume_with_another_training_set_size_is_bad_usage(capsys, trained):
    code, _, err = call(capsys, "train", "--resume", trained[0], "--train-size", "400")
    assert code == 2
    assert "same --data and --train-size" in err


# ---- eval --------------------------------------------------------------------------------
def test_eval_json_matches_training_and_metrics(capsys, trained):
    path, result = trained
    code, out, _ = call(capsys, "eval", "--model", path, "--test-size", "200", "--json")
    ev = last_json(out)
    assert code == 0
    assert {"test_size", "test_loss", "test_accuracy", "per_class_accuracy",
            "confusion"} <= set(ev)
    confusion = np.array(ev["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 200
    assert ev["test_size"] == 200
    assert ev["test_accuracy"] == pytest.approx(np.trace(confusion) / 200)
    assert ev["test_accuracy"] == pytest.approx(result["test_accuracy"])
    assert ev["test_loss"] == pytest.approx(result["test_loss"], rel=1e-6)
    assert len(ev["per_class_accuracy"]) == 10
    rows = confusion.sum(axis=1)
    for k in range(10):
        expected = None if rows[k] == 0 else confusion[k, k] / rows[k]
        assert ev["per_class_accuracy"][k] == pytest.approx(expected)


@pytest.mark.slow
def test_eval_human_output_shows_the_confusion_matrix(capsys, trained):
    code, out, _ = call(capsys, "eval", "--model", trained[0], "--test-size", "50")
    assert code == 0
    assert out.startswith("50 test images: loss")
    assert len(out.strip().splitlines()) == 1 + 1 + 1 + 10  # summary, blank, header, rows


@pytest.mark.slow
def test_eval_on_a_folder_with_only_the_test_files(capsys, tmp_path, trained):
    from convscope.engine.data.datasets import load_dataset
    from convscope.engine.data.idx import write_idx
    mini = load_dataset("mini", progress=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", mini.x_test[:60])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", mini.y_test[:60])
    code, out, _ = call(capsys, "eval", "--model", trained[0], "--data", tmp_path, "--json")
    ev = last_json(out)
    assert code == 0 and ev["test_size"] == 60
    code, out, _ = call(capsys, "eval", "--model", trained[0], "--test-size", "60", "--json")
    assert last_json(out)["confusion"] == ev["confusion"]


@pytest.mark.slow
@pytest.mark.parametrize("content", [None, b"", b"not a model at all", b"PK\x03\x04junk"])
def test_eval_bad_model_file_exits_1_with_one_line(capsys, tmp_path, content):
    path = tmp_path / "model.npz"
    if content is not None:
        path.write_bytes(content)
    code, out, err = call(capsys, "eval", "--model", path)
    assert code == 1 and out == ""
    one_error_line(err, "convscope eval: error:")


def test_metrics_confusion_and_per_class_accuracy():
    conf = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], n=10)
    assert conf.shape == (10, 10) and conf.sum() == 6
    assert conf[0, 0] == 1 and conf[0, 1] == 1 and conf[2, 0] == 1 and conf[2, 2] == 2
    acc = per_class_accuracy(conf)
    assert acc[:3] == pytest.approx([0.5, 1.0, 2 / 3])
    assert np.isnan(acc[3:]).all()


# ---- predict -----------------------------------------------------------------------------
def _digit_png(path: Path, digit: np.ndarray) -> Path:
    """A mini test digit as a scan would look: dark ink on white, 4x larger."""
    Image.fromarray(255 - digit).resize((112, 112), Image.BILINEAR).save(path)
    return path


@pytest.mark.slow
def test_predict_digits_and_a_blank_image(capsys, tmp_path, trained):
    from convscope.engine.data.datasets import load_dataset
    from convscope.engine.data.preprocess import load_image, preprocess_digit
    from convscope.engine.files.checkpoint import load_model
    from convscope.engine.net.model import prepare_input
    mini = load_dataset("mini", progress=False)
    files = [_digit_png(tmp_path / f"d{i}.png", mini.x_test[i]) for i in range(3)]
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 40), 255).save(blank)
    code, out, _ = call(capsys, "predict", "--model", trained[0], *files, blank, "--json")
    result = last_json(out)
    assert code == 0
    preds = result["predictions"]
    assert [p["file"] for p in preds] == [str(f) for f in [*files, blank]]
    model, _, _ = load_model(trained[0])
    for f, p in zip(files, preds[:3], strict=True):
        expected = model.predict_proba(prepare_input(preprocess_digit(load_image(f))[None]))[0]
        assert p["probabilities"] == pytest.approx(expected.tolist(), abs=1e-6)
        assert sum(p["probabilities"]) == pytest.approx(1, abs=1e-5)
        assert p["predicted"] == int(np.argmax(p["probabilities"]))
    assert preds[-1]["predicted"] is None and preds[-1]["probabilities"] is None


@pytest.mark.slow
def test_predict_rejects_a_non_image(capsys, tmp_path, trained):
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n")
    code, out, err = call(capsys, "predict", "--model", trained[0], text, "--json")
    assert code == 1 and out == ""
    one_error_line(err, "convscope predict: error:", "notes.png")


@pytest.mark.slow
def test_predict_needs_an_image(capsys, trained):
    code, _, err = call(capsys, "predict", "--model", trained[0])
    assert code == 2 and "IMAGE" in err


# ---- gradcheck ---------------------------------------------------------------------------
@pytest.mark.slow
def test_gradcheck_passes_for_the_seed_network(capsys):
    code, out, _ = call(capsys, "gradcheck", "--preset", "seed", "--pool", "max", "--seed",
                        "1", "--json")
    result = last_json(out)
    assert code == 0 and result["passed"] is True
    assert set(result["per_layer"]) == {"conv1", "dense1"}
    assert result["max_relative_error"] == max(result["per_layer"].values())
    assert result["threshold"] == 1e-6
    assert result["max_relative_error"] < result["threshold"]


@pytest.mark.slow
def test_gradcheck_failure_exits_1(capsys, monkeypatch):
    real = gradcheck.gradcheck

    def with_a_bug(*args, **kwargs):  # dense1.W's gradient 1% too large
        return real(*args, **kwargs,
                    grad_hook=lambda g: {**g, "dense1.W": g["dense1.W"] * 1.01})
    monkeypatch.setattr(gradcheck, "gradcheck", with_a_bug)
    code, out, err = call(capsys, "gradcheck", "--json")
    result = last_json(out)
    assert code == 1 and result["passed"] is False
    assert result["per_layer"]["dense1"] > 1e-3 > result["per_layer"]["conv1"]
    one_error_line(err, "gradient check failed")


# ---- bench and screenshot ----------------------------------------------------------------
def _fake_app(monkeypatch, calls, status=0):
    fake = types.ModuleType("convscope.visualizer.app")

    def take_screenshot(out, steps, probe, size, theme="system", tab=None, scale=1.0):
        calls.append((out, steps, probe, size, theme, tab, os.environ.get("QT_QPA_PLATFORM"),
                      scale))
        Image.new("RGB", size or (640, 480), "white").save(out)
        return status
    fake.take_screenshot = take_screenshot
    monkeypatch.setitem(sys.modules, "convscope.visualizer.app", fake)


@pytest.mark.slow
def test_screenshot_passes_its_options_to_the_app(capsys, monkeypatch, tmp_path):
    calls = []
    _fake_app(monkeypatch, calls)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    out_png = tmp_path / "shot.png"
    code, out, _ = call(capsys, "screenshot", "--out", out_png, "--steps", "7", "--probe", "3",
                        "--size", "800x600", "--tab", "Inspector", "--theme", "dark",
                        "--scale", "2", "--json")
    assert code == 0
    assert calls == [(str(out_png), 7, 3, (800, 600), "dark", "Inspector", "offscreen", 2.0)]
    assert last_json(out) == {"out": str(out_png), "steps": 7, "probe": 3, "width": 800,
                              "height": 600, "scale": 2.0}
    code, _, err = call(capsys, "screenshot", "--out", out_png, "--scale", "9")
    assert code == 2 and "the scale must be 1..4, got 9" in err.strip().splitlines()[-1]


@pytest.mark.slow
def test_screenshot_refuses_a_probe_outside_the_test_split(capsys, monkeypatch, tmp_path):
    out_png = tmp_path / "shot.png"
    done = _main("screenshot", "--out", out_png, "--probe", "99999")
    assert done.returncode == 2 and done.stdout == ""
    one_error_line(done.stderr, "--probe 99999", "1,000 digits", "from 0 to 999")
    assert not out_png.exists()
    calls = []
    _fake_app(monkeypatch, calls)
    code, _, _ = call(capsys, "screenshot", "--out", out_png, "--probe", "999")
    assert code == 0 and calls[0][2] == 999  # the last digit of the split is fine


@pytest.mark.slow
def test_screenshot_failure_and_bad_size(capsys, monkeypatch, tmp_path):
    _fake_app(monkeypatch, [], status=3)
    code, _, err = call(capsys, "screenshot", "--out", tmp_path / "a.png")
    assert code == 1
    one_error_line(err, "status 3")
    code, _, err = call(capsys, "screenshot", "--out", tmp_path / "a.png", "--size", "big")
    assert code == 2 and "WIDTHxHEIGHT" in err


# ---- failures in general -----------------------------------------------------------------
@pytest.mark.slow
def test_unexpected_error_is_one_line_unless_debug(capsys, monkeypatch):

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")
    monkeypatch.setattr(datasets, "load_dataset", boom)
    code, out, err = call(capsys, "train", *QUICK)
    assert code == 1 and out == ""
    one_error_line(err, "RuntimeError: disk on fire second line")
    code, _, err = call(capsys, "train", *QUICK, "--debug")
    assert code == 1
    assert "Traceback" in err and "disk on fire" in err


def test_ctrl_c_exits_130(capsys, monkeypatch):

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(datasets, "load_dataset", interrupt)
    code, _, err = call(capsys, "train")
    assert code == 130
    one_error_line(err, "interrupted")


# ---- as a program ------------------------------------------------------------------------
def _main(*argv):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, argv)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


@pytest.mark.slow
def test_program_exit_statuses(tmp_path, trained):
    ok = _main("train", *QUICK, "--json")
    assert ok.returncode == 0, ok.stderr
    assert TRAIN_KEYS <= set(json.loads(ok.stdout.splitlines()[-1]))
    assert ok.stderr == ""  # no progress bar when stderr is not a terminal
    bad = _main("train", "--batch-size", "0")
    assert bad.returncode == 2 and "--batch-size" in bad.stderr
    failed = _main("eval", "--model", tmp_path / "missing.npz", "--json")
    assert failed.returncode == 1 and failed.stdout == ""
    one_error_line(failed.stderr, "convscope eval: error:")


@pytest.mark.slow
def test_program_screenshot_of_the_real_window(tmp_path):
    out_png = tmp_path / "window.png"
    done = _main("screenshot", "--out", out_png, "--steps", "5", "--size", "1400x900",
                 "--tab", "insp", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["out"] == str(out_png)
    with Image.open(out_png) as im:
        assert im.size == (1400, 900)
        assert len(np.unique(np.asarray(im.convert("L")))) > 10  # a drawn window, not a blank image


@pytest.mark.slow
def test_program_screenshot_refuses_an_unknown_tab(tmp_path):
    done = _main("screenshot", "--out", tmp_path / "w.png", "--steps", "0", "--tab", "Nope")
    assert done.returncode == 1 and "no tab named 'Nope'" in done.stderr
    assert not (tmp_path / "w.png").exists()


@pytest.mark.slow
def test_cosine_schedule_decays_the_learning_rate(capsys, step_log):
    base = ("train", "--train-size", "100", "--test-size", "0", "--epochs", "3",
            "--batch-size", "10", "--lr", "0.05", "--json")
    code_c, out_c, _ = call(capsys, *base)
    constant_log = list(step_log)
    step_log.clear()
    code_s, out_s, _ = call(capsys, *base, "--lr-schedule", "cosine")
    assert code_c == code_s == 0
    constant, cosine = last_json(out_c), last_json(out_s)
    assert cosine["lr_schedule"] == "cosine" and cosine["lr"] == constant["lr"] == 0.05
    assert [lr for _, lr, _ in constant_log] == [0.05] * 30
    # epoch e of 3 runs at 0.05 * (1 + cos(pi * e / 3)) / 2: 0.05, 0.0375, 0.0125
    assert [e for e, _, _ in step_log] == [0] * 10 + [1] * 10 + [2] * 10
    assert [lr for _, lr, _ in step_log] == pytest.approx([0.05] * 10 + [0.0375] * 10
                                                          + [0.0125] * 10)
    assert cosine["train_loss"] != constant["train_loss"]


COSINE_RUN = ["--train-size", "100", "--test-size", "50", "--batch-size", "10", "--lr", "0.05",
              "--epochs", "2", "--lr-schedule", "cosine"]


def _stopped_after_epoch_1(capsys, monkeypatch, path) -> None:
    """The 2-epoch cosine run, saved after its first epoch and then stopped with Ctrl+C."""
    real = cli_train._save

    def save_then_stop(*args):
        real(*args)
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_train, "_save", save_then_stop)
    code, _, _ = call(capsys, "train", *COSINE_RUN, "--save", path)
    monkeypatch.setattr(cli_train, "_save", real)
    assert code == 130 and path.is_file()


@pytest.mark.slow
def test_resumed_cosine_run_goes_on_with_its_schedule(capsys, monkeypatch, tmp_path, step_log):
    code, out, _ = call(capsys, "train", *COSINE_RUN, "--json")
    straight, straight_log = last_json(out), list(step_log)
    assert code == 0
    step_log.clear()
    path, done = tmp_path / "run.npz", tmp_path / "done.npz"
    _stopped_after_epoch_1(capsys, monkeypatch, path)
    code, out, _ = call(capsys, "train", "--resume", path, "--save", done, "--json")
    resumed = last_json(out)
    assert code == 0
    assert step_log == straight_log  # the same lr and loss at every step
    assert [lr for _, lr, _ in step_log] == [0.05] * 10 + [pytest.approx(0.025)] * 10
    assert (resumed["lr_schedule"], resumed["lr"], resumed["epochs"]) == ("cosine", 0.05, 1)
    assert resumed["total_epochs"] == 2 and resumed["test_loss"] == straight["test_loss"]
    refusals = [([path, "--epochs", "2"], "past the end"), ([path, "--lr", "0.1"], "--lr 0.1"),
                ([done], "complete")]
    for argv, reason in refusals:
        code, out, err = call(capsys, "train", "--resume", *argv)
        assert code == 2 and out == ""
        one_error_line(err, "cosine schedule", "--lr-schedule", reason)


@pytest.mark.slow
def test_resuming_a_file_without_a_schedule_keeps_its_lr_constant(capsys, monkeypatch, tmp_path,
                                                                  step_log):
    path = tmp_path / "old.npz"
    _stopped_after_epoch_1(capsys, monkeypatch, path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["state/meta"].tobytes())
    del meta["lr_schedule"]  # as files were written before schedules were saved
    arrays["state/meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    step_log.clear()
    code, out, _ = call(capsys, "train", "--resume", path, "--json")
    assert code == 0 and last_json(out)["lr_schedule"] == "constant"
    assert [lr for _, lr, _ in step_log] == [meta["lr"]] * 10
