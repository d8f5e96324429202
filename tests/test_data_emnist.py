"""EMNIST on small synthetic files in the official layout: orientation, relabelling, the archive,
the MD5-checked download and the refusal of unverified ones (no network: a server on 127.0.0.1)."""
import dataclasses
import hashlib
import io
import os
import zipfile

import numpy as np
import pytest

from minitl.data import EMNIST, DatasetNotFoundError, DownloadError, catalog, write_idx
from minitl.data.catalog import RemoteFile
from minitl.data.download import fetch
from minitl.data.emnist import extract_emnist_archive, fix_emnist
from minitl.data.tasks import dataset_classes, load_dataset
from test_data_download import home, server  # noqa: F401  (pytest fixtures)


def _upright(n, seed=0):
    """Images with a known asymmetric mark: a bar along the top row, so a transpose is visible."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 50, (n, 28, 28), dtype=np.uint8)
    images[:, 0, :] = 255
    return images


def write_emnist(folder, split="letters", n_train=12, n_test=6, labels_from=1, n_classes=26):
    """The four IDX files of a split as NIST stores them: each image transposed, letters labelled 1..26."""
    os.makedirs(folder, exist_ok=True)
    truth = {}
    for part, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images = _upright(n, seed)
        labels = (np.arange(n) % n_classes + labels_from).astype(np.uint8)
        write_idx(os.path.join(folder, f"emnist-{split}-{part}-images-idx3-ubyte.gz"), images.transpose(0, 2, 1))
        write_idx(os.path.join(folder, f"emnist-{split}-{part}-labels-idx1-ubyte.gz"), labels)
        truth[part] = (images, labels.astype(np.int64) - labels_from)
    return truth


def _zip_of(folder) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(os.listdir(folder)):
            z.write(os.path.join(folder, name), f"gzip/{name}")
        z.writestr("gzip/README.txt", "not an IDX file: skipped")
        z.writestr("../emnist-letters-train-images-idx3-ubyte.gz", b"")  # outside gzip/: never written
    return buf.getvalue()


def test_letters_are_upright_and_labelled_from_zero(tmp_path, home):  # noqa: F811
    truth = write_emnist(tmp_path / "emnist")
    train = EMNIST("letters", root=tmp_path)
    test = EMNIST("letters", root=tmp_path, train=False)
    np.testing.assert_array_equal(train.images[:, 0], truth["train"][0])  # transposed back
    assert (train.images[:, 0, 0, :] == 255).all()  # the bar is on top, not on the left
    np.testing.assert_array_equal(train.labels, truth["train"][1])
    assert train.labels.min() == 0 and len(train.classes) == 26 and train.classes[0] == "a"
    assert len(test) == 6 and test.shape == (1, 28, 28)


def test_other_splits_keep_their_labels_and_classes(tmp_path, home):  # noqa: F811
    write_emnist(tmp_path / "gzip", split="balanced", labels_from=0, n_classes=47)  # the archive's own folder
    ds = EMNIST("balanced", root=tmp_path)
    assert len(ds.classes) == 47 and ds.labels.max() == 11 and ds.classes[10] == "A" and ds.classes[36] == "a"
    assert [len(dataset_classes(f"emnist-{s}")) for s in ("letters", "digits", "mnist", "byclass", "bymerge")] \
        == [26, 10, 10, 62, 47]
    train, test = load_dataset("emnist-balanced", root=tmp_path)
    assert len(train) == 12 and len(test) == 6


def test_bad_labels_and_split_are_named():
    with pytest.raises(ValueError, match="letters labels must lie in 1..26, found 0..3"):
        fix_emnist(np.zeros((4, 28, 28), np.uint8), np.arange(4), "letters", "f.idx")
    with pytest.raises(ValueError, match="unknown EMNIST split 'lettres'"):
        EMNIST("lettres")


def test_archive_found_in_place_is_unpacked(tmp_path, home):  # noqa: F811
    src = tmp_path / "src"
    truth = write_emnist(src)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "gzip.zip").write_bytes(_zip_of(src))
    ds = EMNIST("letters", root=tmp_path / "data")
    np.testing.assert_array_equal(ds.labels, truth["train"][1])
    unpacked = home / ".cache" / "minitl" / "emnist" / "gzip"
    assert sorted(os.listdir(unpacked)) == sorted(os.listdir(src))  # README and the escaping member skipped
    assert not (home / ".cache" / "minitl" / "emnist-letters-train-images-idx3-ubyte.gz").exists()


def test_bad_archive_is_named(tmp_path):
    (tmp_path / "gzip.zip").write_bytes(b"PK not really")
    with pytest.raises(ValueError, match="not a readable zip"):
        extract_emnist_archive(tmp_path / "gzip.zip", tmp_path / "out")


def _patch_emnist(monkeypatch, remote, mirrors):
    for split in catalog.EMNIST_SPLITS:
        key = f"emnist-{split}"
        monkeypatch.setitem(catalog.CATALOG, key, dataclasses.replace(catalog.CATALOG[key], remote=(remote,),
                                                                      mirrors=mirrors))


def test_download_checks_the_md5_and_unpacks(tmp_path, server, home, monkeypatch, capsys):  # noqa: F811
    src = tmp_path / "src"
    truth = write_emnist(src)
    archive = _zip_of(src)
    server.routes["/bad/gzip.zip"] = ("ok", archive[:100] + bytes([archive[100] ^ 0xFF]) + archive[101:])
    server.routes["/good/gzip.zip"] = ("ok", archive)
    md5 = hashlib.md5(archive).hexdigest()
    _patch_emnist(monkeypatch, RemoteFile("gzip.zip", None, None, md5=md5),
                  (server.base + "/bad/", server.base + "/good/"))
    ds = EMNIST("letters", download=True, train=False)
    np.testing.assert_array_equal(ds.labels, truth["test"][1])
    assert server.hits == ["/bad/gzip.zip", "/good/gzip.zip"]  # the corrupt copy was refused by its MD5
    err = capsys.readouterr().err
    assert "verified by its published MD5" in err and hashlib.sha256(archive).hexdigest() in err
    cache = home / ".cache" / "minitl" / "emnist"
    assert not (cache / "gzip.zip").exists() and (cache / "gzip").is_dir()  # unpacked, archive removed


def test_unverified_download_is_refused_unless_allowed(tmp_path, server, home, monkeypatch):  # noqa: F811
    src = tmp_path / "src"
    write_emnist(src)
    server.routes["/gzip.zip"] = ("ok", _zip_of(src))
    _patch_emnist(monkeypatch, RemoteFile("gzip.zip", None, None), (server.base + "/",))
    monkeypatch.delenv("MINITL_ALLOW_UNVERIFIED", raising=False)
    with pytest.raises(DatasetNotFoundError, match="no published checksum; refusing"):
        EMNIST("letters", download=True)
    assert server.hits == []  # not one byte fetched
    with pytest.raises(DownloadError, match="refusing"):
        fetch(catalog.CATALOG["emnist-letters"], tmp_path / "x")
    monkeypatch.setenv("MINITL_ALLOW_UNVERIFIED", "1")
    assert len(EMNIST("letters", download=True)) == 12


def test_catalog_entry_points_at_the_official_archive():
    info = catalog.CATALOG["emnist-letters"]
    assert info.mirrors == ("https://biometrics.nist.gov/cs_links/EMNIST/",) and info.name == "emnist"
    (remote,) = info.remote
    assert remote.name == "gzip.zip" and remote.md5 == "58c8d27c78d21e728a6bc7b3cc06412e"
    assert info.files["test"]["labels"] == ("emnist-letters-test-labels-idx1-ubyte",)
