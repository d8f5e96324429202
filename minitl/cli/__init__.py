"""The ``minitl`` command (also ``python -m minitl``).

    minitl info                                    version, kernels, CUDA, threads, data
    minitl pretrain --classes 0-4 --epochs 2 --out lenet04.safetensors
    minitl transfer --weights lenet04.safetensors --classes 5-9 --k 5,20,100 --seeds 3 --out runs/t
    minitl transfer --source-dataset mnist --dataset emnist-letters --model mlp --k 5,20 --out runs/x
    minitl meta --ways 3 --shots 5 --out runs/meta   Reptile and first-order MAML vs pretrain and scratch
    minitl demo                                    the whole story on Fashion-MNIST, < 10 min on 2 cores
"""
from __future__ import annotations

import sys

from .arguments import CLIError, build_parser
from .commands import COMMANDS, demo_grid

__all__ = ["main", "build_parser", "demo_grid", "CLIError", "COMMANDS"]


def main(argv=None) -> int:
    """Entry point of the ``minitl`` console script; returns the exit status.

    Every error is one line ``minitl: error: ...`` on stderr and status 2
    (1 for an unexpected failure); ``--debug`` shows the traceback instead.
    """
    args = build_parser().parse_args(argv)
    from ..data import DatasetNotFoundError

    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
    except DatasetNotFoundError as exc:
        if args.debug:
            raise
        # The one error line, then where we looked and how to get the data.
        print(f"minitl: error: {exc}\n\n{_get_data_hint(getattr(args, 'dataset', 'fashion-mnist'))}",
              file=sys.stderr)
        return 2
    except (ValueError, OSError, FloatingPointError) as exc:  # CLIError, a bad file, a diverging run
        if args.debug:
            raise
        print(f"minitl: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, the traceback is one flag away
        if args.debug:
            raise
        print(f"minitl: error: {type(exc).__name__}: {_one_line(exc)} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _one_line(exc) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _get_data_hint(dataset: str) -> str:
    """The one command that gets ``dataset``: its system package where there is one, else --download."""
    from ..data import catalog

    hint = catalog.CATALOG[dataset].install_hint if dataset in catalog.CATALOG else None
    if hint:
        return f"Get it with one command:  {hint}   (or rerun with --download)"
    return "Get it by rerunning with --download"
