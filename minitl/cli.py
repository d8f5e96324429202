"""The ``minitl`` command (also ``python -m minitl``).

    minitl info                                    version, kernels, CUDA, threads, data
    minitl pretrain --classes 0-4 --epochs 2 --out lenet04.safetensors
    minitl transfer --weights lenet04.safetensors --classes 5-9 --k 5,20,100 --seeds 3 --out runs/t
    minitl demo                                    the whole story on Fashion-MNIST, < 10 min on 2 cores
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

DEBUG_HELP = "on an error, show the Python traceback instead of the one-line message"
DEMO_NOTE = """\
The demo: LeNet pretrained on Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover,
dress, coat), then trained on classes 5-9 (sandal, shirt, sneaker, bag, ankle boot)
from k examples per class, with one step budget for every strategy, and scored on
all 5,000 test images of classes 5-9. Differences are paired with scratch on the
same seed (same k-shot sample, same batch order, same head initialisation)."""


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


def _say(args):
    return None if getattr(args, "quiet", False) else (lambda line: print(line, flush=True))


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
    p.add_argument("--model", default="lenet", help="lenet (default), mlp or mlp:H1,H2")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=POSITIVE_INT, default=None, help="passes over the data (default 2)")
    group.add_argument("--steps", type=POSITIVE_INT, default=None, help="optimizer steps instead of epochs")
    p.add_argument("--lr", type=LEARNING_RATE, default=0.01)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", required=True, help="weight file to write (.safetensors or .npz); a file there "
                   "with the same provenance (data, model, budget, seed) is reused")

    p = sub.add_parser("transfer", help="compare transfer strategies against scratch on target classes")
    _common_data(p)
    p.add_argument("--weights", help="pretrained weight file (from minitl pretrain or any LeNet/MLP)")
    p.add_argument("--classes", default="5-9", help="target classes (default 5-9)")
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

    p = sub.add_parser("demo", help="the whole story on Fashion-MNIST (under 10 minutes on 2 cores)")
    p.add_argument("--out", default=os.path.join("runs", "demo"), help="output directory (default runs/demo)")
    p.add_argument("--root", default=None, help="directory holding the Fashion-MNIST files")
    p.add_argument("--download", action="store_true", help="download Fashion-MNIST if it is not found")
    p.add_argument("--quick", action="store_true", help="a one-minute smoke version (fewer steps and images)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    for p in sub.choices.values():  # --debug is accepted after the command too
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


# ------------------------------------------------------------------ checks
# Everything that can be known before training is checked here (or in the
# layer owning the concept: parse_classes, check_model_spec, parse_strategy_list),
# so a bad invocation costs no training time.
def _check_device(device: str) -> None:
    import minitl

    if device not in ("cpu", "cuda"):
        raise CLIError(f"unknown --device {device!r}; use cpu or cuda")
    if device == "cuda" and not minitl.cuda.is_available():
        raise CLIError(f"--device cuda: CUDA is unavailable: {minitl.cuda.why_unavailable()}")


def _check_out(path: str, flag: str = "--out", is_dir: bool = False) -> None:
    """``path`` can be written: not a directory (or, with ``is_dir``, not a file) and not under a file."""
    from . import io

    if not is_dir and os.path.splitext(path)[1].lower() not in io.FORMATS:
        raise CLIError(f"{flag} {path}: a weight file ends in {' or '.join(io.FORMATS)}")
    if os.path.exists(path) and os.path.isdir(path) != is_dir:
        raise CLIError(f"{flag} {path}: is {'a file' if is_dir else 'a directory'}; "
                       f"expected {'a directory' if is_dir else 'a file name'}")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CLIError(f"{flag} {path}: {parent} is a file, so nothing can be written under it")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"{flag} {path}: {parent} is not writable")


def _check_data_args(args) -> list[int]:
    """The common data arguments; returns the parsed classes."""
    from .data import catalog
    from .data.tasks import DATASETS, parse_classes

    if args.dataset not in DATASETS:
        raise CLIError(f"unknown --dataset {args.dataset!r}; choose from {', '.join(DATASETS)}")
    _check_device(args.device)
    try:
        classes = parse_classes(args.classes, len(catalog.CATALOG[args.dataset].classes))
    except ValueError as e:
        raise CLIError(f"--classes: {e}") from None
    if len(classes) < 2:
        raise CLIError(f"--classes {args.classes!r}: a classification task needs at least 2 classes")
    if args.limit is not None and args.limit < len(classes):
        raise CLIError(f"--limit {args.limit} is below the number of classes ({len(classes)}): "
                       "every class needs at least one image")
    return classes


def _check_weights(path: str, shape) -> tuple[dict, dict, str]:
    """``(state, metadata, model spec)`` of a weight file that fits inputs of ``shape``, or CLIError."""
    from . import io
    from .models import build_model, spec_from_state

    if not os.path.isfile(path):
        raise CLIError(f"--weights {path}: no such file")
    try:
        state, meta = io.load_with_metadata(path)
        model, num_classes = spec_from_state(state)
    except ValueError as e:
        raise CLIError(f"--weights {e}" if str(e).startswith(path) else f"--weights {path}: {e}") from None
    report = build_model(model, num_classes, shape).load_state_dict(state, strict=False)
    if not report.ok:
        raise CLIError(f"--weights {path}: these {model} weights do not fit inputs of shape {tuple(shape)}: {report}")
    return state, meta, model


def _check_k(k_shots, task, limit) -> None:
    """Every class of the target's training set holds at least max(k) images."""
    import numpy as np

    smallest = int(np.bincount(task.train.labels, minlength=task.num_classes).min())
    if max(k_shots) > smallest:
        raise CLIError(f"--k {max(k_shots)}: the smallest class of {task.name} has {smallest} training "
                       f"images{f' with --limit {limit}' if limit else ''}; use k <= {smallest}")


