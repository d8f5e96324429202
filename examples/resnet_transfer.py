"""ResNet-18 transfer with BatchNorm: feature extraction vs fine-tuning (the seeds' systems).

Source: Fashion-MNIST classes 0-4, padded to 32x32; target: classes 5-9.
A ResNet-18 (``width=16``, ``small_input=True``: the CIFAR stem) is pretrained
on the source, then every strategy gets the same step budget on k-shot
samples of the target, paired by seed with scratch:

- ``scratch``: random initialisation, the plain ``fc`` head;
- ``features:head=mlp256``: the seed's feature extraction, backbone frozen
  (its BatchNorm layers eval-locked, so their statistics stay bit-identical)
  under the two-layer head Linear(128, 256) -> ReLU -> Linear(256, 5), trained
  on cached features;
- ``features:head=mlp1024d0.5,opt=adam``: the seed's ResNet-50 head swap
  (Linear -> ReLU -> Dropout(0.5) -> Linear, Adam lr 1e-3), here on ResNet-18;
- ``finetune``: every layer trains, BatchNorm statistics follow the target;
- ``finetune:bn=frozen``: every layer trains, BatchNorm statistics kept from
  the source (what helps when k-shot batches are tiny).

    python examples/resnet_transfer.py                               # under 10 min on 2 cores
    python examples/resnet_transfer.py --quick                       # a smoke run
    python examples/resnet_transfer.py --dataset cifar-10 --download # the seed's CIFAR-10 setting
"""
from __future__ import annotations

import os
import time

from common import example_parser
from minitl.data import Compose, Pad
from minitl.data.tasks import Task, limit_dataset, load_dataset, normalization, split_task
from minitl.experiments import Grid, Source, run

MODEL = "resnet18:width=16"
STRATEGIES = ["scratch", "features:head=mlp256", "features:head=mlp1024d0.5,opt=adam", "finetune",
              "finetune:bn=frozen"]


def parse_args(argv=None):
    p = example_parser(__doc__, "resnet_transfer")
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "cifar-10"])
    p.add_argument("--k", default="5,20,100", help="examples per target class, comma-separated")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=30, help="optimizer steps of every target run")
    p.add_argument("--pretrain-steps", type=int, default=150)
    p.add_argument("--backbone-swaps", action="store_true",
                   help="rerun every transfer run on the next seed's backbone for the backbone's share "
                        "of the spread (backbone_std); doubles the runtime")
    p.add_argument("--source-images", type=int, default=5000, help="source training images (class-balanced)")
    p.add_argument("--test-images", type=int, default=1000, help="target test images (class-balanced)")
    return p.parse_args(argv)


def tasks(args):
    """(source, target): classes 0-4 and 5-9 of the dataset, with the sizes asked for."""
    train, test = load_dataset(args.dataset, args.root, args.download)
    source = split_task(train, test, "0-4", args.dataset)
    target = split_task(train, test, "5-9", args.dataset)
    source = Task(source.name, limit_dataset(source.train, args.source_images),
                  limit_dataset(source.test, args.test_images))
    target = Task(target.name, target.train, limit_dataset(target.test, args.test_images))
    return source, target


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.k, args.seeds, args.steps, args.pretrain_steps = "5,20", 1, 5, 10
        args.source_images, args.test_images = 500, 200
    start = time.perf_counter()
    source, target = tasks(args)
    norm = normalization(args.dataset)
    # Fashion-MNIST is 28x28: pad by 2 to the 32x32 the CIFAR stem expects (0 is the background).
    transform = Compose([Pad(2), norm]) if args.dataset == "fashion-mnist" else norm
    grid = Grid(sources=[Source(source.name, task=source)], targets=[target], strategies=STRATEGIES,
                k_shots=[int(k) for k in args.k.split(",")], seeds=list(range(args.seeds)), model=MODEL,
                steps=args.steps, batch_size=64, lr=0.01,
                lr_by_strategy={"features:head=mlp1024d0.5,opt=adam": 1e-3},
                pretrain_steps=args.pretrain_steps, pretrain_epochs=None, pretrain_lr=0.05,
                backbone_swaps=args.backbone_swaps,
                transform=transform, cache_dir=os.path.join(args.out, "pretrained"))
    results = run(grid, out_dir=args.out, plots=not args.quick)
    print(f"\n{MODEL} (small_input) on {args.dataset}, {len(source.train)} source images, "
          f"{args.pretrain_steps} pretraining steps; every target run {args.steps} steps of batch "
          f"min(64, 5k); test on {len(target.test)} target images\n")
    print(results.table())
    print(f"\nresults in {args.out}/ ; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
