"""train, eval and predict on a folder of class folders of pictures; data of other classes
refused with one line."""
from __future__ import annotations

import glyphs
import numpy as np
import pytest
from cli_run import call, last_json


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def shapes(tmp_path, cache):
    """A trained model on a three-class folder: (folder, model file)."""
    root = glyphs.write_folder(tmp_path / "shapes", ["circle", "line", "zigzag"], 30)
    (root / "line" / "junk.png").write_text("not a picture")
    return root, tmp_path / "m.npz"


@pytest.mark.slow
def test_train_eval_predict_on_a_picture_folder(capsys, tmp_path, shapes):
    root, model = shapes
    code, out, err = call(capsys, "train", "--data", root, "--epochs", "4", "--batch-size",
                          "16", "--lr", "0.05", "--momentum", "0.9", "--save", model, "--json")
    assert code == 0, err
    result = last_json(out)
    assert result["class_names"] == ["circle", "line", "zigzag"]
    assert result["test_size"] == 15 and result["test_accuracy"] > 0.8  # chance 1/3

    code, out, err = call(capsys, "eval", "--model", model, "--data", root, "--json")
    assert code == 0, err
    ev = last_json(out)
    assert ev["class_names"] == ["circle", "line", "zigzag"]
    assert np.array(ev["confusion"]).shape == (3, 3) and ev["test_accuracy"] > 0.8

    code, out, err = call(capsys, "eval", "--model", model, "--data", root)
    assert code == 0 and "skipped 1 file (1 unreadable): see" in out
    assert "zigzag" in out

    rng = np.random.default_rng(9)
    pictures = []
    for c in range(3):
        pictures.append(tmp_path / f"p{c}.png")
        glyphs.glyph(c, rng, 64, light=True).save(pictures[-1])
    code, out, err = call(capsys, "predict", "--model", model, *pictures, "--json")
    assert code == 0, err
    predictions = last_json(out)["predictions"]
    names = ["circle", "line", "zigzag"]
    for p in predictions:
        assert p["label"] == names[p["predicted"]] and len(p["probabilities"]) == 3
    assert sum(p["predicted"] == c for c, p in enumerate(predictions)) >= 2


@pytest.mark.slow
def test_data_of_other_classes_is_refused(capsys, tmp_path, shapes):
    root, model = shapes
    code, _, err = call(capsys, "train", "--data", root, "--train-size", "20", "--test-size",
                        "0", "--save", model)
    assert code == 0, err
    other = glyphs.write_folder(tmp_path / "other", ["a", "b", "c", "d"], 3)
    for argv in (("eval", "--model", model, "--data", other),
                 ("eval", "--model", model, "--data", "mini"),
                 ("train", "--resume", model, "--data", other, "--train-size", "4")):
        code, out, err = call(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
        assert "the model tells apart 3 classes (circle, line, zigzag)" in lines[0]
    code, out, err = call(capsys, "train", "--resume", model, "--epochs", "1", "--json")
    assert code == 0, err  # its own folder, from the file
    assert last_json(out)["class_names"] == ["circle", "line", "zigzag"]


def test_a_folder_of_one_class_is_refused_with_one_line(capsys, tmp_path, cache):
    root = glyphs.write_folder(tmp_path / "one", ["a"], 3)
    code, _, err = call(capsys, "train", "--data", root)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "at least two" in lines[0], err


def test_eval_prints_its_table_under_a_blank_line(capsys, tmp_path, cache):
    model = tmp_path / "m.npz"
    code, _, err = call(capsys, "train", "--train-size", "32", "--test-size", "0", "--save",
                        model)
    assert code == 0, err
    code, out, err = call(capsys, "eval", "--model", model, "--test-size", "20")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("20 test images") and lines[1] == ""
    assert "failed" not in out and lines[2].startswith("class")