# ------------------------------------------------------------------------ info
def cmd_info(args) -> int:
    """Print what this installation can do."""
    import numpy as np

    import minitl
    from minitl import kernels
    from minitl.data import catalog, locate

    print(f"minitl {minitl.__version__}  (Python {platform.python_version()}, NumPy {np.__version__}, "
          f"{platform.system()} {platform.machine()})")
    ok, status = kernels.cpu_kernels_status()
    print(status)  # one line: how the C++ kernels were built, or why they were not
    print(f"threads: {minitl.get_num_threads() if ok else 1} (set OMP_NUM_THREADS or minitl.set_num_threads)")
    print(f"kernel mode: {kernels.mode()} (MINITL_KERNELS=reference forces the NumPy reference)")
    devices = ["cpu"] + (["cuda"] if minitl.cuda.is_available() else [])
    for device in devices:
        active = kernels.active(device)
        width = max(len(op) for op in active)
        print(f"active kernels on {device}:")
        for op, backend in active.items():
            print(f"  {op:<{width}}  {backend}")
    if minitl.cuda.is_available():
        why = minitl.cuda.why_unavailable()
        print(f"CUDA: available ({minitl.cuda.device_name()})" + (f"; {why}" if why else ""))
    else:
        print(f"CUDA: unavailable: {minitl.cuda.why_unavailable()}")
    print("datasets:")
    for name, info in catalog.CATALOG.items():
        place, _ = locate.search(info, "train")
        where = f"found in {place.path}" if place is not None else "not found" + (
            f" (get it: {info.install_hint} or --download)" if info.install_hint else " (get it: --download)")
        print(f"  {name:<14} {where}")
    from .experiments import plots

    print("plots: " + ("matplotlib found" if plots.matplotlib_available()
                       else 'matplotlib not installed (pip install "minitl[plot]")'))
    return 0


# --------------------------------------------------------------------- pretrain
def _tasks(args, classes, limit=None):
    from .data.tasks import load_dataset, split_task

    train, test = load_dataset(args.dataset, args.root, args.download)
    return split_task(train, test, classes, args.dataset, limit=limit)


def cmd_pretrain(args) -> int:
    """Train on the source classes; write the weights with their provenance."""
    from .data.tasks import normalization
    from .experiments import Grid, Source, pretrain

    from .models import check_model_spec

    classes = _check_data_args(args)
    try:
        check_model_spec(args.model)
    except ValueError as e:
        raise CLIError(f"--model: {e}") from None
    _check_out(args.out)
    task = _tasks(args, classes, args.limit)
    grid = Grid(sources=[], targets=[], model=args.model, batch_size=args.batch_size, pretrain_lr=args.lr,
                pretrain_steps=args.steps, pretrain_epochs=None if args.steps else (args.epochs or 2),
                pretrain_seed=args.seed, transform=normalization(args.dataset), device=args.device)
    _, record = pretrain(grid, Source(task.name, task=task), args.out, log=_say(args) or (lambda _: None))
    meta = record["meta"]
    print(f"{task.name}: {meta.get('model')} test accuracy {100 * float(meta.get('test_acc', 'nan')):.2f}% "
          f"-> {args.out}")
    return 0


