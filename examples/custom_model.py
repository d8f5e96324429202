"""A small model written as a PyTorch user would (cat, unsqueeze, where, gelu, std), trained briefly
on Fashion-MNIST.

    python examples/custom_model.py              # 2 epochs on 12,000 images, about half a minute on 2 cores
    python examples/custom_model.py --limit 0    # the whole training set

Each image is standardised by its own mean and std; the network sees the pixels and, beside
them, the mean and std of every row and column; a leaky gate written with ``where`` joins the
branches; the CrossEntropyLoss module and ``argmax(dim=1)`` are PyTorch's spellings.
"""
from __future__ import annotations

import argparse
import time

import minitl
import minitl.nn.functional as F
from minitl import nn, optim
from minitl.data import DataLoader, FashionMNIST


class ProfileNet(nn.Module):
    """Pixels and row/column profiles, two GELU branches joined by cat."""

    def __init__(self, hidden: int = 128, profile: int = 32, classes: int = 10):
        super().__init__()
        self.pixels = nn.Linear(28 * 28, hidden)
        self.profiles = nn.Linear(4 * 28, profile)
        self.head = nn.Linear(hidden + profile, classes)

    def forward(self, x):
        img = x.squeeze(1)                                             # (N, 28, 28)
        flat = img.flatten(1)
        mean = flat.mean(dim=1).unsqueeze(1).unsqueeze(2)              # (N, 1, 1)
        std = flat.std(dim=1).unsqueeze(-1).unsqueeze(-1)
        img = (img - mean) / (std + 1e-5)                              # per-image standardisation
        prof = minitl.cat([img.mean(dim=2), img.std(dim=2), img.mean(dim=1), img.std(dim=1)], dim=1)
        h = F.gelu(self.pixels(img.flatten(1)))
        p = F.gelu(self.profiles(prof))
        z = minitl.cat([h, p], dim=1)
        z = minitl.where(z > 0, z, 0.1 * z)                            # a leaky gate
        return self.head(z)


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--limit", type=int, default=12000, help="training images (0: all 60,000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--root", default=None, help="directory holding the Fashion-MNIST files")
    args = p.parse_args(argv)

    minitl.manual_seed(args.seed)
    train = FashionMNIST(root=args.root, train=True)
    test = FashionMNIST(root=args.root, train=False)
    if args.limit:
        train = train.k_shot(max(1, args.limit // train.num_classes), seed=args.seed)
    # uint8 batches come out of the loader as float32 in [0, 1]
    train_loader = DataLoader(train, args.batch_size, shuffle=True, seed=args.seed, device=args.device)
    test_loader = DataLoader(test, 1000, device=args.device)
    model = ProfileNet().to(args.device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    trainable, _ = model.count_parameters()
    print(f"ProfileNet ({trainable:,} parameters) on Fashion-MNIST: {len(train)} train / {len(test)} test images")

    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        start, total, batches = time.perf_counter(), 0.0, 0
        for x, y in train_loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, batches = total + loss.item(), batches + 1
        model.eval()
        correct = seen = 0
        with minitl.no_grad():
            for x, y in test_loader:
                correct += int((model(x).argmax(dim=1) == y).sum().item())
                seen += y.numel()
        accuracy = correct / seen
        print(f"epoch {epoch}: loss {total / batches:.4f}  test accuracy {100 * accuracy:.2f}%  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    return accuracy


if __name__ == "__main__":
    main()
