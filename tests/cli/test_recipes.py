"""Each preset's recipe reaches the trainer whole; every setting has an option that overrides
it; the new settings show in --help, --json and model files, and resume."""
from __future__ import annotations

import json

import numpy as np
import pytest

from convscope import cli
from convscope.engine.data.augment import KINDS
from convscope.engine.files.checkpoint import load_model
from convscope.engine.net.train import Trainer
from convscope.engine.recipes import RECIPE_KEYS, RECIPES, recipe


def call(capsys, *argv):
    code = cli.run([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def started(monkeypatch):
    """The settings a train command's trainer starts its first epoch with (then Ctrl+C)."""
    seen = {}

    def record(self, should_stop=None, on_step=None):
        seen.update(lr=self.schedule["base_lr"], lr_schedule=self.schedule["name"],
                    epochs=self.schedule["epochs"], batch_size=self.batch_size,
                    plain_epochs=self.schedule.get("plain_epochs", 0),
                    label_smoothing=self.label_smoothing,
                    momentum=self.momentum, nesterov=self.optimizer.nesterov,
                    weight_decay=self.optimizer.weight_decay, augment=self.augment,
                    filters=self.model.config["filters"], preset=self.model.config["preset"],
                    train_size=len(self.x_train))
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "run_epoch", record)
    return seen


@pytest.mark.parametrize("preset", list(RECIPES))
def test_a_preset_alone_runs_its_whole_recipe(capsys, started, preset):
    code, _, _ = call(capsys, "train", "--preset", preset)
    assert code == 130
    assert {k: started[k] for k in RECIPE_KEYS} == recipe(preset)
    assert started["preset"] == preset and started["train_size"] == 9000  # mini, all of it


def test_no_preset_is_the_design_notes_recipe(capsys, started):
    code, _, _ = call(capsys, "train")
    assert code == 130 and started["preset"] == "seed"
    assert {k: started[k] for k in RECIPE_KEYS} == recipe("seed")
    assert (started["lr"], started["batch_size"], started["augment"]) == (0.005, 1, ())


def test_every_setting_of_a_recipe_can_be_overridden(capsys, started):
    code, _, _ = call(capsys, "train", "--preset", "best", "--filters", "4", "--epochs", "2",
                      "--lr", "0.01", "--lr-schedule", "constant", "--batch-size", "8",
                      "--momentum", "0.5", "--no-nesterov", "--weight-decay", "0",
                      "--augment", "none", "--plain-epochs", "1", "--label-smoothing", "0.2")
    assert code == 130
    assert {k: started[k] for k in RECIPE_KEYS} == {
        "filters": 4, "epochs": 2, "lr": 0.01, "lr_schedule": "constant", "batch_size": 8,
        "momentum": 0.5, "nesterov": False, "weight_decay": 0.0, "augment": (),
        "plain_epochs": 1, "label_smoothing": 0.2}


@pytest.mark.parametrize("epochs,plain", [(None, RECIPES["best"]["plain_epochs"]),
                                          (RECIPES["best"]["epochs"] // 2,
                                           RECIPES["best"]["plain_epochs"] // 2),
                                          (2, 0)])
def test_fewer_epochs_keep_the_recipe_s_share_of_plain_ones(capsys, started, epochs, plain):
    code, _, _ = call(capsys, "train", "--preset", "best",
                      *(("--epochs", epochs) if epochs else ()))
    assert code == 130 and started["plain_epochs"] == plain


def test_more_plain_epochs_than_epochs_is_bad_usage(capsys):
    code, out, err = call(capsys, "train", "--preset", "best", "--epochs", "2",
                          "--plain-epochs", "3")
    assert code == 2 and out == ""
    assert "--plain-epochs 3 is more than the 2 epochs" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("given,kinds", [("rotate,shift", ("shift", "rotate")),
                                         ("elastic", ("elastic",)), ("none", ())])
def test_augment_kinds_parse(capsys, started, given, kinds):
    code, _, _ = call(capsys, "train", "--preset", "deep", "--augment", given)
    assert code == 130 and started["augment"] == kinds


def test_augment_alone_and_no_augment(capsys, started):
    assert call(capsys, "train", "--augment")[0] == 130 and started["augment"] == ("shift",)
    assert call(capsys, "train", "--preset", "best", "--no-augment")[0] == 130
    assert started["augment"] == ()


def test_an_unknown_augmentation_is_bad_usage(capsys):
    code, out, err = call(capsys, "train", "--augment", "shift,zoom")
    assert code == 2 and out == ""
    assert "unknown augmentation 'zoom'" in err.strip().splitlines()[-1]


def test_help_names_the_new_options(capsys):
    code, out, _ = call(capsys, "train", "--help")
    assert code == 0
    for word in ("--weight-decay", "--nesterov", "onecycle", "--augment", "--plain-epochs",
                 "--label-smoothing",
                 *KINDS):
        assert word in out


@pytest.mark.slow
def test_a_short_best_run_learns_and_keeps_its_recipe(capsys, tmp_path):
    """best's recipe, smaller and shorter: it learns; --json and the model file carry every
    setting; a resumed run goes on with them and with the rest of its onecycle schedule."""
    path = tmp_path / "best.npz"
    code, out, _ = call(capsys, "train", "--preset", "best", "--filters", "4",
                        "--train-size", "1200", "--test-size", "300", "--epochs", "2",
                        "--plain-epochs", "1", "--save", path, "--json")
    assert code == 0
    result = json.loads(out.splitlines()[-1])
    assert result["test_accuracy"] > 0.6
    assert (result["lr_schedule"], result["nesterov"], result["weight_decay"]) == (
        "onecycle", True, 5e-4)
    assert result["augment"] == list(RECIPES["best"]["augment"])
    assert result["plain_epochs"] == 1
    assert result["label_smoothing"] == RECIPES["best"]["label_smoothing"] > 0
    _, state, extra = load_model(path)
    meta = state["meta"]
    assert (meta["nesterov"], meta["weight_decay"], meta["augment"]) == (
        True, 5e-4, list(RECIPES["best"]["augment"]))
    assert meta["lr_schedule"]["name"] == "onecycle" and extra["augment"] == meta["augment"]
    assert meta["lr_schedule"]["plain_epochs"] == 1
    assert meta["label_smoothing"] == extra["label_smoothing"] == RECIPES["best"]["label_smoothing"]
    code, out, err = call(capsys, "train", "--resume", path, "--json")
    assert code == 2 and "onecycle schedule" in err and "complete" in err


@pytest.mark.slow
def test_resume_keeps_the_run_settings_unless_given(capsys, tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    code, _, _ = call(capsys, "train", "--preset", "deep", "--filters", "2", "--train-size",
                      "200", "--test-size", "0", "--epochs", "1", "--lr-schedule", "constant",
                      "--nesterov", "--weight-decay", "0.001", "--augment", "rotate,elastic",
                      "--save", path)
    assert code == 0
    seen = {}

    def record(self, should_stop=None, on_step=None):
        seen.update(nesterov=self.optimizer.nesterov, decay=self.optimizer.weight_decay,
                    augment=self.augment)
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "run_epoch", record)
    assert call(capsys, "train", "--resume", path)[0] == 130
    assert seen == {"nesterov": True, "decay": 0.001, "augment": ("rotate", "elastic")}
    assert call(capsys, "train", "--resume", path, "--no-nesterov", "--augment", "none")[0] == 130
    assert seen == {"nesterov": False, "decay": 0.001, "augment": ()}


@pytest.mark.slow
def test_an_old_file_with_a_boolean_augment_flag_still_resumes(capsys, tmp_path, monkeypatch):
    path = tmp_path / "old.npz"
    assert call(capsys, "train", "--train-size", "100", "--test-size", "0", "--augment",
                "--save", path)[0] == 0
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["state/meta"].tobytes())
    for key in ("augment", "nesterov", "weight_decay"):  # as files were written before them
        del meta[key]
    extra = json.loads(arrays["extra"].tobytes())
    extra["augment"] = True
    arrays["state/meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    arrays["extra"] = np.frombuffer(json.dumps(extra).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    code, out, _ = call(capsys, "train", "--resume", path, "--json")
    assert code == 0
    result = json.loads(out.splitlines()[-1])
    assert (result["augment"], result["nesterov"], result["weight_decay"]) == (["shift"],
                                                                              False, 0.0)


@pytest.mark.parametrize("meta_change,words", [
    ({"augment": ["shift", "zoom"]}, "augmentation"), ({"augment": "shift"}, "augmentation"),
    ({"nesterov": "yes"}, "nesterov"), ({"weight_decay": -1}, "weight decay"),
    ({"label_smoothing": 0.9}, "label smoothing"),
    ({"lr_schedule": {"name": "cosine", "base_lr": 0.1, "start_epoch": 0, "epochs": 2,
                      "plain_epochs": 3}}, "learning-rate schedule")])
def test_a_model_file_with_bad_recipe_settings_is_refused(capsys, tmp_path, meta_change, words):
    path = tmp_path / "run.npz"
    assert call(capsys, "train", "--train-size", "50", "--test-size", "0", "--save", path)[0] == 0
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = {**json.loads(arrays["state/meta"].tobytes()), **meta_change}
    arrays["state/meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    code, _, err = call(capsys, "train", "--resume", path)
    assert code == 1 and words in err and len(err.strip().splitlines()) == 1


def test_predict_with_the_shipped_best_weights(capsys, tmp_path):
    """Ten embedded test digits (never trained on) saved as black-on-white PNGs, as a
    person would draw them: the best weights read all of them."""
    from PIL import Image

    from convscope.engine.data.datasets import ASSETS, load_dataset
    mini = load_dataset("mini", progress=False)
    files = []
    for i in range(10):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(255 - mini.x_test[i]).resize((112, 112)).save(path)
        files.append(path)
    code, out, _ = call(capsys, "predict", "--model", ASSETS / "best.npz", *files, "--json")
    assert code == 0
    predicted = [p["predicted"] for p in json.loads(out.splitlines()[-1])["predictions"]]
    assert predicted == mini.y_test[:10].tolist()