# --------------------------------------------------------------------- transfer
def cmd_transfer(args) -> int:
    """Run a strategies x k x seeds grid from a weight file on the target classes."""
    from .data.tasks import normalization
    from .experiments import Grid, Source, run
    from .transfer import SCRATCH, STRATEGIES, parse_strategy_list

    if args.list:
        for name, text in STRATEGIES.items():
            print(f"{name:<10} {text}")
        return 0
    try:
        merged = parse_strategy_list(args.strategies)
    except ValueError as e:
        raise CLIError(f"--strategies: {e}") from None
    needs_weights = any(s.split(":")[0] != SCRATCH for s in merged)
    if needs_weights and not args.weights:
        raise CLIError("--weights is required for strategies other than scratch")
    classes = _check_data_args(args)
    if args.out:
        _check_out(args.out, is_dir=True)
    target = _tasks(args, classes, args.limit)
    _check_k(args.k, target, args.limit)
    sources, model = [], "lenet"
    if args.weights:
        state, meta, model = _check_weights(args.weights, target.shape)
        name = meta.get("dataset") or os.path.splitext(os.path.basename(args.weights))[0]
        sources.append(Source(name, state=state, meta=meta))
    grid = Grid(sources=sources, targets=[target], strategies=merged, k_shots=args.k,
                seeds=args.seeds, model=model, steps=args.steps, batch_size=args.batch_size,
                lr=args.lr, transform=normalization(args.dataset), device=args.device)
    trained_with = sources[0].meta.get("transform") if sources else None
    if trained_with and trained_with != repr(grid.transform):
        # Weights only transfer well when inputs are scaled as they were in pretraining.
        print(f"warning: the weights were trained with inputs {trained_with}; "
              f"this run uses {grid.transform!r}", file=sys.stderr)
    results = run(grid, out_dir=args.out, log=_say(args), plots=not args.no_plots)
    print(results.table())
    if args.out:
        print(f"\nwritten to {args.out}: results.json, results.csv, runs.csv, results.md"
              + ("" if args.no_plots else ", plots"))
    return 0


# ------------------------------------------------------------------------- demo
def demo_grid(source, target, quick: bool = False, device: str = "cpu"):
    """The demo's configuration (budgets measured to finish in < 10 min on 2 CPU cores)."""
    from .data.tasks import normalization
    from .experiments import Grid, Source

    return Grid(sources=[Source(source.name, task=source)], targets=[target],
                strategies=["scratch", "features", "finetune", "finetune:lr_mult=0.1"],
                k_shots=[5, 20, 100], seeds=[0, 1, 2, 3, 4], model="lenet",
                steps=60 if quick else 300, batch_size=64, lr=0.01,
                lr_by_strategy={"features": 0.1},  # a lone linear head takes a larger step (a linear probe)
                pretrain_epochs=None if quick else 2, pretrain_steps=150 if quick else None,
                transform=normalization("fashion-mnist"), device=device)


def cmd_demo(args) -> int:
    """Pretrain on Fashion-MNIST 0-4, transfer to 5-9, print the table, write the plots."""
    from .data.tasks import fashion_split
    from .experiments import run

    _check_device(args.device)
    _check_out(args.out, is_dir=True)
    start = time.perf_counter()
    say = _say(args)
    source, target = fashion_split(args.root, args.download, limit=3000 if args.quick else None)
    grid = demo_grid(source, target, args.quick, args.device)
    if say:
        say(DEMO_NOTE + "\n")
        lrs = "".join(f", {s} {lr:g}" for s, lr in grid.lr_by_strategy.items())
        say(f"budget: {grid.steps} SGD steps per run (batch {grid.batch_size}, momentum {grid.momentum}, "
            f"lr {grid.lr:g}{lrs}); {len(grid.strategies)} strategies x {len(grid.k_shots)} k x "
            f"{len(grid.seeds)} seeds\n")
    results = run(grid, out_dir=args.out, log=say)
    print("\n" + results.table())
    flagged = results.flagged()
    print(f"\nnegative transfer flagged in {len(flagged)} cell(s)"
          + (": " + ", ".join(f"{c['strategy']} k={c['k']}" for c in flagged) if flagged else ""))
    print(f"results and plots in {args.out}/ ; total {time.perf_counter() - start:.0f} s")
    return 0


COMMANDS = {"info": cmd_info, "pretrain": cmd_pretrain, "transfer": cmd_transfer, "demo": cmd_demo}


def main(argv=None) -> int:
    """Entry point of the ``minitl`` console script; returns the exit status.

    Every error is one line ``minitl: error: ...`` on stderr and status 2
    (1 for an unexpected failure); ``--debug`` shows the traceback instead.
    """
    args = build_parser().parse_args(argv)
    from .data import DatasetNotFoundError

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
    from .data import catalog

    hint = catalog.CATALOG[dataset].install_hint if dataset in catalog.CATALOG else None
    if hint:
        return f"Get it with one command:  {hint}   (or rerun with --download)"
    return "Get it by rerunning with --download"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
