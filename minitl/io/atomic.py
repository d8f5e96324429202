"""Atomic file writes: a temporary file beside the target, fsynced, then ``os.replace``.

The file under the final name is always the old one or the complete new one.
A process killed between writing and renaming leaves its temporary behind;
the temporary's name carries the writer's PID (``.<name>.<pid>.<random>.tmp``),
so the next save of the same target removes those left by dead processes
(older than its own), and interrupted saves never pile up.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _file_mode(path) -> int:
    # Keep an existing file's permissions; a new one gets what open() would give it.
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        # The only portable way to read the umask is to set it and put it back.
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (POSIX; elsewhere assumed alive, so nothing is removed)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path, keep=None) -> list[str]:
    """Remove the temporaries of ``path`` that dead processes left, older than ``keep``'s.

    ``keep`` is the caller's own temporary (never removed; its modification
    time is the cut-off). Returns the names removed.
    """
    path = Path(path)
    prefix = f".{path.name}."
    cutoff = os.stat(keep).st_mtime if keep is not None else float("inf")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")) or os.path.join(path.parent, name) == keep:
            continue
        pid = name[len(prefix):-len(".tmp")].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue  # another writer's, still running (or not one of ours)
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                os.unlink(entry.path)
                removed.append(name)
        except OSError:
            pass  # removed meanwhile by another saver
    return removed


def atomic_write(path, write) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then move it into place.

    The temporary file is flushed and fsynced before ``os.replace``, so a crash
    or an exception leaves ``path`` as it was; the temporary file is removed
    (and stale ones of dead writers with it).
    """
    path = Path(path)
    tmp = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                      suffix=".tmp", delete=False)
    try:
        remove_stale_temporaries(path, keep=tmp.name)
        with tmp as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp.name, _file_mode(path))
        os.replace(tmp.name, path)
    except BaseException:
        try:
            os.unlink(tmp.name)
        except FileNotFoundError:
            pass
        raise
    # Make the rename itself durable (POSIX only; Windows cannot open directories).
    if os.name == "posix":
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
