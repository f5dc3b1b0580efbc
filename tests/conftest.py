"""Shared fixtures. Real data from ../shared/data is optional: tests using it skip without it."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def _read_idx(path: Path, offset: int) -> np.ndarray:
    return np.frombuffer(gzip.open(path).read(), np.uint8, offset=offset)


@pytest.fixture(scope="session")
def official_test_set():
    """The official MNIST test set (10,000 digits) from ../shared/data, or skip."""
    images = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
    labels = SHARED_MNIST / "t10k-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        pytest.skip("../shared/data/mnist is not available")
    return _read_idx(images, 16).reshape(-1, 28, 28), _read_idx(labels, 8)
