"""The sub-commands: ``info``, ``pretrain``, ``transfer``, ``demo``, ``meta``."""
from __future__ import annotations

import os
import platform
import sys
import time

from .arguments import CLIError
from .checks import check_data_args, check_device, check_k, check_out, check_weights

DEMO_NOTE = """\
The demo: LeNet pretrained on Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover,
dress, coat), then trained on classes 5-9 (sandal, shirt, sneaker, bag, ankle boot)
from k examples per class, with one step budget for every strategy, and scored on
all 5,000 test images of classes 5-9. Differences are paired with scratch on the
same seed (same k-shot sample, same batch order, same head initialisation)."""


def _say(args):
    return None if getattr(args, "quiet", False) else (lambda line: print(line, flush=True))


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
    name_width = max(map(len, catalog.CATALOG))
    for name, info in catalog.CATALOG.items():
        place, _ = locate.search(info, "train")
        where = f"found in {place.path}" if place is not None else "not found" + (
            f" (get it: {info.install_hint} or --download)" if info.install_hint else " (get it: --download)")
        print(f"  {name:<{name_width}}  {where}")
    from ..experiments import plots

    print("plots: " + ("matplotlib found" if plots.matplotlib_available()
                       else 'matplotlib not installed (pip install "minitl[plot]")'))
    return 0


# --------------------------------------------------------------------- pretrain
def _tasks(args, classes, limit=None):
    from ..data.tasks import load_dataset, split_task

    train, test = load_dataset(args.dataset, args.root, args.download)
    return split_task(train, test, classes, args.dataset, limit=limit)


def cmd_pretrain(args) -> int:
    """Train on the source classes; write the weights with their provenance."""
    from ..data.tasks import normalization
    from ..experiments import Grid, Source, pretrain

    from ..models import check_model_spec

    classes = check_data_args(args)
    try:
        check_model_spec(args.model)
    except ValueError as e:
        raise CLIError(f"--model: {e}") from None
    check_out(args.out)
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
    from ..data.tasks import DATASETS, normalization
    from ..experiments import Grid, Source, run
    from ..models import check_model_spec
    from ..transfer import SCRATCH, STRATEGIES, parse_strategy_list

    if args.list:
        for name, text in STRATEGIES.items():
            print(f"{name:<10} {text}")
        return 0
    try:
        merged = parse_strategy_list(args.strategies)
    except ValueError as e:
        raise CLIError(f"--strategies: {e}") from None
    needs_weights = any(s.split(":")[0] != SCRATCH for s in merged)
    if args.weights and args.source_dataset:
        raise CLIError("give --weights or --source-dataset, not both")
    if needs_weights and not (args.weights or args.source_dataset):
        raise CLIError("--weights or --source-dataset is required for strategies other than scratch")
    if args.source_dataset is not None and args.source_dataset not in DATASETS:
        raise CLIError(f"unknown --source-dataset {args.source_dataset!r}; choose from {', '.join(DATASETS)}")
    if args.classes is None:
        args.classes = _default_target_classes(args)
    classes = check_data_args(args)
    if args.model is not None:
        try:
            check_model_spec(args.model)
        except ValueError as e:
            raise CLIError(f"--model: {e}") from None
    if args.out:
        check_out(args.out, is_dir=True)
    target = _tasks(args, classes, args.limit)
    check_k(args.k, target, args.limit)
    sources, model = [], args.model or "lenet"
    if args.source_dataset:
        sources.append(Source(*_source_task(args)))
    elif args.weights:
        state, meta, spec = check_weights(args.weights, target.shape)
        model = args.model or spec
        name = meta.get("dataset") or os.path.splitext(os.path.basename(args.weights))[0]
        sources.append(Source(name, state=state, meta=meta))
    # Inputs are scaled as the source's were in pretraining: the weights expect that scale.
    scale = normalization(args.source_dataset or args.dataset)
    grid = Grid(sources=sources, targets=[target], strategies=merged, k_shots=args.k,
                seeds=args.seeds, model=model, steps=args.steps, batch_size=args.batch_size,
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


def _default_target_classes(args) -> str:
    """5-9 (the split setting) or, across datasets, every class of the target."""
    if args.source_dataset and args.source_dataset != args.dataset:
        from ..data.tasks import dataset_classes

        return f"0-{len(dataset_classes(args.dataset)) - 1}"
    return "5-9"


def _classes_list(text, dataset: str) -> list[int]:
    """``--classes``-style text as class indices of ``dataset``, or CLIError naming the problem."""
    from ..data.tasks import dataset_classes, parse_classes

    try:
        return parse_classes(text, len(dataset_classes(dataset)))
    except ValueError as e:
        raise CLIError(f"classes {text!r}: {e}") from None


def _source_task(args):
    """``(name, task)`` of the pretraining source of ``minitl transfer --source-dataset``."""
    from ..data.tasks import dataset_classes, load_dataset, split_task

    same = args.source_dataset == args.dataset
    classes = (_classes_list(args.source_classes, args.source_dataset) if args.source_classes
               else [0, 1, 2, 3, 4] if same else list(range(len(dataset_classes(args.source_dataset)))))
    train, test = load_dataset(args.source_dataset, args.root, args.download)
    task = split_task(train, test, classes, args.source_dataset, limit=args.limit)
    return task.name, task


# ------------------------------------------------------------------------- demo
def demo_grid(source, target, quick: bool = False, device: str = "cpu", per_seed: bool = True):
    """The demo's configuration (budgets measured to finish in < 10 min on 2 CPU cores).

    Each seed pretrains its own backbone (2 epochs, ~10 s on 2 cores) unless ``per_seed`` is False.
    """
    from ..data.tasks import normalization
    from ..experiments import Grid, Source

    return Grid(sources=[Source(source.name, task=source)], targets=[target],
                strategies=["scratch", "features", "finetune", "finetune:lr_mult=0.1"],
                k_shots=[5, 20, 100], seeds=[0, 1, 2, 3, 4], model="lenet",
                steps=60 if quick else 300, batch_size=64, lr=0.01,
                lr_by_strategy={"features": 0.1},  # a lone linear head takes a larger step (a linear probe)
                pretrain_epochs=None if quick else 2, pretrain_steps=150 if quick else None,
                transform=normalization("fashion-mnist"), device=device, pretrain_per_seed=per_seed)


def cmd_demo(args) -> int:
    """Pretrain on Fashion-MNIST 0-4, transfer to 5-9, print the table, write the plots."""
    from ..data.tasks import fashion_split
    from ..experiments import run

    check_device(args.device)
    check_out(args.out, is_dir=True)
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
def cmd_meta(args) -> int:
    """Meta-learn start points on source-class tasks; compare them on held-out tasks."""
    from ..data.tasks import normalization
    from ..experiments.meta import MetaConfig, run_meta

    check_data_args(args)
    source = _tasks(args, _classes_list(args.source_classes, args.dataset), args.limit)
    target = _tasks(args, _classes_list(args.classes, args.dataset), args.limit)
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
