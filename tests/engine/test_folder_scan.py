"""A large picture folder is listed compactly: a few dozen bytes a file, in arrays."""
from __future__ import annotations

import os
import tracemalloc

import glyphs
import numpy as np

from convscope.engine.data import folder_cache
from convscope.engine.data.folder_scan import scan
from convscope.engine.data.folders import load_image_folder


def _empty_files(root, classes, per_class):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            (root / c / f"picture_{i:05d}.png").write_bytes(b"x")  # listed, never read
    return root


def test_file_list_costs_a_few_dozen_bytes_a_file(tmp_path):
    root = _empty_files(tmp_path / "set", "abc", 1000)
    tracemalloc.start()
    try:
        names, files, paired, skipped = scan(root)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert names == ["a", "b", "c"] and len(files) == 3000 and not paired and not skipped
    # each name is 17 bytes; a list of (path, size, mtime) tuples held about 230 a file
    assert held / len(files) < 64, held
    assert peak / len(files) < 128, peak
    for a in (files.ends, files.sizes, files.mtimes, files.labels, files.split):
        assert isinstance(a, np.ndarray) and a.shape == (3000,)
    assert files.labels.tolist() == [0] * 1000 + [1] * 1000 + [2] * 1000


def test_files_listed_in_name_order_with_their_paths_and_facts(tmp_path):
    root = tmp_path / "d"
    for split in ("train", "test"):
        for c, names in (("x", ["b.png", "a10.png", "a2.png", "é.png"]), ("y", ["z.png"])):
            (root / split / c).mkdir(parents=True)
            for n in names:
                (root / split / c / n).write_bytes(b"12345")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "train" / "y" / "pipe.png")
    names, files, paired, skipped = scan(root)
    assert paired and names == ["x", "y"]
    assert [os.path.basename(files.path(i)) for i in range(5)] == \
        ["a10.png", "a2.png", "b.png", "é.png", "z.png"]  # byte order, as the key hashes them
    assert files.path(0) == os.path.join(str(root), "train", "x", "a10.png")
    assert files.split.tolist() == [0] * 5 + [1] * 5
    assert files.sizes.tolist() == [5] * 10
    entries = list(files.entries(str(root)))
    assert entries[0][0] == os.fsencode(os.path.join("train", "x", "a10.png"))
    assert entries[9][0] == os.fsencode(os.path.join("test", "y", "z.png"))
    assert entries[3][1:] == (5, os.stat(root / "train" / "x" / "é.png").st_mtime_ns)
    assert [(p.name, why) for p, why in skipped] == \
        [("pipe.png", "not a regular file")] * hasattr(os, "mkfifo")


def test_cache_written_a_chunk_at_a_time_reads_as_savez_wrote_it(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_cache, "WRITE_CHUNK", 1000)  # many chunks for a small set
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 28, 28), np.uint8)
    y = (np.arange(50) % 2).astype(np.uint8)
    path = tmp_path / "c.npz"
    folder_cache.save(path, x[:40], y[:40], x[40:], y[40:], ["a", "b"], "")
    with np.load(path) as saved:
        assert np.array_equal(saved["x_train"], x[:40]) and saved["x_test"].shape == (10, 28, 28)
    got = folder_cache.load(path, 50)
    assert got is not None and np.array_equal(got[0], x[:40]) and got[4] == ["a", "b"]


def test_a_folder_loads_the_same_through_the_compact_list(tmp_path):
    root = glyphs.write_folder(tmp_path / "g", ["p", "q"], 12)
    ds = load_image_folder(root, cache_dir=tmp_path / "c")
    assert len(ds.x_train) == 20 and np.bincount(ds.y_test).tolist() == [2, 2]
    again = load_image_folder(root, cache_dir=tmp_path / "c")
    assert np.array_equal(again.x_train, ds.x_train)
