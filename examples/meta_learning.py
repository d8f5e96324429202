"""Meta-learning with Reptile vs pretrain-then-fine-tune, on few-shot Fashion-MNIST tasks.

A few-shot task: N classes drawn at random, labelled 0..N-1 in random order,
K training images each (the support set); it is scored on other images of
those classes (the query set). Meta-training tasks come from classes 0-4,
test tasks from classes 5-9, never seen in meta-training.

- **Reptile** (Nichol et al., 2018) learns an initialisation: for each task,
  a few SGD steps from the current weights w reach w'; then w moves towards
  w' (w += eps * (w' - w), eps annealed to 0). The head is meta-learned too.
- **pretrain**: ordinary 5-way training on classes 0-4, then a new N-way head.
- **scratch**: random weights.

On every test task the three start points are adapted by the same procedure
(the same support set, steps and learning rate) and scored on the same
query set; the differences are paired by task.

    python examples/meta_learning.py            # 3-way 5-shot; about 1 min on 2 cores
    python examples/meta_learning.py --quick    # a smoke run
"""
from __future__ import annotations

import os

import numpy as np

import minitl
import minitl.nn.functional as F
from common import example_parser, fashion_tasks
from minitl import optim, train
from minitl.data import DataLoader
from minitl.data.tasks import normalization
from minitl.experiments import Grid, Source, pretrain, stats
from minitl.models import LeNet

NORM = normalization("fashion-mnist")


def draw_task(dataset, n_way, k, rng, query=None, query_set=None):
    """Support (and query) arrays of a random N-way task; labels follow the drawn class order."""
    classes = rng.choice(len(dataset.classes), n_way, replace=False)

    def pick(d, c, n):
        return rng.choice(np.flatnonzero(d.labels == c), n, replace=False)
    support = np.concatenate([pick(dataset, c, k) for c in classes])
    out = (dataset.images[support], np.repeat(np.arange(n_way), k))
    if query_set is not None:
        q = np.concatenate([pick(query_set, c, query) for c in classes])
        out += (query_set.images[q], np.repeat(np.arange(n_way), query))
    return out


def adapt(model, images, labels, steps, lr):
    """Full-batch SGD on a support set (the inner loop, and test-time adaptation)."""
    x, y = minitl.tensor(NORM(images)), minitl.tensor(labels)
    opt = optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def reptile(source, n_way, k, iters, inner_steps, inner_lr, seed=0):
    """A LeNet initialisation meta-learned over N-way K-shot tasks from ``source``."""
    minitl.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = LeNet(num_classes=n_way)
    params = list(model.parameters())
    for it in range(iters):
        images, labels = draw_task(source, n_way, k, rng)
        start = [p.data.copy() for p in params]
        adapt(model, images, labels, inner_steps, inner_lr)
        eps = 1.0 - it / iters  # the outer step size, annealed linearly to 0
        for p, w in zip(params, start):
            p.data = w + eps * (p.data - w)
    return model.state_dict()


def parse_args(argv=None):
    p = example_parser(__doc__, "examples", "smoke run")
    for name, default in (("ways", 3), ("shots", 5), ("meta-iters", 1000), ("tasks", 20), ("adapt-steps", 20)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate of every inner/adaptation loop")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.meta_iters, args.tasks = 100, 6
    source, target = fashion_tasks(args)
    inner = 5  # inner steps per meta-iteration
    seen = args.meta_iters * inner * args.ways * args.shots
    print(f"Reptile: {args.meta_iters} {args.ways}-way {args.shots}-shot tasks from {source.name}, "
          f"{inner} SGD steps each ({seen:,} sample-gradients)")
    meta = reptile(source.train, args.ways, args.shots, args.meta_iters, inner, args.lr)
    # Pretraining gets a similar budget: the same number of sample-gradients, in batches of 64.
    recipe = Grid(sources=[], targets=[], transform=NORM, pretrain_steps=max(1, seen // 64), pretrain_epochs=None)
    weights, _ = pretrain(recipe, Source(source.name, task=source),
                          os.path.join(args.out, f"lenet-fashion-mnist-0-4-{seen // 64}steps.safetensors"))

    rng = np.random.default_rng(123)
    acc = {"scratch": [], "pretrain": [], "reptile": []}
    for t in range(args.tasks):
        images, labels, q_images, q_labels = draw_task(target.train, args.ways, args.shots, rng, 200, target.test)
        query = DataLoader((q_images, q_labels), 1000, transform=NORM)
        for name in acc:
            minitl.manual_seed(t)  # the same fresh head for scratch and pretrain
            model = LeNet(num_classes=5 if name == "pretrain" else args.ways)
            if name == "pretrain":
                model.load_state_dict(weights)
                model.reset_classifier(args.ways)
            elif name == "reptile":
                model.load_state_dict(meta)
            adapt(model, images, labels, args.adapt_steps, args.lr)
            acc[name].append(train.evaluate(model, query)["acc"])

    print(f"\n{args.tasks} test tasks, {args.ways}-way {args.shots}-shot from {target.name}; "
          f"{args.adapt_steps} SGD steps on the support set, 200 query images per class")
    for name, values in acc.items():
        m = stats.mean_ci(values)
        print(f"  {name:<8} {100 * m.mean:5.1f}%  (95% CI {100 * m.lo:.1f} to {100 * m.hi:.1f})")
    for a, b in (("reptile", "scratch"), ("pretrain", "scratch"), ("reptile", "pretrain")):
        d = stats.paired_difference(acc[a], acc[b])
        print(f"  {a} - {b}: {100 * d.mean:+.1f} points (95% CI {100 * d.lo:+.1f} to {100 * d.hi:+.1f})")


if __name__ == "__main__":
    main()
