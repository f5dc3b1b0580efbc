"""Data files and downloads within bounds: gzip bombs, lying headers, special files, a cache
that holds only verified files, downloads with a size cap and a deadline."""
from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from convscope.engine.data import datasets, download
from convscope.engine.data.idx import (
    MAX_IMAGES,
    DataError,
    gzip_bytes,
    idx_bytes,
    read_idx_images,
    read_idx_labels,
    write_idx,
)

ROOT = Path(__file__).resolve().parents[2]
LABELS = np.arange(20, dtype=np.uint8) % 10


def _gzip_zeros(header: bytes, size: int) -> bytes:
    """gzip of ``header`` then ``size`` zero bytes, built without holding them in memory."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [z.compress(header)]
    block = bytes(1 << 20)
    for _ in range(size >> 20):
        parts.append(z.compress(block))
    return b"".join(parts) + z.flush()


def _peak_mb_of_reading(path: Path, reader: str) -> tuple[str, float]:
    """(error line, peak resident MB) of reading ``path`` in a fresh process."""
    code = textwrap.dedent(f"""
        import resource, sys
        from convscope.engine.data.idx import DataError, {reader}
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            {reader}(sys.argv[1])
            print("loaded")
        except DataError as e:
            print(e)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, timeout=60,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return out[0], float(out[1])


@pytest.mark.slow
def test_a_gzip_bomb_stops_where_the_header_says_the_data_ends(tmp_path):
    """A label file declaring 20 labels followed by 256 MB of zeros (about 1 MB gzipped):
    refused after reading 20 bytes and a megabyte more, never decompressed whole."""
    header = idx_bytes(LABELS)
    bomb = tmp_path / "train-labels-idx1-ubyte.gz"
    bomb.write_bytes(_gzip_zeros(header, 256 << 20))
    assert bomb.stat().st_size < 2 << 20
    t0 = time.perf_counter()
    line, peak = _peak_mb_of_reading(bomb, "read_idx_labels")
    assert "trailing garbage: more than 1,048,576 extra bytes" in line and bomb.name in line
    assert peak < 64 and time.perf_counter() - t0 < 20


@pytest.mark.slow
def test_an_image_bomb_costs_what_its_header_declares(tmp_path):
    """An image file declaring 100,000 images whose stream holds 160 MB: the 78 MB the
    header declares are read, the rest refused unread."""
    header = (0x803).to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in (100_000, 28, 28))
    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    bomb.write_bytes(_gzip_zeros(header, 160 << 20))
    line, peak = _peak_mb_of_reading(bomb, "read_idx_images")
    assert "trailing garbage" in line
    assert peak < 78 + 64


def test_a_header_declaring_too_many_images_is_refused_before_reading(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    header = (0x803).to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in (2**31, 28, 28))
    path.write_bytes(gzip_bytes(header))
    with pytest.raises(DataError, match=f"more than the {MAX_IMAGES:,}"):
        read_idx_images(path)
    raw = tmp_path / "train-images-idx3-ubyte"  # a raw file's size is checked before reading
    raw.write_bytes(header[:4] + (5).to_bytes(4, "big") + header[8:] + bytes(784 * 4))
    with pytest.raises(DataError, match="truncated: 5 images need 3920 bytes"):
        read_idx_images(raw)


def test_labels_are_checked_against_the_dataset_classes(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([0, 1, 2, 5], np.uint8))
    assert list(read_idx_labels(path)) == [0, 1, 2, 5]
    with pytest.raises(DataError, match="label 5 at index 3 is outside 0-2"):
        read_idx_labels(path, num_classes=3)


def test_a_fifo_as_a_data_file_is_refused_without_blocking(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        os.mkfifo(folder / name)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="FIFO"):
        datasets.load_dir(folder)
    assert time.perf_counter() - t0 < 2


# ---- the download cache ------------------------------------------------------------------
FILES = {
    "train-images-idx3-ubyte.gz": gzip_bytes(idx_bytes(np.zeros((20, 28, 28), np.uint8))),
    "train-labels-idx1-ubyte.gz": gzip_bytes(idx_bytes(LABELS)),
    "t10k-images-idx3-ubyte.gz": gzip_bytes(idx_bytes(np.zeros((10, 28, 28), np.uint8))),
    "t10k-labels-idx1-ubyte.gz": gzip_bytes(idx_bytes(LABELS[:10])),
}


class Handler(http.server.BaseHTTPRequestHandler):
    """/good/F serves F; /endless/F streams zeros forever; /trickle/F a byte every 0.2 s;
    /liar/F announces a gigabyte."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        mode, _, name = self.path.strip("/").partition("/")
        body = FILES.get(name, b"")
        self.send_response(200)
        if mode in ("good", "liar"):
            self.send_header("Content-Length", str(2**30 if mode == "liar" else len(body)))
        self.end_headers()
        try:
            if mode == "good":
                self.wfile.write(body)
            elif mode == "endless":
                while True:
                    self.wfile.write(bytes(1 << 16))
            elif mode == "trickle":
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
        except OSError:
            pass  # the client hung up, as it should
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture()
def published(monkeypatch):
    sums = {name: download.hashlib.md5(data).hexdigest() for name, data in FILES.items()}
    monkeypatch.setitem(download.MD5, "mnist", sums)
    monkeypatch.setitem(download.SIZES, "mnist", {n: len(d) for n, d in FILES.items()})
    return sums


def test_an_uncompressed_file_in_the_cache_is_never_read(tmp_path, server, published,
                                                         monkeypatch):
    """A tampered raw label file beside the verified .gz (all labels 0) changes nothing."""
    monkeypatch.setitem(download.MIRRORS, "mnist", [server + "/good/"])
    first = datasets.load_dataset("mnist", cache_dir=tmp_path, progress=False)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(10, np.uint8))
    again = datasets.load_dataset("mnist", cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again.y_test, first.y_test)
    assert again.y_test.any()


@pytest.mark.parametrize("mode, words", [("endless", "more than the published"),
                                         ("liar", "announces 1,073,741,824 bytes"),
                                         ("trickle", "not finished after 1 s")])
@pytest.mark.slow
def test_downloads_have_a_size_cap_and_a_deadline(tmp_path, server, published, mode, words):
    name = "train-labels-idx1-ubyte.gz"
    t0 = time.perf_counter()
    with pytest.raises(DataError) as info:
        download.download_file(name, published[name], [f"{server}/{mode}/"], tmp_path,
                               progress=False, timeout=5, max_bytes=len(FILES[name]),
                               deadline=1.0)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert time.perf_counter() - t0 < 10
    assert list(tmp_path.iterdir()) == []  # no partial file kept


def test_a_stale_partial_download_is_removed_by_the_next(tmp_path, server, published):
    name = "t10k-labels-idx1-ubyte.gz"
    stale, recent = tmp_path / f".{name}.999.1.part", tmp_path / f".{name}.998.1.part"
    stale.write_bytes(b"x")
    recent.write_bytes(b"x")
    old = time.time() - 2 * download.STALE_PART
    os.utime(stale, (old, old))
    download.download_file(name, published[name], [server + "/good/"], tmp_path,
                           progress=False)
    assert not stale.exists() and recent.exists()  # a download in progress is left alone


def test_https_mirrors_come_first():
    for mirrors in download.MIRRORS.values():
        schemes = [m.split(":")[0] for m in mirrors]
        assert schemes == sorted(schemes, key=lambda s: s != "https") and schemes[0] == "https"
