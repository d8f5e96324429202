"""Scratch vs transfer with LeNet: pretrain on one task, train on another.

Fashion-MNIST is split in two tasks: classes 0-4 (T-shirt, trouser, pullover,
dress, coat) are the source, classes 5-9 (sandal, shirt, sneaker, bag, ankle
boot) the target. LeNet is pretrained on the source; then, for each seed, the
same k examples per target class train two models for the same number of
steps: one from random weights (scratch), one from the pretrained weights
with a new head (finetune). Both are scored on all 5,000 target test images,
and the difference is paired by seed.

    python examples/scratch_vs_transfer.py             # k=10, 5 seeds, about 30 s on 2 cores
    python examples/scratch_vs_transfer.py --quick     # a smoke run
"""
from __future__ import annotations

import os

import minitl
from common import example_parser, fashion_tasks
from minitl import train, transfer
from minitl.data import DataLoader
from minitl.data.tasks import normalization
from minitl.experiments import Grid, Source, pretrain, stats
from minitl.models import LeNet


def parse_args(argv=None):
    p = example_parser(__doc__, "examples")
    p.add_argument("--k", type=int, default=10, help="training examples per target class")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=200, help="optimizer steps on the target, for both models")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.seeds, args.steps = 3, 40
    source, target = fashion_tasks(args, limit=2000 if args.quick else None)
    norm = normalization("fashion-mnist")  # the same input scaling on both tasks

    # 1. Pretrain on the source task; the weights are cached with their provenance.
    recipe = Grid(sources=[], targets=[], model="lenet", transform=norm,
                  pretrain_epochs=None if args.quick else 1, pretrain_steps=100 if args.quick else None)
    path = os.path.join(args.out, "lenet-fashion-mnist-0-4" + ("-quick" if args.quick else "") + ".safetensors")
    weights, _ = pretrain(recipe, Source(source.name, task=source), path)

    # 2. Train on the target from scratch and from the pretrained weights: same sample, seed and steps.
    test_loader = DataLoader(target.test, 1000, transform=norm)
    acc = {"scratch": [], "finetune": []}
    print(f"\n{target.name}: {args.k} examples per class, {args.steps} steps, "
          f"scored on {len(target.test)} test images")
    for seed in range(args.seeds):
        sample = target.train.k_shot(args.k, seed)
        for strategy in acc:
            minitl.manual_seed(seed)  # the same new head for both
            setup = transfer.prepare(strategy, LeNet(num_classes=5), weights, num_classes=5, lr=0.01)
            loader = DataLoader(sample, 64, shuffle=True, seed=seed, transform=norm)
            train.fit(setup.model, loader, setup.optimizer, steps=args.steps, progress=False)
            acc[strategy].append(train.evaluate(setup.model, test_loader)["acc"])
        print(f"  seed {seed}: scratch {100 * acc['scratch'][-1]:5.1f}%   "
              f"transfer {100 * acc['finetune'][-1]:5.1f}%")

    # 3. Means with 95% intervals, and the paired difference.
    for strategy, values in acc.items():
        m = stats.mean_ci(values)
        print(f"{strategy:>9}: {100 * m.mean:5.1f}% (95% CI {100 * m.lo:.1f} to {100 * m.hi:.1f})")
    d = stats.paired_difference(acc["finetune"], acc["scratch"])
    verdict = "transfer helps" if d.lo > 0 else "transfer hurts" if d.hi < 0 else "no clear difference"
    print(f"transfer - scratch: {100 * d.mean:+.1f} points (95% CI {100 * d.lo:+.1f} to {100 * d.hi:+.1f}, "
          f"paired t-test p = {d.p_value:.3g}): {verdict}")


if __name__ == "__main__":
    main()
