"""What each dataset is made of: file names, where to fetch them, their checksums.

One table, read by ``locate`` (which files to look for), ``download`` (what to
fetch and verify) and ``datasets`` (class names). Nothing here touches the disk.

Checksums: the SHA-256 and byte sizes below are the ones published by
TensorFlow Datasets (``tensorflow_datasets/url_checksums/{mnist,fashion_mnist,
kmnist,cifar10}.txt``) for exactly these URLs. We never make one up: an entry
whose checksum is not known is written ``sha256=None`` and is downloaded
*unverified* only when the caller allows it explicitly (``allow_unverified=True``
or ``MINITL_ALLOW_UNVERIFIED=1``); otherwise ``fetch`` refuses it. Note that Debian's
``dataset-fashion-mnist`` ships re-compressed ``.gz`` files (same images,
different gzip header), so their hashes differ from upstream's; that is why
files found locally are checked by their IDX structure, not by checksum.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its name, SHA-256 (None: not published), size in bytes, and MD5.

    ``md5`` is checked when no SHA-256 is known but an MD5 digest is published
    (EMNIST's archive: the digest torchvision's ``EMNIST`` class pins).
    """

    name: str
    sha256: str | None
    size: int | None = None
    md5: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's description: where it lives on disk and on the web.

    ``files`` maps a split (``'train'``/``'test'``) to the roles it needs
    (``'images'``, ``'labels'`` for IDX; ``'batches'`` for CIFAR) and each role
    to the file names, in order. ``mirrors`` are base URLs tried in turn.
    """

    name: str  # directory name under the cache and $MINITL_DATA
    title: str  # the class a user calls, for messages
    files: dict[str, dict[str, tuple[str, ...]]]
    remote: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]
    classes: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    install_hint: str | None = None  # a system package, when one exists
    archive_dir: str | None = None  # directory the downloaded archive unpacks to


def _idx_files(prefix: str = "") -> dict[str, dict[str, tuple[str, ...]]]:
    """The four standard MNIST-style IDX file names, split by train/test."""
    return {
        "train": {
            "images": (f"{prefix}train-images-idx3-ubyte",),
            "labels": (f"{prefix}train-labels-idx1-ubyte",),
        },
        "test": {
            "images": (f"{prefix}t10k-images-idx3-ubyte",),
            "labels": (f"{prefix}t10k-labels-idx1-ubyte",),
        },
    }


FASHION_MNIST = DatasetInfo(
    name="fashion-mnist",
    title="FashionMNIST",
    files=_idx_files(),
    remote=(
        RemoteFile("train-images-idx3-ubyte.gz",
                   "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        RemoteFile("train-labels-idx1-ubyte.gz",
                   "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        RemoteFile("t10k-images-idx3-ubyte.gz",
                   "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        RemoteFile("t10k-labels-idx1-ubyte.gz",
                   "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
    ),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    install_hint="sudo apt-get install dataset-fashion-mnist",
)

MNIST = DatasetInfo(
    name="mnist",
    title="MNIST",
    files=_idx_files(),
    remote=(
        RemoteFile("train-images-idx3-ubyte.gz",
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        RemoteFile("train-labels-idx1-ubyte.gz",
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        RemoteFile("t10k-images-idx3-ubyte.gz",
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        RemoteFile("t10k-labels-idx1-ubyte.gz",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    ),
    # LeCun's own server often refuses scripted downloads; these two mirrors serve
    # the same bytes, and the checksum rejects any that do not.
    mirrors=("https://storage.googleapis.com/cvdf-datasets/mnist/",
             "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    classes=tuple(str(d) for d in range(10)),
)

KMNIST = DatasetInfo(
    name="kmnist",
    title="KMNIST",
    files=_idx_files(),
    remote=(
        RemoteFile("train-images-idx3-ubyte.gz",
                   "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4", 18165135),
        RemoteFile("train-labels-idx1-ubyte.gz",
                   "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17", 29497),
        RemoteFile("t10k-images-idx3-ubyte.gz",
                   "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5", 3041136),
        RemoteFile("t10k-labels-idx1-ubyte.gz",
                   "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c", 5120),
    ),
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    # Romanised names of the ten Kuzushiji-MNIST hiragana classes, in label order.
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
)

CIFAR10 = DatasetInfo(
    name="cifar-10",
    title="CIFAR10",
    files={
        "train": {"batches": tuple(f"data_batch_{i}.bin" for i in range(1, 6))},
        "test": {"batches": ("test_batch.bin",)},
    },
    remote=(
        RemoteFile("cifar-10-binary.tar.gz",
                   "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171),
    ),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    classes=("airplane", "automobile", "bird", "cat", "deer",
             "dog", "frog", "horse", "ship", "truck"),
    archive_dir="cifar-10-batches-bin",
)

# --- EMNIST (Cohen et al., 2017): six splits in one NIST archive -------------------
# ``gzip.zip`` holds ``gzip/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte.gz``.
# No SHA-256 is published for it (NIST publishes none; TensorFlow Datasets lists
# none we could confirm), so we do not write one: the archive is checked by the
# MD5 that torchvision's EMNIST class pins for this URL, and the SHA-256 found
# is printed so a user can pin it.
_EMNIST_ARCHIVE = RemoteFile("gzip.zip", None, None, md5="58c8d27c78d21e728a6bc7b3cc06412e")
_DIGITS = tuple(str(d) for d in range(10))
_UPPER = tuple(chr(c) for c in range(ord("A"), ord("Z") + 1))
_LOWER = tuple(chr(c) for c in range(ord("a"), ord("z") + 1))
# bymerge and balanced merge the 15 letters whose cases look alike; the 11 lower-case
# letters kept apart follow the upper-case ones (the archive's mapping files).
_MERGED = _DIGITS + _UPPER + tuple("abdefghnqrt")
EMNIST_SPLITS: dict[str, tuple[str, ...]] = {
    "letters": _LOWER,          # stored as labels 1..26, relabelled 0..25 on load
    "digits": _DIGITS,
    "mnist": _DIGITS,
    "balanced": _MERGED,
    "bymerge": _MERGED,
    "byclass": _DIGITS + _UPPER + _LOWER,
}


def _emnist(split: str) -> DatasetInfo:
    def files(part):
        return {"images": (f"emnist-{split}-{part}-images-idx3-ubyte",),
                "labels": (f"emnist-{split}-{part}-labels-idx1-ubyte",)}
    return DatasetInfo(
        name="emnist",  # one directory (and one archive) for every split
        title=f"EMNIST(split={split!r})",
        files={"train": files("train"), "test": files("test")},
        remote=(_EMNIST_ARCHIVE,),
        mirrors=("https://biometrics.nist.gov/cs_links/EMNIST/",),
        classes=EMNIST_SPLITS[split],
        archive_dir="gzip",
    )


CATALOG: dict[str, DatasetInfo] = {
    info.name: info for info in (FASHION_MNIST, MNIST, KMNIST, CIFAR10)
}
# Keyed by "emnist-<split>"; every split's files live under the one "emnist" directory.
CATALOG.update({f"emnist-{split}": _emnist(split) for split in EMNIST_SPLITS})


def info(name: str) -> DatasetInfo:
    """The catalog entry for ``name`` (e.g. ``'fashion-mnist'``); KeyError lists the known ones."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(CATALOG)}") from None
