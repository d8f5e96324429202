"""Finding a dataset's files on disk, and saying clearly where we looked when we cannot.

Places, in order (the first that holds every file of the split wins):

1. ``root`` as given, then ``root/<name>``;
2. ``$MINITL_DATA/<name>`` (the variable names a directory holding one
   sub-directory per dataset: MNIST and Fashion-MNIST use the *same* file
   names, so a shared flat directory would silently mix them up);
3. ``~/.cache/minitl/<name>``, where ``download=True`` puts files;
4. a system directory where a distribution installs the data (Debian's
   ``/usr/share/datasets/fashion-mnist`` for Fashion-MNIST).

Each file may be raw or gzip-compressed (``name`` or ``name.gz``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .catalog import DatasetInfo


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the places searched; the message lists them."""


@dataclass(frozen=True)
class Place:
    """A directory to search and a few words saying why it is searched."""

    path: str | None  # None when the place is not configured (e.g. $MINITL_DATA unset)
    why: str


def cache_dir(name: str) -> str:
    """``~/.cache/minitl/<name>``: where downloads go."""
    return os.path.join(os.path.expanduser("~"), ".cache", "minitl", name)


def places(info: DatasetInfo, root=None) -> list[Place]:
    """The directories searched for ``info``'s files, in order."""
    out = []
    if root is not None:
        root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        out += [Place(root, "root"), Place(os.path.join(root, info.name), "root/<name>")]
    env = os.environ.get("MINITL_DATA")
    out.append(Place(os.path.join(os.path.expanduser(env), info.name) if env else None, "$MINITL_DATA/<name>"))
    out.append(Place(cache_dir(info.name), "download cache"))
    out += [Place(d, "system package") for d in info.system_dirs]
    # CIFAR's archive unpacks into a sub-directory; accept it below every place.
    if info.archive_dir:
        out = [q for p in out for q in
               ((p,) if p.path is None else (p, Place(_join(p.path, info.archive_dir), p.why + "/" + info.archive_dir)))]
    return out


def _join(path, name):
    return None if path is None else os.path.join(path, name)


def _variants(name: str) -> tuple[str, ...]:
    """The spellings a file may have on disk: raw or .gz, and the dotted ``train-images.idx3-ubyte``."""
    dotted = name.replace("-idx", ".idx", 1)
    names = (name, name + ".gz")
    return names + ((dotted, dotted + ".gz") if dotted != name else ())


def find_in(directory: str, files: dict[str, tuple[str, ...]]):
    """``{role: [path, ...]}`` if ``directory`` holds every file, else the list of missing names."""
    found, missing = {}, []
    for role, names in files.items():
        paths = []
        for name in names:
            hit = next((os.path.join(directory, v) for v in _variants(name)
                        if os.path.isfile(os.path.join(directory, v))), None)
            if hit is None:
                missing.append(name + "[.gz]" if not name.endswith(".bin") else name)
            else:
                paths.append(hit)
        found[role] = paths
    return missing if missing else found


def find_archive(info: DatasetInfo, root=None) -> str | None:
    """The dataset's downloaded archive (e.g. ``cifar-10-binary.tar.gz``) in any place, or None."""
    if not info.archive_dir:
        return None
    for place in places(info, root):
        for remote in info.remote:
            candidate = _join(place.path, remote.name)
            if candidate and os.path.isfile(candidate):
                return candidate
    return None


def locate(info: DatasetInfo, split: str, root=None) -> dict[str, list[str]]:
    """Paths of ``split``'s files (``{role: [path, ...]}``) from the first place that has them all.

    Raises ``DatasetNotFoundError`` listing every place and what was missing there.
    """
    _, report = search(info, split, root)
    if isinstance(report, dict):
        return report
    raise DatasetNotFoundError(not_found_message(info, split, report))


def search(info: DatasetInfo, split: str, root=None):
    """``(place, {role: paths})`` for the first complete place, else ``(None, [(place, problem)])``."""
    files = info.files[split]
    problems = []
    for place in places(info, root):
        if place.path is None:
            problems.append((place, "not set"))
            continue
        if not os.path.isdir(place.path):
            problems.append((place, "no such directory"))
            continue
        result = find_in(place.path, files)
        if isinstance(result, dict):
            return place, result
        problems.append((place, "missing " + ", ".join(result)))
    return None, problems


def not_found_message(info: DatasetInfo, split: str, problems, extra: str = "") -> str:
    """The error text: every place looked in, what was wrong there, and how to get the data."""
    lines = [f"{info.title} ({split} split) not found. Looked in:"]
    for place, problem in problems:
        if place.path is None:
            lines.append(f"  - {place.why}: {problem}")
        else:
            lines.append(f"  - {place.path} ({place.why}): {problem}")
    if extra:
        lines.append(extra)
    how = f"To get it: {info.title}(download=True)"
    if info.install_hint:
        how += f"  or  {info.install_hint}"
    how += "  (or copy the files into one of the places above)"
    lines.append(how)
    return "\n".join(lines)
