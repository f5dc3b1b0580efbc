"""Downloads from a local HTTP server: good, dead, corrupt and interrupted mirrors."""
import hashlib
import http.server
import io
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from convscope.engine.data import datasets, download
from convscope.engine.data.idx import DataError, gzip_bytes, idx_bytes

RNG = np.random.default_rng(1)
FILES = {
    "train-images-idx3-ubyte.gz": gzip_bytes(idx_bytes(RNG.integers(0, 256, (30, 28, 28),
                                                                    dtype=np.uint8))),
    "train-labels-idx1-ubyte.gz": gzip_bytes(idx_bytes(np.arange(30, dtype=np.uint8) % 10)),
    "t10k-images-idx3-ubyte.gz": gzip_bytes(idx_bytes(RNG.integers(0, 256, (12, 28, 28),
                                                                   dtype=np.uint8))),
    "t10k-labels-idx1-ubyte.gz": gzip_bytes(idx_bytes(np.arange(12, dtype=np.uint8) % 10)),
}
SUMS = {name: hashlib.md5(data).hexdigest() for name, data in FILES.items()}


class Handler(http.server.BaseHTTPRequestHandler):
    """/good/F serves F, /corrupt/F a damaged copy, /cut/F half of it with the full length."""
    requests: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        mode, _, name = self.path.strip("/").partition("/")
        if name not in FILES or mode not in ("good", "corrupt", "cut"):
            self.send_error(404)
            return
        body = FILES[name]
        if mode == "corrupt":
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if mode == "cut" else body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    Handler.requests = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture()
def dead_url():
    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _fetch(tmp_path, mirrors):
    return download.fetch_dataset("mnist", tmp_path, progress=False, mirrors=mirrors,
                                  sums=SUMS, timeout=5)


def _listing(folder: Path):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
def test_good_mirror(tmp_path, server):
    folder = _fetch(tmp_path, [server + "/good/"])
    assert folder == tmp_path / "mnist"
    assert _listing(folder) == sorted(FILES)
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data


@pytest.mark.slow
def test_dead_then_good(tmp_path, server, dead_url):
    folder = _fetch(tmp_path, [dead_url, server + "/good"])
    assert _listing(folder) == sorted(FILES)


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["corrupt", "cut", "missing"])
def test_bad_mirror_then_good(tmp_path, server, bad):
    folder = _fetch(tmp_path, [f"{server}/{bad}/", f"{server}/good/"])
    assert _listing(folder) == sorted(FILES)
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data
    assert sum(p.startswith(f"/{bad}/") for p in Handler.requests) == 4


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["corrupt", "cut", "missing", "dead"])
def test_only_bad_mirrors_keep_nothing(tmp_path, server, dead_url, bad):
    url = dead_url if bad == "dead" else f"{server}/{bad}/"
    with pytest.raises(DataError) as info:
        _fetch(tmp_path, [url])
    message = str(info.value)
    assert "\n" not in message and "could not download train-images-idx3-ubyte.gz" in message
    assert {"corrupt": "md5", "cut": "broke off", "missing": "404", "dead": "refused"}[bad] \
        in message
    assert _listing(tmp_path / "mnist") == []  # no partial, no corrupt file


def test_all_mirrors_named_in_error(tmp_path, server):
    with pytest.raises(DataError, match=r"md5 .*; .*broke off after \d+ of \d+ bytes"):
        _fetch(tmp_path, [f"{server}/corrupt/", f"{server}/cut/"])


@pytest.mark.slow
def test_cache_is_reused_and_checked(tmp_path, server):
    _fetch(tmp_path, [server + "/good/"])
    assert len(Handler.requests) == 4
    _fetch(tmp_path, [server + "/good/"])
    assert len(Handler.requests) == 4  # all four verified in the cache, none fetched
    damaged = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(b"junk")
    _fetch(tmp_path, [server + "/good/"])
    assert Handler.requests[4:] == ["/good/t10k-labels-idx1-ubyte.gz"]
    assert damaged.read_bytes() == FILES["t10k-labels-idx1-ubyte.gz"]


@pytest.mark.slow
def test_progress_bar_on_a_terminal(tmp_path, server, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for progress, expect in ((True, True), (False, False)):
        stderr = Terminal()
        monkeypatch.setattr("sys.stderr", stderr)
        download.download_file("t10k-labels-idx1-ubyte.gz", SUMS["t10k-labels-idx1-ubyte.gz"],
                               [server + "/good/"], tmp_path, progress=progress)
        assert ("t10k-labels-idx1-ubyte.gz" in stderr.getvalue()) is expect


@pytest.mark.slow
def test_no_progress_bar_when_not_a_terminal(tmp_path, server, monkeypatch):
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    download.download_file("t10k-labels-idx1-ubyte.gz", SUMS["t10k-labels-idx1-ubyte.gz"],
                           [server + "/good/"], tmp_path, progress=True)
    assert stderr.getvalue() == ""


@pytest.mark.slow
def test_cache_root(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVSCOPE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.cache_root() == tmp_path / "home" / ".cache" / "convscope"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_root() == tmp_path / "xdg" / "convscope"
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "mine"))
    assert download.cache_root() == tmp_path / "mine"
    assert download.cache_root(tmp_path / "arg") == tmp_path / "arg"


@pytest.mark.slow
def test_published_sums_are_complete():
    for name in ("mnist", "fashion"):
        assert sorted(download.MD5[name]) == sorted(FILES)
        assert all(len(s) == 32 for s in download.MD5[name].values())
        assert download.MIRRORS[name]


@pytest.mark.slow
def test_load_dataset_mnist_downloads_into_the_cache(tmp_path, server, monkeypatch):
    monkeypatch.setitem(download.MIRRORS, "mnist", [server + "/cut/", server + "/good/"])
    monkeypatch.setitem(download.MD5, "mnist", SUMS)
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path))
    ds = datasets.load_dataset("mnist", progress=False)
    assert ds.name == "mnist" and ds.class_names == [str(d) for d in range(10)]
    assert ds.x_train.shape == (30, 28, 28) and ds.x_test.shape == (12, 28, 28)
    np.testing.assert_array_equal(ds.y_train, np.arange(30) % 10)
    assert _listing(tmp_path / "mnist") == sorted(FILES)


@pytest.mark.slow
def test_load_dataset_fashion_downloads_when_not_installed(tmp_path, server, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_SYSTEM_DIRS", [tmp_path / "not-installed"])
    monkeypatch.setitem(download.MIRRORS, "fashion", [server + "/good/"])
    monkeypatch.setitem(download.MD5, "fashion", SUMS)
    ds = datasets.load_dataset("fashion", cache_dir=tmp_path / "cache", progress=False)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert len(ds.x_train) == 30 and len(ds.y_test) == 12
    assert _listing(tmp_path / "cache" / "fashion") == sorted(FILES)


def test_offline_is_said_in_one_plain_sentence(tmp_path):
    with pytest.raises(DataError) as info:  # .invalid names never resolve (RFC 2606)
        _fetch(tmp_path, ["http://mirror-one.invalid/", "https://mirror-two.invalid/"])
    message = str(info.value)
    assert "seems to be offline" in message and "invalid" not in message and "\n" not in message
