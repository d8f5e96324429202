"""Training and inference throughput of LeNet, the MLP and ResNet-18 on every kernel path.

One run prints, for each model and batch size, the samples/s of

* ``train``  -- forward, cross-entropy, backward, SGD(momentum=0.9) step;
* ``infer``  -- forward under ``no_grad``;
* ``frozen`` -- training with the feature extractor frozen (only the head,
  or LeNet's classifier, learns; the frozen part costs only its forward);

on the reference path (NumPy/CuPy) and on the native one (C++ or CUDA
kernels), and the ratio native/reference. Inputs are synthetic Fashion-MNIST
shaped batches (1x28x28 float32, 10 classes): throughput does not depend on
the pixel values. Each figure is the best of ``--repeats`` timed windows of
``--steps`` steps after ``--warmup`` untimed ones, which filters out the
noise of a shared machine.

    python benchmarks/bench_train.py                    # CPU, batch 64 and 256
    python benchmarks/bench_train.py --quick            # smoke run, a few steps
    python benchmarks/bench_train.py --device cuda --batch 256 1024
    python benchmarks/bench_train.py --models resnet18 --batch 64 128   # width=16, small_input, 1x32x32

``resnet18`` is ``resnet18(width=16, small_input=True)`` on 1x32x32 inputs
(Fashion-MNIST padded to 32x32); its ``frozen`` mode freezes everything but
``fc``, with the frozen BatchNorm layers eval-locked as ``prepare`` does.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minitl  # noqa: E402
import minitl.nn.functional as F  # noqa: E402
from minitl import optim  # noqa: E402
from minitl.models import MLP, LeNet, resnet18  # noqa: E402
from minitl.transfer.batchnorm import lock_batchnorm  # noqa: E402

MODES = ("train", "infer", "frozen")
BACKBONE = {"lenet": "features", "mlp": None, "resnet18": None}  # None: everything but the head
INPUT = {"lenet": (1, 28, 28), "mlp": (1, 28, 28), "resnet18": (1, 32, 32)}


def make_model(name: str, device: str):
    minitl.manual_seed(0)
    if name == "resnet18":
        model = resnet18(num_classes=10, in_chans=1, width=16, small_input=True)
    else:
        model = LeNet() if name == "lenet" else MLP()
    return model.to(device) if device != "cpu" else model


def freeze_backbone(model, name: str) -> None:
    """Freeze the feature extractor: LeNet's conv stages, the MLP's hidden layers."""
    if BACKBONE[name] is not None:
        model.freeze(BACKBONE[name])
    else:
        head = {id(p) for p in model.head.parameters()}
        model.freeze([n for n, p in model.named_parameters() if id(p) not in head])
    lock_batchnorm(model)  # frozen BatchNorm stays in eval mode, as transfer.prepare does


def _sync(device: str):
    if device == "cuda":
        import cupy

        return cupy.cuda.get_current_stream().synchronize
    return lambda: None


def measure(name: str, mode: str, batch: int, device: str, steps: int, warmup: int,
            repeats: int) -> float:
    """Samples per second of one (model, mode, batch) on the current kernel path."""
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch,) + INPUT[name]).astype(np.float32)
    y_np = rng.integers(0, 10, batch).astype(np.int64)
    x = minitl.tensor(x_np, device=device)
    y = minitl.tensor(y_np, device=device)
    model = make_model(name, device)
    if mode == "frozen":
        freeze_backbone(model, name)
    if mode == "infer":
        model.eval()  # BatchNorm on its running statistics (LeNet and the MLP have no mode-dependent layer)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sync = _sync(device)

    def step():
        if mode == "infer":
            with minitl.no_grad():
                model(x)
            return
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    # NumPy's OpenBLAS threads keep spinning for a while after the reference
    # path's last matrix product and would steal a core from the next
    # measurement: let them go to sleep first.
    time.sleep(0.3)
    for _ in range(warmup):
        step()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        best = min(best, time.perf_counter() - t0)
    return steps * batch / best


def paths(device: str) -> list[str]:
    """'reference' always; 'native' when compiled kernels serve this device."""
    out = ["reference"]
    if device == "cpu":
        ok, _ = minitl.kernels.cpu_kernels_status()
    else:
        ok, _ = minitl.kernels.cuda_kernels_status()
    if ok:
        out.append("native")
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, NumPy {np.__version__}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--models", nargs="+", default=["lenet", "mlp"], choices=("lenet", "mlp", "resnet18"))
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per window")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3, help="timed windows; the best is kept")
    ap.add_argument("--threads", type=int, default=None, help="C++ kernel threads (default: OpenMP's)")
    ap.add_argument("--quick", action="store_true", help="smoke run: few steps, one window")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not minitl.cuda.is_available():
        print(f"CUDA unavailable: {minitl.cuda.why_unavailable()}")
        return 1
    if args.threads:
        minitl.set_num_threads(args.threads)
    steps = args.steps or (3 if args.quick else 50)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10)
    repeats = 1 if args.quick else args.repeats

    print(f"machine: {machine()}")
    print(f"cpu kernels: {minitl.kernels.cpu_kernels_status()[1]}")
    if args.device == "cuda":
        print(f"cuda kernels: {minitl.kernels.cuda_kernels_status()[1]}")
    print(f"device={args.device} steps={steps} warmup={warmup} repeats={repeats} (best window kept)")
    avail = paths(args.device)
    cols = [f"{p} {m}" for m in args.modes for p in avail]
    head = f"{'model':6s} {'batch':>5s} " + " ".join(f"{c:>17s}" for c in cols)
    if "native" in avail:
        head += " " + " ".join(f"{'x ' + m:>9s}" for m in args.modes)
    print("samples/s")
    print(head)
    try:
        for name in args.models:
            for batch in args.batch:
                res = {}
                for mode in args.modes:
                    for p in avail:
                        minitl.kernels.use(p)
                        res[p, mode] = measure(name, mode, batch, args.device, steps, warmup, repeats)
                row = f"{name:6s} {batch:5d} " + " ".join(
                    f"{res[p, m]:17,.0f}" for m in args.modes for p in avail)
                if "native" in avail:
                    row += " " + " ".join(
                        f"{res['native', m] / res['reference', m]:8.2f}x" for m in args.modes)
                print(row, flush=True)
    finally:
        minitl.kernels.use("native")
    return 0


if __name__ == "__main__":
    sys.exit(main())
