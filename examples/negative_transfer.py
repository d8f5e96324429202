"""Negative transfer: a source that hurts, flagged by the experiment runner.

LeNet is pretrained on three versions of a small source task (1,000 images
of Fashion-MNIST classes 0-4, many epochs, the same recipe for all three),
then fine-tuned on the target task (classes 5-9) against scratch with the
same budget:

- **clean**: the real images and labels (the usual, helpful source);
- **shuffled labels**: the labels randomly permuted across images; the
  network can only memorise noise, and its weights end up shaped for that;
- **permuted pixels**: one fixed random permutation of the 784 pixels applied
  to every image; the labels are learnable, but the spatial structure the
  convolutions rely on is gone.

The runner pairs every run with scratch on the same seed and flags a cell as
NEGATIVE TRANSFER when the 95% interval of the difference lies below zero.

    python examples/negative_transfer.py            # about 2 min on 2 cores
    python examples/negative_transfer.py --quick    # a smoke run
"""
from __future__ import annotations


import numpy as np

from common import example_parser, fashion_tasks
from minitl.data import ArrayDataset
from minitl.data.tasks import Task, normalization
from minitl.experiments import Grid, Source, run


def shuffled_labels(task: Task, seed: int = 0) -> Task:
    """The task with every label replaced by a random other example's label."""
    rng = np.random.default_rng(seed)

    def shuffle(d):
        return ArrayDataset(d.images, rng.permutation(d.labels), d.classes, d.indices)
    return Task(task.name + " shuffled labels", shuffle(task.train), shuffle(task.test))


def permuted_pixels(task: Task, seed: int = 0) -> Task:
    """The task with one fixed random permutation of the pixels applied to every image."""
    perm = np.random.default_rng(seed).permutation(task.train.images[0].size)

    def permute(d):
        flat = d.images.reshape(len(d), -1)[:, perm]
        return ArrayDataset(flat.reshape(d.images.shape), d.labels, d.classes, d.indices)
    return Task(task.name + " permuted pixels", permute(task.train), permute(task.test))


def parse_args(argv=None):
    p = example_parser(__doc__, "negative_transfer")
    p.add_argument("--k", default="20", help="examples per target class, comma-separated")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--source-images", type=int, default=1000, help="source training images (balanced)")
    p.add_argument("--source-epochs", type=int, default=150, help="pretraining epochs (enough to memorise)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps of every target run")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.source_images, args.source_epochs = 100, 3, 500, 40
    clean, target = fashion_tasks(args, limit=2000 if args.quick else None, source_limit=args.source_images)

    sources = [Source(t.name, task=t) for t in (clean, shuffled_labels(clean), permuted_pixels(clean))]
    grid = Grid(sources=sources, targets=[target], strategies=["scratch", "finetune"],
                k_shots=[int(k) for k in args.k.split(",")], seeds=list(range(args.seeds)), steps=args.steps,
                transform=normalization("fashion-mnist"), pretrain_epochs=args.source_epochs, pretrain_lr=0.05)
    results = run(grid, out_dir=args.out, log=None, plots=False)

    print(f"pretraining: {len(clean.train)} source images, {args.source_epochs} epochs, SGD lr 0.05")
    for name, record in results.pretrain.items():  # one pretrained backbone per seed
        accs = ", ".join(f"{100 * float(d['meta']['test_acc']):.1f}%" for d in record["draws"])
        print(f"  {name:<40} source test accuracy {accs}")
    print()
    print(results.table())
    print()
    for c in results.cells:
        if c["diff"] is not None:
            d = c["diff"]
            flag = "NEGATIVE TRANSFER" if c["negative_transfer"] else "better" if c["positive_transfer"] else "n.s."
            print(f"{c['strategy']} from {c['source']:<40} k={c['k']}: {100 * d['mean']:+6.1f} points "
                  f"[{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]  {flag}")


if __name__ == "__main__":
    main()
