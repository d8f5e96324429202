"""A bounded reader for tar archives, raw or gzip-compressed: named regular files, as bytes.

``tarfile`` trusts the sizes an archive declares (a pax or GNU long-name
record claiming 2**40 bytes is read into memory) and stops reading before the
gzip trailer, so a flipped bit in the compressed data passes unnoticed. This
reader walks the archive header by header, checks every header's checksum and
every size against bounds before reading it, never writes anything to disk,
and reads the stream to its end so the gzip CRC-32 is verified. Every problem
is a ``ValueError`` naming the archive.
"""
from __future__ import annotations

import gzip
import os
import zlib

BLOCK = 512
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DEFLATE_RATIO = 1032  # deflate's best case: output bytes per input byte
MAX_META_RECORD = 1 << 20  # a pax / GNU long-name record: a few hundred bytes in practice
_MAX_TRAILER = 1 << 20  # after the end-of-archive blocks: padding to a 10 kB record
_REGULAR = (b"0", b"\0", b"7")
_META = (b"x", b"g", b"L", b"K")


def _fail(path, problem: str):
    raise ValueError(f"{path}: not a readable tar archive: {problem}")


def read_exact(f, n: int) -> bytes:
    """Up to ``n`` bytes of ``f`` (gzip streams may return fewer per call), read 1 MiB at a time."""
    chunks, got = [], 0
    while got < n:
        chunk = f.read(min(n - got, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _skip(f, n: int) -> int:
    """Read and drop ``n`` bytes in bounded chunks; how many were there."""
    got = 0
    while got < n:
        chunk = f.read(min(n - got, 1 << 20))
        if not chunk:
            break
        got += len(chunk)
    return got


def _number(field: bytes) -> int | None:
    """A tar numeric field: octal text, or GNU base-256 (high bit set); None if malformed."""
    if field[:1] and field[0] & 0x80:
        if field[0] == 0xFF:
            return None  # negative
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156])
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = unsigned - 2 * sum(b for b in block[:148] + block[156:] if b > 127)
    return stored is not None and stored in (unsigned, signed)


def _pax_path(path, data: bytes) -> str | None:
    """The ``path`` record of a pax extended header, if any ("<len> <key>=<value>\\n" records)."""
    found, pos = None, 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        space = data.find(b" ", pos, pos + 20)
        digits = data[pos:space] if space > pos else b""
        length = int(digits) if digits.isdigit() else 0
        if length <= space - pos + 1 or pos + length > len(data) or data[pos + length - 1:pos + length] != b"\n":
            _fail(path, f"malformed pax record at byte {pos} of an extended header")
        key, eq, value = data[space + 1:pos + length - 1].partition(b"=")
        if not eq:
            _fail(path, f"malformed pax record at byte {pos} of an extended header")
        if key == b"path":
            found = value.decode("utf-8", "surrogateescape")
        pos += length
    return found


def _open(path: str, raw):
    """``(stream, bound)``: the decompressed stream and the most bytes it can hold."""
    size = os.fstat(raw.fileno()).st_size
    if raw.read(2) == _GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), size * _MAX_DEFLATE_RATIO
    raw.seek(0)
    return raw, size


def read_members(path, wanted, max_member: int) -> dict[str, bytes]:
    """``{name: bytes}`` of the regular files named in ``wanted`` (each at most ``max_member`` bytes).

    Names not in the archive are simply absent from the result: the caller
    says which are required. Members are never extracted to disk.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as raw:
            f, bound = _open(path, raw)
            with f:
                return _walk(f, path, set(wanted), max_member, bound)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # gzip.BadGzipFile also covers a CRC-32 or length mismatch in the trailer.
        _fail(path, f"corrupt or truncated gzip stream ({exc})")


def _walk(f, path: str, wanted: set, max_member: int, bound: int) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    long_name = None
    offset = 0
    while True:
        block = read_exact(f, BLOCK)
        if not block:
            if offset == 0:
                _fail(path, "empty file")
            break  # no end-of-archive blocks: tolerated, as GNU tar does
        if len(block) < BLOCK:
            _fail(path, f"truncated header at byte {offset} ({len(block)} of {BLOCK} bytes)")
        if block == bytes(BLOCK):
            # End of archive; read on to the end so the gzip trailer is checked.
            if _skip(f, _MAX_TRAILER) >= _MAX_TRAILER:
                _fail(path, f"over {_MAX_TRAILER} bytes of data after the end-of-archive marker")
            break
        if not _checksum_ok(block):
            _fail(path, f"bad header checksum at byte {offset} (corrupt, or not a tar file)")
        size, kind = _number(block[124:136]), block[156:157]
        if size is None or size > bound:
            _fail(path, f"header at byte {offset} declares {size} bytes, more than the archive can hold")
        name = block[:100].split(b"\0", 1)[0]
        if block[257:262] == b"ustar" and block[345:346] != b"\0":
            name = block[345:500].split(b"\0", 1)[0] + b"/" + name
        padded = -(-size // BLOCK) * BLOCK
        offset += BLOCK
        if kind in _META:
            if size > MAX_META_RECORD:
                _fail(path, f"extended header at byte {offset - BLOCK} declares {size} bytes "
                            f"(limit {MAX_META_RECORD})")
            data = read_exact(f, padded)
            if len(data) < padded:
                _fail(path, f"truncated extended header at byte {offset}")
            data = data[:size]
            if kind == b"L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif kind == b"x":
                long_name = _pax_path(path, data) or long_name
            offset += padded
            continue
        member = long_name or name.decode("utf-8", "surrogateescape")
        long_name = None
        if kind in _REGULAR and member in wanted:
            if member in found:
                _fail(path, f"member {member} appears twice")
            if size > max_member:
                _fail(path, f"member {member} declares {size} bytes (at most {max_member} expected)")
            data = read_exact(f, size)
            if len(data) < size or _skip(f, padded - size) < padded - size:
                _fail(path, f"truncated inside member {member}")
            found[member] = data
        elif _skip(f, padded) < padded:
            _fail(path, f"truncated inside member {member}")
        offset += padded
    return found
