"""IDX reading and writing: round trips, and one clear error per kind of bad file."""
import gzip

import numpy as np
import pytest

from convscope.engine.data.idx import (
    DataError,
    idx_bytes,
    read_idx_images,
    read_idx_labels,
    read_idx_pair,
    write_idx,
)

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8)
LABELS = np.array([0, 9, 3, 3, 7], dtype=np.uint8)


def _raise_message(func, path):
    with pytest.raises(DataError) as info:
        func(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


@pytest.mark.slow
@pytest.mark.parametrize("name", ["x-images-idx3-ubyte", "x-images-idx3-ubyte.gz"])
def test_images_round_trip(tmp_path, name):
    write_idx(tmp_path / name, IMAGES)
    got = read_idx_images(tmp_path / name)
    assert got.dtype == np.uint8 and got.shape == (5, 28, 28)
    np.testing.assert_array_equal(got, IMAGES)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["x-labels-idx1-ubyte", "x-labels-idx1-ubyte.gz"])
def test_labels_round_trip(tmp_path, name):
    write_idx(tmp_path / name, LABELS)
    got = read_idx_labels(tmp_path / name)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, LABELS)


def test_header_layout_is_mnist():
    data = idx_bytes(IMAGES)
    assert data[:16] == bytes.fromhex("00000803" "00000005" "0000001c" "0000001c")
    assert len(data) == 16 + 5 * 784
    assert idx_bytes(LABELS)[:8] == bytes.fromhex("00000801" "00000005")


@pytest.mark.slow
def test_gzip_output_is_reproducible(tmp_path):
    write_idx(tmp_path / "a.gz", IMAGES)
    write_idx(tmp_path / "b.gz", IMAGES)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gz", "b.gz"]  # no temp files left


@pytest.mark.slow
def test_raw_gzip_recognised_without_gz_name(tmp_path):
    (tmp_path / "images").write_bytes(gzip.compress(idx_bytes(IMAGES)))
    np.testing.assert_array_equal(read_idx_images(tmp_path / "images"), IMAGES)


@pytest.mark.slow
def test_write_rejects_other_dtypes(tmp_path):
    with pytest.raises(ValueError):
        write_idx(tmp_path / "x", IMAGES.astype(np.float32))
    with pytest.raises(ValueError):
        write_idx(tmp_path / "x", IMAGES[0])


@pytest.mark.slow
def test_missing_file(tmp_path):
    message = _raise_message(read_idx_images, tmp_path / "nope-idx3-ubyte.gz")
    assert "not found" in message


@pytest.mark.slow
def test_wrong_magic(tmp_path):
    path = tmp_path / "labels-as-images"
    write_idx(path, LABELS)
    message = _raise_message(read_idx_images, path)
    assert "wrong magic" in message and "0x00000801" in message


def test_labels_file_with_image_magic(tmp_path):
    path = tmp_path / "images.gz"
    write_idx(path, IMAGES)
    assert "wrong magic" in _raise_message(read_idx_labels, path)


@pytest.mark.slow
@pytest.mark.parametrize("cut", [3, 10, 16 + 784 * 5 - 1])
def test_truncated(tmp_path, cut):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(IMAGES)[:cut])
    assert "truncated" in _raise_message(read_idx_images, path)


@pytest.mark.slow
def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "short-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES))[:200])
    assert "damaged gzip" in _raise_message(read_idx_images, path)


@pytest.mark.slow
def test_trailing_garbage(tmp_path):
    path = tmp_path / "long-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(LABELS) + b"junk"))
    message = _raise_message(read_idx_labels, path)
    assert "trailing garbage" in message and "4 extra bytes" in message


@pytest.mark.slow
def test_labels_outside_0_to_9(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([1, 2, 10, 255], dtype=np.uint8))
    message = _raise_message(read_idx_labels, path)
    assert "label 10 at index 2 is outside 0-9" in message


@pytest.mark.slow
def test_not_gzip_when_named_gz(tmp_path):
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(idx_bytes(IMAGES))
    assert "not a gzip file" in _raise_message(read_idx_images, path)


@pytest.mark.slow
def test_wrong_image_size(tmp_path):
    path = tmp_path / "big-idx3-ubyte"
    write_idx(path, np.zeros((2, 32, 32), dtype=np.uint8))
    assert "32x32" in _raise_message(read_idx_images, path)


def test_directory_instead_of_file(tmp_path):
    assert "folder" in _raise_message(read_idx_labels, tmp_path)


def test_count_mismatch(tmp_path):
    write_idx(tmp_path / "i.gz", IMAGES)
    write_idx(tmp_path / "l.gz", LABELS[:4])
    with pytest.raises(DataError, match=r"5 images but .*l\.gz has 4 labels"):
        read_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz")


@pytest.mark.slow
def test_pair_reads_both(tmp_path):
    write_idx(tmp_path / "i.gz", IMAGES)
    write_idx(tmp_path / "l", LABELS)
    images, labels = read_idx_pair(tmp_path / "i.gz", tmp_path / "l")
    np.testing.assert_array_equal(images, IMAGES)
    np.testing.assert_array_equal(labels, LABELS)
