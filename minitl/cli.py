"""The ``minitl`` command (also ``python -m minitl``).

    minitl info                                    version, kernels, CUDA, threads, data
    minitl pretrain --classes 0-4 --epochs 2 --out lenet04.safetensors
    minitl transfer --weights lenet04.safetensors --classes 5-9 --k 5,20,100 --seeds 3 --out runs/t
    minitl transfer --source-dataset mnist --dataset emnist-letters --model mlp --k 5,20 --out runs/x
    minitl meta --ways 3 --shots 5 --out runs/meta   Reptile and first-order MAML vs pretrain and scratch
    minitl demo                                    the whole story on Fashion-MNIST, < 10 min on 2 cores
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

DEMO_NOTE = """\
The demo: LeNet pretrained on Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover,
dress, coat), then trained on classes 5-9 (sandal, shirt, sneaker, bag, ankle boot)
from k examples per class, with one step budget for every strategy, and scored on
all 5,000 test images of classes 5-9. Differences are paired with scratch on the
same seed (same k-shot sample, same batch order, same head initialisation)."""


def _classes_list(text):
    from .data.tasks import parse_classes

    return parse_classes(text)


def _ints(text) -> list[int]:
    return [int(v) for v in text.replace(" ", "").split(",") if v]


def _seeds(text) -> list[int]:
    """``'3'`` -> seeds 0, 1, 2; ``'4,7,9'`` -> those seeds."""
    return list(range(int(text))) if "," not in text else _ints(text)


def _say(args):
    return None if getattr(args, "quiet", False) else (lambda line: print(line, flush=True))


def _common_data(p):
    p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist (default), mnist, kmnist, cifar-10")
    p.add_argument("--root", default=None, help="directory holding the dataset's files")
    p.add_argument("--download", action="store_true", help="download the dataset if it is not found")
    p.add_argument("--limit", type=int, default=None,
                   help="use at most this many (class-balanced) train and test images per task: smoke runs")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--quiet", action="store_true", help="print only the result")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="minitl", description="minitl: transfer learning end to end.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("info", help="version, active kernels, CUDA status, threads, datasets found")

    p = sub.add_parser("pretrain", help="train a model on some classes and save its weights")
    _common_data(p)
    p.add_argument("--classes", default="0-4", help="source classes, e.g. 0-4 or 0,2,4 (default 0-4)")
    p.add_argument("--model", default="lenet", help="lenet (default), mlp, mlp:H1,H2, resnet18|34|50 or "
                   "resnet18:width=16 (options width=N, small_input=0|1)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=int, default=None, help="passes over the data (default 2)")
    group.add_argument("--steps", type=int, default=None, help="optimizer steps instead of epochs")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="weight file to write (.safetensors or .npz); a file there "
                   "with the same provenance (data, model, budget, seed) is reused")

    p = sub.add_parser("transfer", help="compare transfer strategies against scratch on target classes")
    _common_data(p)
    p.add_argument("--weights", help="pretrained weight file (from minitl pretrain or any LeNet/MLP/ResNet)")
    p.add_argument("--classes", default=None,
                   help="target classes (default 5-9; all classes when --source-dataset is another dataset)")
    p.add_argument("--strategies", default="scratch,features,finetune",
                   help="comma-separated strategy specs; see --list")
    p.add_argument("--k", default="5,20,100", help="examples per class, comma-separated (default 5,20,100)")
    p.add_argument("--seeds", default="3", help="N for seeds 0..N-1, or a list such as 0,4,7 (default 3)")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps of every run (default 300)")
    p.add_argument("--lr", type=float, default=0.01)
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
    p.add_argument("--pretrain-epochs", type=int, default=2, help="pretraining epochs (default 2)")
    _add_per_seed(p)


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

    task = _tasks(args, _classes_list(args.classes), args.limit)
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
    from . import io
    from .data.tasks import normalization
    from .experiments import Grid, Source, run
    from .models import spec_from_state
    from .transfer import SCRATCH, STRATEGIES, parse_strategy_list

    if args.list:
        for name, text in STRATEGIES.items():
            print(f"{name:<10} {text}")
        return 0
    merged = parse_strategy_list(args.strategies)
    needs_weights = any(s.split(":")[0] != SCRATCH for s in merged)
    if args.weights and args.source_dataset:
        raise SystemExit("minitl transfer: give --weights or --source-dataset, not both")
    if needs_weights and not (args.weights or args.source_dataset):
        raise SystemExit("minitl transfer: --weights or --source-dataset is required for strategies other than "
                         "scratch")
    target = _tasks(args, _target_classes(args), args.limit)
    sources, model = [], args.model or "lenet"
    if args.source_dataset:
        sources.append(Source(*_source_task(args)))
    elif args.weights:
        state, meta = io.load_with_metadata(args.weights)
        model = args.model or spec_from_state(state)[0]
        name = meta.get("dataset") or os.path.splitext(os.path.basename(args.weights))[0]
        sources.append(Source(name, state=state, meta=meta))
    # Inputs are scaled as the source's were in pretraining: the weights expect that scale.
    scale = normalization(args.source_dataset or args.dataset)
    grid = Grid(sources=sources, targets=[target], strategies=merged, k_shots=_ints(args.k),
                seeds=_seeds(args.seeds), model=model, steps=args.steps, batch_size=args.batch_size,
                lr=args.lr, transform=scale, device=args.device, pretrain_per_seed=args.pretrain_per_seed,
                pretrain_epochs=args.pretrain_epochs)
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


def _target_classes(args):
    """--classes, else 5-9 (the split setting) or, across datasets, every class of the target."""
    if args.classes is not None:
        return _classes_list(args.classes)
    if args.source_dataset and args.source_dataset != args.dataset:
        from .data.tasks import dataset_classes

        return list(range(len(dataset_classes(args.dataset))))
    return [5, 6, 7, 8, 9]


def _source_task(args):
    """``(name, task)`` of the pretraining source of ``minitl transfer --source-dataset``."""
    from .data.tasks import dataset_classes, load_dataset, split_task

    same = args.source_dataset == args.dataset
    classes = (_classes_list(args.source_classes) if args.source_classes
               else [0, 1, 2, 3, 4] if same else list(range(len(dataset_classes(args.source_dataset)))))
    train, test = load_dataset(args.source_dataset, args.root, args.download)
    task = split_task(train, test, classes, args.source_dataset, limit=args.limit)
    return task.name, task


# ------------------------------------------------------------------------- demo
def demo_grid(source, target, quick: bool = False, device: str = "cpu", per_seed: bool = True):
    """The demo's configuration (budgets measured to finish in < 10 min on 2 CPU cores).

    Each seed pretrains its own backbone (2 epochs, ~10 s on 2 cores) unless ``per_seed`` is False.
    """
    from .data.tasks import normalization
    from .experiments import Grid, Source

    return Grid(sources=[Source(source.name, task=source)], targets=[target],
                strategies=["scratch", "features", "finetune", "finetune:lr_mult=0.1"],
                k_shots=[5, 20, 100], seeds=[0, 1, 2, 3, 4], model="lenet",
                steps=60 if quick else 300, batch_size=64, lr=0.01,
                lr_by_strategy={"features": 0.1},  # a lone linear head takes a larger step (a linear probe)
                pretrain_epochs=None if quick else 2, pretrain_steps=150 if quick else None,
                transform=normalization("fashion-mnist"), device=device, pretrain_per_seed=per_seed)


def cmd_demo(args) -> int:
    """Pretrain on Fashion-MNIST 0-4, transfer to 5-9, print the table, write the plots."""
    from .data.tasks import fashion_split
    from .experiments import run

    start = time.perf_counter()
    say = _say(args)
    source, target = fashion_split(args.root, args.download, limit=3000 if args.quick else None)
    grid = demo_grid(source, target, args.quick, args.device, args.pretrain_per_seed)
    if say:
        say(DEMO_NOTE + "\n")
        lrs = "".join(f", {s} {lr:g}" for s, lr in grid.lr_by_strategy.items())
        say(f"budget: {grid.steps} SGD steps per run (batch {grid.batch_size}, momentum {grid.momentum}, "
            f"lr {grid.lr:g}{lrs}); {len(grid.strategies)} strategies x {len(grid.k_shots)} k x "
            f"{len(grid.seeds)} seeds; "
            + ("one pretrained backbone per seed\n" if grid.pretrain_per_seed else "one pretrained backbone for "
               "every seed\n"))
    results = run(grid, out_dir=args.out, log=say)
    print("\n" + results.table())
    flagged = results.flagged()
    print(f"\nnegative transfer flagged in {len(flagged)} cell(s)"
          + (": " + ", ".join(f"{c['strategy']} k={c['k']}" for c in flagged) if flagged else ""))
    print(f"results and plots in {args.out}/ ; total {time.perf_counter() - start:.0f} s")
    return 0


# ------------------------------------------------------------------------- meta
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


def cmd_meta(args) -> int:
    """Meta-learn start points on source-class tasks; compare them on held-out tasks."""
    from .data.tasks import normalization
    from .experiments.meta import MetaConfig, run_meta

    source = _tasks(args, _classes_list(args.source_classes), args.limit)
    target = _tasks(args, _classes_list(args.classes), args.limit)
    config = MetaConfig(ways=args.ways, shots=args.shots, query=args.query,
                        methods=[m for m in args.methods.replace(" ", "").split(",") if m], model=args.model,
                        meta_iters=20 if args.quick else args.meta_iters, inner_steps=args.inner_steps,
                        tasks=4 if args.quick else args.tasks, adapt_steps=args.adapt_steps, lr=args.lr,
                        seed=args.seed, batch_size=args.batch_size, transform=normalization(args.dataset),
                        device=args.device)
    results = run_meta(config, source, target, out_dir=args.out, log=_say(args))
    print(results.table())
    if args.out:
        print(f"\nwritten to {args.out}: meta.json, meta.md, meta.png (with matplotlib), the pretrained weights")
    return 0


COMMANDS = {"info": cmd_info, "pretrain": cmd_pretrain, "transfer": cmd_transfer, "demo": cmd_demo,
            "meta": cmd_meta}


def main(argv=None) -> int:
    """Entry point of the ``minitl`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .data import DatasetNotFoundError

    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
    except DatasetNotFoundError as exc:
        print(f"minitl {args.command}: {exc}\n\n{_get_data_hint(getattr(args, 'dataset', 'fashion-mnist'))}",
              file=sys.stderr)
        return 2


def _get_data_hint(dataset: str) -> str:
    """The one command that gets ``dataset``: its system package where there is one, else --download."""
    from .data import catalog

    hint = catalog.CATALOG[dataset].install_hint if dataset in catalog.CATALOG else None
    if hint:
        return f"Get it with one command:  {hint}   (or rerun with --download)"
    return "Get it by rerunning with --download"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
