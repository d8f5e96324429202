"""Train LeNet on Fashion-MNIST and print, per epoch, the loss, test accuracy and samples/s.

    python examples/train_lenet.py                       # 3 epochs, batch 64, CPU
    python examples/train_lenet.py --device cuda
    python examples/train_lenet.py --epochs 1 --limit 2000   # a smoke run

The recipe (batch 64, SGD lr 0.01 momentum 0.9, inputs (x/255 - 0.2860)/0.3530)
reaches at least 88% test accuracy after 3 epochs, as the same LeNet does in
PyTorch. The data comes from wherever ``FashionMNIST`` finds it (``--root``,
``$MINITL_DATA``, the download cache, Debian's ``dataset-fashion-mnist``), or
is downloaded with ``--download``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import minitl
import minitl.nn.functional as F
from minitl import optim
from minitl.data import DataLoader, FashionMNIST, Normalize
from minitl.models import LeNet

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST's training-set pixel mean and std, in [0, 1] units


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--limit", type=int, default=None,
                   help="use only this many training images (a class-balanced sample) and a "
                        "proportional slice of the test set, for smoke runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default=None, help="directory holding the Fashion-MNIST files")
    p.add_argument("--download", action="store_true", help="fetch the files if they are not found")
    return p.parse_args(argv)


def evaluate(model, loader) -> float:
    """Top-1 accuracy of ``model`` over ``loader``."""
    model.eval()
    correct = total = 0
    with minitl.no_grad():
        for x, y in loader:
            pred = model(x).numpy().argmax(axis=1)
            correct += int((pred == y.numpy()).sum())
            total += len(pred)
    model.train()
    return correct / max(total, 1)


def main(argv=None) -> float:
    args = parse_args(argv)
    minitl.manual_seed(args.seed)
    train = FashionMNIST(root=args.root, train=True, download=args.download)
    test = FashionMNIST(root=args.root, train=False, download=args.download)
    if args.limit:
        # A balanced sample keeps the classes even in a small run.
        train = train.k_shot(max(1, args.limit // train.num_classes), seed=args.seed)
        test = test.k_shot(max(1, min(1000, args.limit // (6 * test.num_classes))), seed=args.seed)

    normalize = Normalize(MEAN, STD)
    train_loader = DataLoader(train, args.batch_size, shuffle=True, seed=args.seed,
                              transform=normalize, device=args.device)
    test_loader = DataLoader(test, 1000, transform=normalize, device=args.device)

    model = LeNet().to(args.device)
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    print(f"LeNet on Fashion-MNIST: {len(train)} train / {len(test)} test images, "
          f"batch {args.batch_size}, SGD lr {args.lr} momentum {args.momentum}, device {args.device}, "
          f"kernels {'/'.join(sorted(set(minitl.kernels.active(args.device).values())))}", flush=True)

    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses, seen = [], 0
        start = time.perf_counter()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())  # .item() syncs the GPU, so the timing below is honest
            seen += len(y)
        elapsed = time.perf_counter() - start
        accuracy = evaluate(model, test_loader)
        print(f"epoch {epoch}: loss {np.mean(losses):.4f}  test accuracy {100 * accuracy:.2f}%  "
              f"{seen / elapsed:,.0f} samples/s ({elapsed:.1f} s)", flush=True)
    return accuracy


if __name__ == "__main__":
    main()
