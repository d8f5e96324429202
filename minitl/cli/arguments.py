"""The command line's arguments: the parser of every sub-command and the checked argument types.

A usage error is the same one line as every other error: ``minitl: error: ...``.
"""
from __future__ import annotations

import argparse
import math
import os

DEBUG_HELP = "on an error, show the Python traceback instead of the one-line message"


class CLIError(ValueError):
    """A bad invocation: printed as the one line ``minitl: error: ...``."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are the same one line as every other error of the command."""

    def error(self, message):
        self.exit(2, f"minitl: error: {message}\n")


def _arg_type(name, convert, ok, wanted):
    """An argparse ``type=`` that converts with ``convert`` and accepts what ``ok`` allows."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        return value
    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _int_list(text) -> list[int]:
    values = [int(v) for v in text.replace(" ", "").split(",") if v]
    if not values:
        raise ValueError(text)
    return values


def _seed_list(text) -> list[int]:
    """``'3'`` -> seeds 0, 1, 2; ``'4,7,9'`` -> those seeds."""
    return list(range(int(text))) if "," not in text else _int_list(text)


POSITIVE_INT = _arg_type("count", int, lambda v: v >= 1, "a whole number of at least 1")
SEED = _arg_type("seed", int, lambda v: v >= 0, "a non-negative whole number")
LEARNING_RATE = _arg_type("rate", float, lambda v: math.isfinite(v) and v > 0, "a finite number above 0")
K_LIST = _arg_type("k", _int_list, lambda v: min(v) >= 1 and len(set(v)) == len(v),
                   "a comma-separated list of distinct whole numbers of at least 1 (e.g. 5,20,100)")
SEEDS = _arg_type("seeds", _seed_list, lambda v: bool(v) and min(v) >= 0 and len(set(v)) == len(v),
                  "N (for seeds 0..N-1, N >= 1) or a list of distinct non-negative seeds such as 0,4,7")


def _common_data(p):
    p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist (default), mnist, kmnist, cifar-10")
    p.add_argument("--root", default=None, help="directory holding the dataset's files")
    p.add_argument("--download", action="store_true", help="download the dataset if it is not found")
    p.add_argument("--limit", type=POSITIVE_INT, default=None,
                   help="use at most this many (class-balanced) train and test images per task: smoke runs")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=64)
    p.add_argument("--quiet", action="store_true", help="print only the result")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = _Parser(prog="minitl", description="minitl: transfer learning end to end. A bad invocation, "
                     "file or value exits with status 2 and one line 'minitl: error: ...', checked before "
                     "any training starts.")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("info", help="version, active kernels, CUDA status, threads, datasets found")

    p = sub.add_parser("pretrain", help="train a model on some classes and save its weights")
    _common_data(p)
    p.add_argument("--classes", default="0-4", help="source classes, e.g. 0-4 or 0,2,4 (default 0-4)")
    p.add_argument("--model", default="lenet", help="lenet (default), mlp, mlp:H1,H2, resnet18|34|50 or "
                   "resnet18:width=16 (options width=N, small_input=0|1)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=POSITIVE_INT, default=None, help="passes over the data (default 2)")
    group.add_argument("--steps", type=POSITIVE_INT, default=None, help="optimizer steps instead of epochs")
    p.add_argument("--lr", type=LEARNING_RATE, default=0.01)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", required=True, help="weight file to write (.safetensors or .npz); a file there "
                   "with the same provenance (data, model, budget, seed) is reused")

    p = sub.add_parser("transfer", help="compare transfer strategies against scratch on target classes")
    _common_data(p)
    p.add_argument("--weights", help="pretrained weight file (from minitl pretrain or any LeNet/MLP/ResNet)")
    p.add_argument("--classes", default=None,
                   help="target classes (default 5-9; all classes when --source-dataset is another dataset)")
    p.add_argument("--strategies", default="scratch,features,finetune",
                   help="comma-separated strategy specs; see --list")
    p.add_argument("--k", type=K_LIST, default=[5, 20, 100],
                   help="examples per class, comma-separated (default 5,20,100)")
    p.add_argument("--seeds", type=SEEDS, default=[0, 1, 2],
                   help="N for seeds 0..N-1, or a list such as 0,4,7 (default 3)")
    p.add_argument("--steps", type=POSITIVE_INT, default=300, help="optimizer steps of every run (default 300)")
    p.add_argument("--lr", type=LEARNING_RATE, default=0.01)
    p.add_argument("--out", default=None, help="directory for results.{json,csv,md} and plots")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--list", action="store_true", help="list the strategies and exit")
    _add_source_options(p)

    p = sub.add_parser("demo", help="the whole story on Fashion-MNIST (under 10 minutes on 2 cores)")
    p.add_argument("--out", default=os.path.join("runs", "demo"), help="output directory (default runs/demo)")
    p.add_argument("--root", default=None, help="directory holding the Fashion-MNIST files")
    p.add_argument("--download", action="store_true", help="download Fashion-MNIST if it is not found")
    p.add_argument("--quick", action="store_true", help="a one-minute smoke version (fewer steps and images)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    _add_per_seed(p)
    _add_meta_parser(sub)
    for p in sub.choices.values():  # --debug is accepted after the command too
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def _add_per_seed(p):
    p.add_argument("--pretrain-per-seed", action=argparse.BooleanOptionalAction, default=True,
                   help="seed s pretrains its own backbone with seed s (default); --no-pretrain-per-seed "
                        "pretrains once and every seed reuses that one draw")


def _add_source_options(p):
    """``minitl transfer`` without --weights: pretrain inside the run, possibly on another dataset."""
    p.add_argument("--source-dataset", default=None,
                   help="pretrain on this dataset (e.g. mnist) instead of loading --weights; "
                        "its input shape must match --dataset's")
    p.add_argument("--source-classes", default=None,
                   help="source classes (default: 0-4 on the same dataset, all classes on another one)")
    p.add_argument("--model", default=None, help="model spec: read off --weights by default, else lenet; "
                   "lenet, mlp, mlp:H1,H2 or resnet18|34|50[:width=16]")
    p.add_argument("--pretrain-epochs", type=POSITIVE_INT, default=2, help="pretraining epochs (default 2)")
    _add_per_seed(p)


def _add_meta_parser(sub):
    p = sub.add_parser("meta", help="Reptile and first-order MAML vs pretrain-then-fine-tune and scratch on "
                                    "few-shot tasks")
    _common_data(p)
    p.add_argument("--source-classes", default="0-4", help="classes of the meta-training tasks (default 0-4)")
    p.add_argument("--classes", default="5-9", help="classes of the held-out test tasks (default 5-9)")
    p.add_argument("--ways", type=int, default=3, help="classes per task (default 3)")
    p.add_argument("--shots", type=int, default=5, help="support images per class (default 5)")
    p.add_argument("--query", type=int, default=100, help="query images per class of a test task (default 100)")
    p.add_argument("--methods", default="scratch,pretrain,reptile,fomaml",
                   help="start points compared (default scratch,pretrain,reptile,fomaml)")
    p.add_argument("--model", default="lenet", help="lenet (default) or mlp")
    p.add_argument("--meta-iters", type=int, default=500, help="meta-training tasks per method (default 500)")
    p.add_argument("--inner-steps", type=int, default=5, help="SGD steps on each meta-training task (default 5)")
    p.add_argument("--tasks", type=int, default=20, help="held-out test tasks (default 20)")
    p.add_argument("--adapt-steps", type=int, default=20, help="SGD steps on a test task's support (default 20)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate of every inner and adaptation loop")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="directory for meta.json, meta.md and the plot")
    p.add_argument("--quick", action="store_true", help="a smoke run (few meta-iterations and tasks)")
