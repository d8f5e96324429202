"""Fetching dataset files: streamed, SHA-256-verified, written atomically.

A download goes to a temporary file beside its destination and is renamed
into place (``os.replace``, atomic on POSIX) only once every byte has arrived
and the checksum matches. So an interrupted download, a dropped connection or
a corrupted file never leaves anything under the final name, and a reader
never sees a half-written file.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

from .catalog import DatasetInfo, RemoteFile

CHUNK = 1 << 16


class DownloadError(OSError):
    """A file could not be fetched (network error, dropped connection, every mirror failed)."""


class ChecksumError(ValueError):
    """A downloaded file's SHA-256 is not the published one; the file was not kept."""


def sha256_of(path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def md5_of(path, chunk: int = 1 << 20) -> str:
    """The MD5 hex digest of a file (only to match a digest published as MD5)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def unverified_allowed(allow_unverified: bool | None = None) -> bool:
    """Whether a file with no published checksum may be downloaded: the argument, else $MINITL_ALLOW_UNVERIFIED."""
    if allow_unverified is not None:
        return bool(allow_unverified)
    return os.environ.get("MINITL_ALLOW_UNVERIFIED", "") not in ("", "0")


def download_file(url: str, dest, sha256: str | None = None, progress: bool | None = None,
                  timeout: float = 30.0, md5: str | None = None) -> str:
    """Fetch ``url`` into ``dest`` and return ``dest``.

    ``sha256``: the expected hex digest; a mismatch raises ``ChecksumError`` and
    nothing is kept. ``md5``: checked the same way when no SHA-256 is given
    (the SHA-256 found is then printed, so it can be pinned). Neither means
    unverified (a note goes to stderr).
    ``progress``: True/False, or None for "only when stderr is a terminal"; the
    bar is tqdm's when tqdm is installed (the ``progress`` extra), else one line.
    A network failure or a connection closed before the announced length raises
    ``DownloadError``. In every failure case the temporary file is removed.
    """
    dest = os.fspath(dest)
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream(url, out, progress, timeout, os.path.basename(dest))
            out.flush()
            os.fsync(out.fileno())  # the bytes are on disk before the name points at them
        if sha256 is not None and digest != sha256.lower():
            raise ChecksumError(
                f"{url}: SHA-256 mismatch: expected {sha256}, found {digest}; the file was not kept"
            )
        if sha256 is None and md5 is not None:
            found = md5_of(tmp)
            if found != md5.lower():
                raise ChecksumError(f"{url}: MD5 mismatch: expected {md5}, found {found}; the file was not kept")
            print(f"minitl: {url} verified by its published MD5; its SHA-256 is {digest}", file=sys.stderr)
        elif sha256 is None:
            print(f"minitl: {url} has no published checksum; downloaded unverified "
                  f"(sha256 {digest})", file=sys.stderr)
        os.replace(tmp, dest)
    except BaseException:
        # Covers KeyboardInterrupt too: no partial file survives under any name.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return dest


def _stream(url: str, out, progress, timeout: float, label: str) -> str:
    """Copy the response body into ``out``, hashing as it goes; the hex digest."""
    h = hashlib.sha256()
    got, length = 0, None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            header = resp.headers.get("Content-Length")
            length = int(header) if header and header.isdigit() else None
            bar = _progress_bar(length, label, progress)
            try:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    got += len(block)
                    bar.update(len(block))
            finally:
                bar.close()
    except http.client.IncompleteRead as exc:
        got += len(exc.partial)
        raise DownloadError(f"{url}: connection dropped after {got} of {length} bytes") from None
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: {exc.reason}") from None
    except (http.client.HTTPException, OSError) as exc:  # resets, timeouts, bad responses
        raise DownloadError(f"{url}: {exc.__class__.__name__}: {exc}") from None
    # Servers that close early without announcing a length look complete to
    # urllib; with a length we can tell.
    if length is not None and got != length:
        raise DownloadError(f"{url}: connection dropped after {got} of {length} bytes")
    return h.hexdigest()


def fetch(info: DatasetInfo, dest_dir, progress: bool | None = None,
          files: tuple[RemoteFile, ...] | None = None, allow_unverified: bool | None = None) -> list[str]:
    """Download ``info``'s files into ``dest_dir``, trying each mirror in turn.

    Files already there whose checksum matches are kept as they are. Raises
    ``DownloadError`` listing every URL tried and why it failed when a file
    could not be had from any mirror. A file with neither a SHA-256 nor an MD5
    in the catalog is refused (``DownloadError``) unless ``allow_unverified``
    is True (default: ``$MINITL_ALLOW_UNVERIFIED=1``). Returns the paths.
    """
    paths = []
    for remote in files if files is not None else info.remote:
        if remote.sha256 is None and remote.md5 is None and not unverified_allowed(allow_unverified):
            raise DownloadError(f"{remote.name} of {info.title} has no published checksum; refusing to download it "
                                f"unverified (allow it with MINITL_ALLOW_UNVERIFIED=1, or fetch it yourself)")
        dest = os.path.join(os.fspath(dest_dir), remote.name)
        if os.path.isfile(dest) and (remote.sha256 and sha256_of(dest) == remote.sha256
                                     or not remote.sha256 and remote.md5 and md5_of(dest) == remote.md5):
            paths.append(dest)
            continue
        failures = []
        for base in info.mirrors:
            url = base.rstrip("/") + "/" + remote.name
            try:
                paths.append(download_file(url, dest, remote.sha256, progress, md5=remote.md5))
                break
            except (DownloadError, ChecksumError) as exc:
                failures.append(str(exc))
        else:
            raise DownloadError(f"could not download {remote.name}:\n" +
                                "\n".join(f"    {f}" for f in failures))
    return paths


def _progress_bar(total, label: str, progress):
    """tqdm when available, else a one-line meter; a no-op when progress is off."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineBar(total, label)
    return tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr)


class _NoBar:
    """The progress bar used when progress is off."""

    def update(self, n):
        pass

    def close(self):
        pass


class _LineBar:
    """A single stderr line rewritten in place, at most ten times a second."""

    def __init__(self, total, label):
        self.total, self.label, self.done, self.last = total, label, 0, 0.0

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self._draw()

    def _draw(self):
        mb = self.done / 1e6
        if self.total:
            text = f"{self.label}: {mb:.1f}/{self.total / 1e6:.1f} MB ({100 * self.done / self.total:3.0f}%)"
        else:
            text = f"{self.label}: {mb:.1f} MB"
        sys.stderr.write("\r" + text)
        sys.stderr.flush()

    def close(self):
        self._draw()
        sys.stderr.write("\n")
        sys.stderr.flush()
