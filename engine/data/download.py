"""Download the full MNIST and Fashion-MNIST into the user cache, verified against their md5.

Each file is fetched to a temporary name beside its final one, checked (length and md5), then
renamed; a mirror that is dead, serves a corrupt file or breaks off is skipped for the next
one, and no partial or corrupt file is ever kept or used. A transfer may not exceed the
file's published size (SIZES) nor take longer than ``deadline`` seconds in all (a server
trickling one byte at a time is cut off); https mirrors come first. A cached file is checked
again each time it is used, and only the published .gz files are ever read from the cache.
Temporary files left by a killed download are removed by the next one. Mirrors and sums are
module data (tests replace them) or arguments.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from convscope.engine.data.idx import DataError
from convscope.engine.files import places
from convscope.engine.files.guard import open_regular

MIRRORS = {  # https first; the plain http mirrors are a last resort (md5-checked all the same)
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion": [
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
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
SIZES = {  # published sizes in bytes: a transfer never goes past them
    "mnist": {"train-images-idx3-ubyte.gz": 9_912_422, "train-labels-idx1-ubyte.gz": 28_881,
              "t10k-images-idx3-ubyte.gz": 1_648_877, "t10k-labels-idx1-ubyte.gz": 4_542},
    "fashion": {"train-images-idx3-ubyte.gz": 26_421_880,
                "train-labels-idx1-ubyte.gz": 29_515,
                "t10k-images-idx3-ubyte.gz": 4_422_102, "t10k-labels-idx1-ubyte.gz": 5_148},
}
MAX_BYTES = 64 * 2**20  # any file without a published size
DEADLINE = 600.0  # seconds for one file from one mirror, however slowly it trickles in
STALE_PART = 3600.0  # a temporary download file older than this belongs to no download
CHUNK = 1 << 16
FETCH_ERRORS = (OSError, http.client.HTTPException, ValueError)  # URLError is an OSError


def cache_root(cache_dir=None) -> Path:
    """``cache_dir``, else the download cache of ``places.cache_dir()`` ($CONVSCOPE_CACHE, else
    the platform's cache folder)."""
    return Path(cache_dir) if cache_dir is not None else places.cache_dir()


def md5_of(path, max_bytes: int = MAX_BYTES) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open_regular(path, DataError, "data file", max_bytes) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path, md5: str) -> None:
    """DataError unless ``path`` is a regular file whose md5 is ``md5``."""
    found = md5_of(path)
    if found != md5:
        raise DataError(f"{path}: md5 {found} differs from the published {md5}; the file "
                        f"is damaged or not the published one")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _offline(error: BaseException) -> bool:
    """True for the errors of a computer without a network: no name lookup, no route."""
    reason = getattr(error, "reason", error)
    return isinstance(reason, socket.gaierror) or (
        isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH))


def _fetch(url: str, tmp: Path, md5: str, progress: bool, timeout: float,
           max_bytes: int, deadline: float) -> None:
    """Write ``url`` to ``tmp``; raise if the transfer breaks off, grows past ``max_bytes``,
    takes more than ``deadline`` seconds or the md5 differs."""
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    end = time.monotonic() + deadline
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise DataError(f"the server announces {total:,} bytes, more than the published "
                            f"{max_bytes:,}")
        show = progress and sys.stderr is not None and sys.stderr.isatty()
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                  desc=url.rsplit("/", 1)[-1], disable=not show, leave=False) as bar:
            while block := response.read1(CHUNK):  # whatever arrived, not a full chunk
                received += len(block)
                if received > max_bytes:
                    raise DataError(f"more than the published {max_bytes:,} bytes")
                if time.monotonic() > end:
                    raise DataError(f"not finished after {deadline:g} s ({received:,} bytes)")
                out.write(block)
                digest.update(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise DataError(f"transfer broke off after {received} of {total} bytes")
    if digest.hexdigest() != md5:
        raise DataError(f"md5 {digest.hexdigest()} differs from the published {md5}")


def _remove_stale_parts(folder: Path, filename: str) -> None:
    """Temporary files of downloads killed long ago (``.<filename>.<pid>.<thread>.part``)."""
    now = time.time()
    for part in folder.glob(f".{filename}.*.part"):
        try:
            if part.is_file() and now - part.stat().st_mtime > STALE_PART:
                part.unlink()
        except OSError:
            pass


def download_file(filename: str, md5: str, mirrors, folder, progress: bool = True,
                  timeout: float = 30.0, max_bytes: int = MAX_BYTES,
                  deadline: float = DEADLINE) -> Path:
    """``folder/filename`` fetched from the first mirror that serves it whole and right."""
    folder = Path(folder)
    dest = folder / filename
    _remove_stale_parts(folder, filename)
    tmp = folder / f".{filename}.{os.getpid()}.{threading.get_ident()}.part"
    errors, offline = [], True
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        try:
            _fetch(url, tmp, md5, progress, timeout, max_bytes, deadline)
            os.replace(tmp, dest)
            return dest
        except FETCH_ERRORS as e:
            errors.append(f"{url}: {_reason(e)}")
            offline = offline and _offline(e)
        finally:
            tmp.unlink(missing_ok=True)
    if offline and errors:  # one plain sentence, not every mirror's error
        raise DataError(f"cannot download {filename}: this computer seems to be offline "
                        f"(no download server could be reached)")
    raise DataError(f"could not download {filename} into {folder}: " + "; ".join(errors))


def fetch_dataset(name: str, cache_dir=None, progress: bool = True, mirrors=None, sums=None,
                  timeout: float = 30.0, deadline: float = DEADLINE) -> Path:
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
        size = SIZES.get(name, {}).get(filename, MAX_BYTES)
        try:
            if path.is_file() and md5_of(path, size) == md5:
                continue
        except DataError:
            pass  # too large: replaced below
        if path.is_file() or path.is_symlink():
            path.unlink()
        elif path.exists():
            raise DataError(f"{path}: not a regular file; remove it to download {filename}")
        download_file(filename, md5, mirrors, folder, progress, timeout, size, deadline)
    return folder
