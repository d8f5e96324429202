"""EMNIST (Cohen et al., 2017): handwritten digits and letters in MNIST's format, six splits.

    letters = EMNIST("letters", train=True)      # 124,800 28x28 images, labels 0..25 (a..z)

The NIST archive ``gzip.zip`` holds, for each split (``letters``, ``digits``,
``balanced``, ``byclass``, ``bymerge``, ``mnist``), four gzipped IDX files
``gzip/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte.gz``.
They are read with the same IDX reader as MNIST (``read_idx_pair``), then:

- **orientation**: EMNIST stores each image transposed (its rows are the
  glyph's columns); it is transposed back on load, so a letter reads as in
  MNIST and a model pretrained on MNIST sees strokes where it expects them;
- **letters relabelled**: the ``letters`` split stores labels 1..26; they
  become 0..25 (every other split already starts at 0).

The files are looked for like every dataset's (``root``, ``root/emnist``,
``$MINITL_DATA/emnist``, ``~/.cache/minitl/emnist``, each also with the
archive's ``gzip/`` folder); a ``gzip.zip`` found in one of those places is
unpacked into the cache; ``download=True`` fetches the archive (MD5-checked,
see ``catalog``) and unpacks it there.
"""
from __future__ import annotations

import os
import re
import shutil
import zipfile

import numpy as np

from . import catalog
from .datasets import ArrayDataset, _find_or_fetch
from .idx import read_idx_pair
from .locate import cache_dir, find_archive, search

SPLITS = tuple(catalog.EMNIST_SPLITS)
_MEMBER = re.compile(r"^emnist-[a-z]+-(train|test)-(images-idx3|labels-idx1)-ubyte\.gz$")


def emnist_info(split: str):
    """The catalog entry of an EMNIST split; ValueError naming the splits for an unknown one."""
    if split not in catalog.EMNIST_SPLITS:
        raise ValueError(f"unknown EMNIST split {split!r}; choose one of {', '.join(SPLITS)}")
    return catalog.info(f"emnist-{split}")


def fix_emnist(images: np.ndarray, labels: np.ndarray, split: str, path: str = "EMNIST") -> tuple:
    """``(images, labels)`` as read from EMNIST's IDX files, made usable: images transposed back to
    upright (``(N, 28, 28)``), letters' labels 1..26 moved to 0..25, every label checked against the split."""
    classes = catalog.EMNIST_SPLITS[split]
    images = np.ascontiguousarray(np.asarray(images).transpose(0, 2, 1))  # stored column-major per glyph
    labels = np.asarray(labels, dtype=np.int64)
    low = 1 if split == "letters" else 0
    if labels.size and (labels.min() < low or labels.max() >= low + len(classes)):
        raise ValueError(f"{path}: EMNIST {split} labels must lie in {low}..{low + len(classes) - 1}, "
                         f"found {labels.min()}..{labels.max()}")
    return images, labels - low


def extract_emnist_archive(archive, dest) -> list[str]:
    """Unpack the EMNIST IDX files of ``gzip.zip`` into ``dest`` (flat); the paths written.

    Only members named ``gzip/emnist-<split>-<part>-<kind>-ubyte.gz`` (or the
    same at the top level) are written, under their base name: no path in the
    archive reaches outside ``dest``.
    """
    os.makedirs(dest, exist_ok=True)
    written = []
    try:
        with zipfile.ZipFile(archive) as z:
            for member in z.infolist():
                folder, _, name = member.filename.rpartition("/")
                if member.is_dir() or folder not in ("", "gzip") or not _MEMBER.match(name):
                    continue
                target = os.path.join(dest, name)
                tmp = target + ".part"
                with z.open(member) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                os.replace(tmp, target)
                written.append(target)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{os.fspath(archive)}: not a readable zip archive ({exc})") from None
    if not written:
        raise ValueError(f"{os.fspath(archive)}: no EMNIST IDX files (gzip/emnist-*-ubyte.gz) inside")
    return written


class EMNIST(ArrayDataset):
    """An EMNIST split: 28x28 grey images, upright, labels from 0.

    ``EMNIST(split="letters", root=None, train=True, download=False)``; the
    splits and their classes are in ``minitl.data.catalog.EMNIST_SPLITS``.
    """

    def __init__(self, split: str = "letters", root=None, train: bool = True, download: bool = False):
        info = emnist_info(split)
        part = "train" if train else "test"
        archive = find_archive(info, root)
        if archive is not None and not _has_files(info, part, root):
            # A gzip.zip the user put in place: unpack it once into the cache.
            extract_emnist_archive(archive, os.path.join(cache_dir(info.name), info.archive_dir))

        def unpack(cache):
            downloaded = os.path.join(cache, info.remote[0].name)
            extract_emnist_archive(downloaded, os.path.join(cache, info.archive_dir))
            os.remove(downloaded)  # 535 MB; the unpacked files are what is read

        files = _find_or_fetch(info, part, root, download, after_fetch=unpack)
        images_path, labels_path = files["images"][0], files["labels"][0]
        images, labels = read_idx_pair(images_path, labels_path)
        if images.shape[1:] != (28, 28):
            raise ValueError(f"{images_path}: expected 28x28 images, found {images.shape[1]}x{images.shape[2]}")
        images, labels = fix_emnist(images, labels, split, labels_path)
        super().__init__(images[:, None], labels, info.classes, name=f"EMNIST-{split}")
        self.split, self.train = split, train
        self.root = os.path.dirname(images_path)
        self.files = (images_path, labels_path)


def _has_files(info, part, root) -> bool:
    place, _ = search(info, part, root)
    return place is not None
