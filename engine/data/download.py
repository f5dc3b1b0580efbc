"""Download the full MNIST and Fashion-MNIST into the user cache, verified against their md5.

Each file is fetched to a temporary name beside its final one, checked (length and md5), then
renamed; a mirror that is dead, serves a corrupt file or breaks off is skipped for the next
one, and no partial or corrupt file is ever kept or used. A cached file is checked again each
time it is used. Mirrors and sums are module data (tests replace them) or arguments.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from convscope.engine.data.idx import DataError
from convscope.engine.files import places

MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}
MD5 = {  # the sums published with each dataset
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
CHUNK = 1 << 16
FETCH_ERRORS = (OSError, http.client.HTTPException, ValueError)  # URLError is an OSError


def cache_root(cache_dir=None) -> Path:
    """``cache_dir``, else the download cache of ``places.cache_dir()`` ($CONVSCOPE_CACHE, else
    the platform's cache folder)."""
    return Path(cache_dir) if cache_dir is not None else places.cache_dir()


def md5_of(path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _fetch(url: str, tmp: Path, md5: str, progress: bool, timeout: float) -> None:
    """Write ``url`` to ``tmp``; raise if the transfer breaks off or the md5 differs."""
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        show = progress and sys.stderr is not None and sys.stderr.isatty()
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                  desc=url.rsplit("/", 1)[-1], disable=not show, leave=False) as bar:
            while block := response.read(CHUNK):
                out.write(block)
                digest.update(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise DataError(f"transfer broke off after {received} of {total} bytes")
    if digest.hexdigest() != md5:
        raise DataError(f"md5 {digest.hexdigest()} differs from the published {md5}")


def download_file(filename: str, md5: str, mirrors, folder, progress: bool = True,
                  timeout: float = 30.0) -> Path:
    """``folder/filename`` fetched from the first mirror that serves it whole and right."""
    folder = Path(folder)
    dest = folder / filename
    tmp = folder / f".{filename}.{os.getpid()}.{threading.get_ident()}.part"
    errors = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        try:
            _fetch(url, tmp, md5, progress, timeout)
            os.replace(tmp, dest)
            return dest
        except FETCH_ERRORS as e:
            errors.append(f"{url}: {_reason(e)}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"could not download {filename} into {folder}: " + "; ".join(errors))


def fetch_dataset(name: str, cache_dir=None, progress: bool = True, mirrors=None, sums=None,
                  timeout: float = 30.0) -> Path:
    """The cache folder holding ``name``'s four verified files, downloading what is missing.
    A cached file whose md5 is wrong is deleted and fetched again."""
    if name not in MD5 and sums is None:
        raise DataError(f"no download known for dataset {name!r}")
    sums = MD5[name] if sums is None else sums
    mirrors = MIRRORS[name] if mirrors is None else mirrors
    folder = cache_root(cache_dir) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{folder}: cannot create the cache folder ({e.strerror or e})") from None
    for filename, md5 in sums.items():
        path = folder / filename
        if path.is_file() and md5_of(path) == md5:
            continue
        path.unlink(missing_ok=True)
        download_file(filename, md5, mirrors, folder, progress, timeout)
    return folder
