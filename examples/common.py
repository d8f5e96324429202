"""What every transfer example shares: its command-line flags and the Fashion-MNIST 0-4 / 5-9 split.

Kept here so that each example reads as its experiment alone.
"""
from __future__ import annotations

import argparse
import os

from minitl.data.tasks import fashion_split


def example_parser(doc: str, out: str, quick_help: str = "smoke run: small data, few steps") -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc`` with the flags every example takes:
    ``--quick``, ``--out`` (default ``runs/<out>``), ``--root`` and ``--download``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--out", default=os.path.join("runs", out), help="output directory (pretrained weights, results)")
    p.add_argument("--root", default=None, help="directory holding the Fashion-MNIST files")
    p.add_argument("--download", action="store_true", help="fetch Fashion-MNIST if it is not found")
    return p


def fashion_tasks(args, limit: int | None = None, source_limit: int | None = None):
    """``(source, target)``: Fashion-MNIST classes 0-4 and 5-9, from ``args.root`` / ``--download``."""
    return fashion_split(args.root, args.download, limit=limit, source_limit=source_limit)
