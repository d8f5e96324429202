"""Downloads against a small HTTP server on 127.0.0.1: good, corrupt, dropped, missing."""
import dataclasses
import gzip
import hashlib
import io
import os
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from minitl.data import (CIFAR10, ChecksumError, DatasetNotFoundError, DownloadError, FashionMNIST,
                         download_file, write_cifar_batch, write_idx)
from minitl.data import catalog
from minitl.data.catalog import RemoteFile


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (kind, body)``; kind 'drop' stops halfway and hangs up."""

    timeout = 5  # a stuck client cannot hold a server thread for long

    def do_GET(self):
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        kind, body = route
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "drop":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # a CI proxy must not intercept 127.0.0.1
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.hits = {}, []
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home (so an empty download cache) and no $MINITL_DATA."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("MINITL_DATA", raising=False)
    return h


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(directory):
    return sorted(p for p in os.listdir(directory) if p.startswith(".") or p.endswith(".part"))


PAYLOAD = bytes(range(256)) * 1000  # 256 kB: several chunks


def test_good_file(server, tmp_path):
    server.routes["/f.gz"] = ("ok", PAYLOAD)
    dest = tmp_path / "d" / "f.gz"  # the directory is created
    assert download_file(server.base + "/f.gz", dest, sha256=_sha(PAYLOAD), progress=False) == str(dest)
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == []


def test_checksum_failure_keeps_nothing(server, tmp_path):
    server.routes["/f.gz"] = ("ok", PAYLOAD)
    dest = tmp_path / "f.gz"
    with pytest.raises(ChecksumError, match="SHA-256 mismatch.*not kept") as err:
        download_file(server.base + "/f.gz", dest, sha256="0" * 64, progress=False)
    assert "0" * 64 in str(err.value) and _sha(PAYLOAD) in str(err.value)
    assert os.listdir(tmp_path) == []


def test_dropped_connection_keeps_nothing(server, tmp_path):
    server.routes["/f.gz"] = ("drop", PAYLOAD)
    dest = tmp_path / "f.gz"
    with pytest.raises(DownloadError, match=f"connection dropped after .* of {len(PAYLOAD)} bytes"):
        download_file(server.base + "/f.gz", dest, sha256=_sha(PAYLOAD), progress=False, timeout=5)
    assert os.listdir(tmp_path) == []


def test_failed_download_leaves_the_old_file_alone(server, tmp_path):
    server.routes["/f.gz"] = ("drop", PAYLOAD)
    dest = tmp_path / "f.gz"
    dest.write_bytes(b"previous")
    with pytest.raises(DownloadError):
        download_file(server.base + "/f.gz", dest, progress=False, timeout=5)
    assert dest.read_bytes() == b"previous" and _leftovers(tmp_path) == []


def test_interrupted_download_keeps_nothing(server, tmp_path, monkeypatch):
    from minitl.data import download

    class Interrupting:
        def update(self, n):
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-download

        def close(self):
            pass

    monkeypatch.setattr(download, "_progress_bar", lambda *args: Interrupting())
    server.routes["/f.gz"] = ("ok", PAYLOAD)
    with pytest.raises(KeyboardInterrupt):
        download_file(server.base + "/f.gz", tmp_path / "f.gz", sha256=_sha(PAYLOAD))
    assert os.listdir(tmp_path) == []


def test_missing_file_is_a_download_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.base + "/nope", tmp_path / "x", progress=False)
    assert os.listdir(tmp_path) == []


def test_unverified_download_says_so(server, tmp_path, capsys):
    server.routes["/f"] = ("ok", b"abc")
    download_file(server.base + "/f", tmp_path / "f", sha256=None, progress=False)
    assert (tmp_path / "f").read_bytes() == b"abc"
    assert "unverified" in capsys.readouterr().err


def test_progress_goes_to_stderr(server, tmp_path, capsys):
    server.routes["/big.gz"] = ("ok", PAYLOAD)
    download_file(server.base + "/big.gz", tmp_path / "big.gz", sha256=_sha(PAYLOAD), progress=True)
    captured = capsys.readouterr()
    assert "big.gz" in captured.err and captured.out == ""


def test_progress_is_off_when_not_a_terminal(server, tmp_path, capsys):
    server.routes["/f"] = ("ok", PAYLOAD)
    download_file(server.base + "/f", tmp_path / "f", sha256=_sha(PAYLOAD))  # capsys: not a TTY
    assert capsys.readouterr().err == ""


# --- whole datasets -----------------------------------------------------------
def _fashion_files(n_train=20, n_test=10):
    """The four gzip IDX files of a tiny Fashion-MNIST, as {name: bytes}."""
    rng = np.random.default_rng(0)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                            ("labels-idx1", np.arange(n, dtype=np.uint8) % 10)):
            buf = io.BytesIO()
            with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
                gz.write(_idx_bytes(array))
            out[f"{prefix}-{kind}-ubyte.gz"] = buf.getvalue()
    return out


def _idx_bytes(array):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        write_idx(os.path.join(d, "a"), array)
        with open(os.path.join(d, "a"), "rb") as f:
            return f.read()


def _patch(monkeypatch, name, **changes):
    entry = dataclasses.replace(catalog.CATALOG[name], **changes)
    monkeypatch.setitem(catalog.CATALOG, name, entry)
    return entry


def test_fashion_download_falls_back_to_a_good_mirror(server, home, monkeypatch):
    files = _fashion_files()
    for name, data in files.items():
        server.routes[f"/corrupt/{name}"] = ("ok", data[:-1] + b"\x00")
        server.routes[f"/good/{name}"] = ("ok", data)
    _patch(monkeypatch, "fashion-mnist", system_dirs=(),
           mirrors=(server.base + "/corrupt/", server.base + "/good/"),
           remote=tuple(RemoteFile(n, _sha(d), len(d)) for n, d in files.items()))
    train = FashionMNIST(download=True)
    assert len(train) == 20 and train.shape == (1, 28, 28)
    cache = home / ".cache" / "minitl" / "fashion-mnist"
    assert sorted(os.listdir(cache)) == sorted(files)  # nothing corrupt or partial kept
    for name, data in files.items():
        assert (cache / name).read_bytes() == data
    hits = len(server.hits)
    assert len(FashionMNIST(train=False, download=True)) == 10
    assert len(server.hits) == hits  # found in the cache: nothing fetched again


def test_download_failure_lists_places_and_the_way_out(server, home, monkeypatch, tmp_path):
    files = _fashion_files()
    for name, data in files.items():
        server.routes[f"/drop/{name}"] = ("drop", data)
    _patch(monkeypatch, "fashion-mnist", system_dirs=("/nonexistent/fashion",),
           mirrors=(server.base + "/drop/",),
           remote=tuple(RemoteFile(n, _sha(d), len(d)) for n, d in files.items()))
    with pytest.raises(DatasetNotFoundError) as err:
        FashionMNIST(root=tmp_path / "mine", download=True)
    msg = str(err.value)
    for place in (str(tmp_path / "mine"), "$MINITL_DATA", str(home / ".cache" / "minitl" / "fashion-mnist"),
                  "/nonexistent/fashion"):
        assert place in msg
    assert "download=True failed" in msg and "connection dropped" in msg
    assert "FashionMNIST(download=True)" in msg and "apt-get install dataset-fashion-mnist" in msg
    cache = home / ".cache" / "minitl" / "fashion-mnist"
    assert not cache.exists() or os.listdir(cache) == []


def test_cifar_download_unpacks_and_removes_the_archive(server, home, monkeypatch):
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            part = io.BytesIO()
            x = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
            _write_cifar_to(part, x, [1, 2])
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(part.getvalue())
            tar.addfile(info, io.BytesIO(part.getvalue()))
        meta = "\n".join("abcdefghij").encode()
        info = tarfile.TarInfo("cifar-10-batches-bin/batches.meta.txt")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    archive = buf.getvalue()
    server.routes["/cifar-10-binary.tar.gz"] = ("ok", archive)
    _patch(monkeypatch, "cifar-10", mirrors=(server.base + "/",),
           remote=(RemoteFile("cifar-10-binary.tar.gz", _sha(archive), len(archive)),))
    train = CIFAR10(download=True)
    assert len(train) == 10 and train.classes == tuple("abcdefghij")
    cache = home / ".cache" / "minitl" / "cifar-10"
    assert os.listdir(cache) == ["cifar-10-batches-bin"]
    assert len(CIFAR10(train=False)) == 2


def _write_cifar_to(fileobj, images, labels):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        write_cifar_batch(os.path.join(d, "b"), images, labels)
        with open(os.path.join(d, "b"), "rb") as f:
            fileobj.write(f.read())
