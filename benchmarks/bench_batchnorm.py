"""ResNet-18 training with BatchNorm on the reference kernels vs the C++ ones.

Everything else runs on the native (C++) path in both columns; only the two
BatchNorm ops of the dispatch table are switched, so the difference is the
BatchNorm kernels alone. Reports samples/s (best window) and the process CPU
time per step (best window: what the step costs on a loaded machine, where
wall time also counts waiting for a core).

    python benchmarks/bench_batchnorm.py --batch 64 --threads 1
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minitl  # noqa: E402
import minitl.nn.functional as F  # noqa: E402
from minitl import kernels, optim  # noqa: E402
from minitl.kernels import dispatch, norm_reference  # noqa: E402
from minitl.models import resnet18  # noqa: E402

BN_OPS = ("batch_norm_forward", "batch_norm_backward")


def serve_batchnorm(path: str) -> None:
    """Native kernels everywhere, BatchNorm from ``path`` ('reference' or 'native')."""
    kernels.use("native")
    table = dispatch._table("cpu")  # benchmark-only: override two entries of the CPU table
    if path == "reference":
        for op in BN_OPS:
            table[op] = (getattr(norm_reference, op), "reference")


def measure(batch: int, steps: int, warmup: int, repeats: int) -> tuple[float, float]:
    """(samples/s, CPU seconds per step), each the best of ``repeats`` windows."""
    rng = np.random.default_rng(0)
    x = minitl.tensor(rng.standard_normal((batch, 1, 32, 32)).astype(np.float32))
    y = minitl.tensor(rng.integers(0, 10, batch).astype(np.int64))
    minitl.manual_seed(0)
    model = resnet18(num_classes=10, in_chans=1, width=16, small_input=True)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return steps * batch / best_wall, best_cpu / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="C++ kernel threads (default: OpenMP's)")
    args = ap.parse_args()
    if args.threads is not None:
        minitl.set_num_threads(args.threads)
    print(f"ResNet-18 width=16 small_input, batch {args.batch}, {minitl.get_num_threads()} thread(s), "
          f"best of {args.repeats} x {args.steps} steps")
    print(f"{'BatchNorm':<10} {'samples/s':>10} {'CPU ms/step':>12}")
    rows = {}
    for path in ("reference", "native"):
        serve_batchnorm(path)
        rows[path] = measure(args.batch, args.steps, args.warmup, args.repeats)
        print(f"{path:<10} {rows[path][0]:>10.1f} {rows[path][1] * 1e3:>12.1f}")
    kernels.use("native")
    print(f"speed-up: {rows['native'][0] / rows['reference'][0]:.2f}x samples/s, "
          f"{rows['reference'][1] / rows['native'][1]:.2f}x CPU time")


if __name__ == "__main__":
    main()
