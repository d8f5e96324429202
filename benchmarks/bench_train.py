"""Training and inference throughput of LeNet, the MLP and ResNet-18 on every kernel path.

One run prints, for each model and batch size, the samples/s of

* ``train``  -- forward, cross-entropy, backward, SGD(momentum=0.9) step;
* ``infer``  -- forward under ``no_grad``;
* ``frozen`` -- training with the feature extractor frozen (only the head,
  or LeNet's classifier, learns; the frozen part costs only its forward);

on the reference path (NumPy/CuPy) and on the native one (C++ or CUDA
kernels), and the ratio native/reference; then the same rows as achieved
GFLOP/s (the nominal multiply-adds of the conv and linear products only,
x2; bias, activation, pooling, loss and optimizer are not counted), next to
the machine's own float32 GEMM rate (a 1024^3 product on the active threads,
best of ``--gemm-repeats``), which is the ceiling those figures approach. Inputs are synthetic Fashion-MNIST
shaped batches (1x28x28 float32, 10 classes): throughput does not depend on
the pixel values. Each figure is the best of ``--repeats`` timed windows of
``--steps`` steps after ``--warmup`` untimed ones, which filters out the
noise of a shared machine. On a machine too busy for that (other jobs keep
preempting the benchmark), ``--clock cpu`` times each window by the
process's CPU time instead of the wall clock, so time spent waiting for a
core does not count; use it with ``--threads 1`` and OPENBLAS_NUM_THREADS=1,
since with more threads it also counts workers spinning at barriers.

    python benchmarks/bench_train.py                    # CPU, batch 64 and 256
    python benchmarks/bench_train.py --quick            # smoke run, a few steps
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_train.py --threads 1 --clock cpu  # busy machine
    python benchmarks/bench_train.py --device cuda --batch 256 1024
    python benchmarks/bench_train.py --models resnet18 --batch 64 128   # width=16, small_input, 1x32x32
    MINITL_CPU_ISA=avx2 python benchmarks/bench_train.py   # one C++ variant
    MINITL_FOLD_BN=0 python benchmarks/bench_train.py --models resnet18 --modes infer frozen  # conv+BN unfolded

``resnet18`` is ``resnet18(width=16, small_input=True)`` on 1x32x32 inputs
(Fashion-MNIST padded to 32x32); its ``frozen`` mode freezes everything but
``fc``, with the frozen BatchNorm layers eval-locked as ``prepare`` does.
"""
from __future__ import annotations

import argparse
import json
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
# The issues' goals, as minitl-native / PyTorch-CPU samples/s ratios on the same cores
# (issue 15: LeNet and MLP; issue 11: ResNet-18 training at least on par).
GOALS = {("lenet", 64, "train"): 3.0, ("lenet", 256, "train"): 3.0,
         ("lenet", 64, "infer"): 4.0, ("lenet", 256, "infer"): 4.0,
         ("mlp", 64, "train"): 2.0, ("mlp", 256, "train"): 1.5, ("mlp", 256, "infer"): 1.5,
         ("resnet18", 64, "train"): 1.0, ("resnet18", 128, "train"): 1.0}
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
            repeats: int, clock=time.perf_counter) -> float:
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
        t0 = clock()
        for _ in range(steps):
            step()
        sync()
        best = min(best, clock() - t0)
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


def _forward_macs(op: str, args) -> float:
    """Multiply-adds of one forward product kernel call (reference signatures)."""
    x, w = args[0], args[1]
    if op == "linear_forward":
        return float(x.shape[0]) * w.shape[0] * w.shape[1]
    (sh, sw), (ph, pw) = (tuple(v) if isinstance(v, (tuple, list)) else (v, v) for v in args[3:5])
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    return float(n) * o * oh * ow * c * kh * kw


def flops_per_sample(model, mode: str, in_shape=(1, 28, 28)) -> float:
    """Nominal FLOPs (2 per multiply-add) of one sample's conv and linear products.

    Traces one forward of a 2-sample batch (in ``mode``'s train/eval state,
    without gradient) through the dispatch table, recording every conv and
    linear product kernel call in call order with its real shapes, so
    residual branches and downsample convs count at their true sizes.
    Forward is one product per call; a training step adds the weight gradient
    of every trainable weight and the input gradient of every call after a
    trainable one (the input itself needs none), which is what the kernels are
    asked for (``needs``). Frozen layers only run forward.
    """
    from minitl.kernels import dispatch

    trainable_ids = {id(p.data) for p in model.parameters() if p.requires_grad and mode != "infer"}
    calls = []
    ops = ("linear_forward", "conv2d_forward", "conv2d_pool_forward")
    dispatch.use(dispatch.mode())  # fresh tables: fused plans re-read their kernels from them
    table = dispatch._table("cpu")
    for op in ops:
        fn = table[op][0]

        def recording(*args, _op=op, _fn=fn, **kwargs):
            calls.append((_forward_macs(_op, args) / 2, id(args[1]) in trainable_ids))
            return _fn(*args, **kwargs)

        table[op] = (recording, table[op][1])
    try:
        was_training = model.training
        model.train(mode != "infer")
        with minitl.no_grad():
            model(minitl.tensor(np.zeros((2,) + tuple(in_shape), np.float32)))
        model.train(was_training)
    finally:
        dispatch.use(dispatch.mode())  # drop the recording table
    fwd, bwd, grad_flows = 0.0, 0.0, False
    for macs, trainable in calls:
        fwd += macs
        if mode != "infer":
            bwd += macs * (int(trainable) + int(grad_flows))
        grad_flows = grad_flows or trainable
    return 2.0 * (fwd + bwd)


def gemm_rate(repeats: int, n: int = 1024, clock=time.perf_counter) -> tuple[float, str]:
    """(best GFLOP/s, what was timed) of an n^3 float32 product on the active threads.

    Our own GEMM (``_C.matmul``) when the C++ kernels are built, so the figure
    is the ceiling of the kernels the table measures; else numpy.matmul.
    """
    from minitl.kernels import cpu as native

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    if native.AVAILABLE and hasattr(native._C, "matmul"):
        n_t = native.get_num_threads()
        fn, what = native._C.matmul, f"own _C.matmul, {n_t} thread{'s' if n_t != 1 else ''}"
    else:
        fn, what = np.matmul, "numpy.matmul (C++ kernels not built)"
    fn(a, b)  # warm: scratch buffers, thread team
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        fn(a, b)
        best = min(best, clock() - t0)
    return 2.0 * n**3 / best / 1e9, f"{what}, {n}^3 float32, best of {repeats}"


def cpu_isa() -> str:
    """The C++ kernels' instruction set: the active variant where _C dispatches
    at run time, else the one it was compiled for."""
    from minitl.kernels import cpu as native

    if not native.AVAILABLE:
        return "none (C++ kernels not built)"
    if hasattr(native._C, "cpu_isa"):
        return native._C.cpu_isa()
    return f"{native._C.build_info()['simd']} (compile-time)"


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
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="time windows by the wall clock, or by process CPU time (busy machine)")
    ap.add_argument("--gemm-repeats", type=int, default=5, help="1024^3 GEMM timings; the best is kept")
    ap.add_argument("--quick", action="store_true", help="smoke run: few steps, one window")
    ap.add_argument("--paths", nargs="+", choices=("reference", "native"), default=None,
                    help="kernel paths to time (default: every available one)")
    ap.add_argument("--json", metavar="FILE", help="also write the samples/s to FILE as JSON")
    ap.add_argument("--pytorch", metavar="FILE",
                    help="JSON of PyTorch's samples/s for the same rows ({'rows': {'model/batch/mode': "
                         "samples_per_s}}), measured by a script outside the project: prints the ratios "
                         "and the issues' goals")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not minitl.cuda.is_available():
        print(f"CUDA unavailable: {minitl.cuda.why_unavailable()}")
        return 1
    if args.threads:
        minitl.set_num_threads(args.threads)
    steps = args.steps or (3 if args.quick else 50)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10)
    repeats = 1 if args.quick else args.repeats
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    print(f"machine: {machine()}")
    print(f"cpu kernels: {minitl.kernels.cpu_kernels_status()[1]}")
    print(f"cpu isa: {cpu_isa()}")
    if args.device == "cpu":
        rate, what = gemm_rate(1 if args.quick else args.gemm_repeats, clock=clock)
        print(f"machine GEMM rate: {rate:.1f} GFLOP/s ({what})")
    if args.device == "cuda":
        print(f"cuda kernels: {minitl.kernels.cuda_kernels_status()[1]}")
    print(f"device={args.device} steps={steps} warmup={warmup} repeats={repeats} (best window kept), "
          f"clock={args.clock}")
    avail = paths(args.device)
    if args.paths:
        missing = sorted(set(args.paths) - set(avail))
        if missing:
            print(f"kernel path(s) {missing} unavailable on {args.device}")
            return 1
        avail = [p for p in avail if p in args.paths]
    cols = [f"{p} {m}" for m in args.modes for p in avail]
    head = f"{'model':6s} {'batch':>5s} " + " ".join(f"{c:>17s}" for c in cols)
    both = avail == ["reference", "native"]
    if both:
        head += " " + " ".join(f"{'x ' + m:>9s}" for m in args.modes)
    print("samples/s")
    print(head)
    results = []
    try:
        for name in args.models:
            for batch in args.batch:
                res = {}
                for mode in args.modes:
                    for p in avail:
                        minitl.kernels.use(p)
                        res[p, mode] = measure(name, mode, batch, args.device, steps, warmup, repeats,
                                               clock)
                row = f"{name:6s} {batch:5d} " + " ".join(
                    f"{res[p, m]:17,.0f}" for m in args.modes for p in avail)
                if both:
                    row += " " + " ".join(
                        f"{res['native', m] / res['reference', m]:8.2f}x" for m in args.modes)
                print(row, flush=True)
                results.append((name, batch, res))
    finally:
        minitl.kernels.use("native")
    print("GFLOP/s (nominal conv + linear products)")
    print(f"{'model':6s} {'batch':>5s} " + " ".join(f"{c:>17s}" for c in cols))
    for name, batch, res in results:
        per = {}
        for m in args.modes:
            model = make_model(name, "cpu")
            if m == "frozen":
                freeze_backbone(model, name)
            per[m] = flops_per_sample(model, m, INPUT[name])
        print(f"{name:6s} {batch:5d} " + " ".join(
            f"{res[p, m] * per[m] / 1e9:17.2f}" for m in args.modes for p in avail))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "isa": cpu_isa(), "rows": {
                f"{name}/{batch}/{m}/{p}": v for name, batch, res in results for (p, m), v in res.items()}},
                f, indent=1)
    if args.pytorch and "native" in avail:
        print_pytorch_ratios(results, args.pytorch)
    return 0


def print_pytorch_ratios(results, path: str) -> None:
    """minitl-native / PyTorch for every row both measured, beside the issues' goals."""
    with open(path) as f:
        theirs = json.load(f)
    rows = theirs.get("rows", {})
    print(f"against PyTorch {theirs.get('torch', '?')} ({path}): native samples/s / PyTorch samples/s")
    print(f"{'model':8s} {'batch':>5s} {'mode':6s} {'minitl':>10s} {'PyTorch':>10s} {'ratio':>7s} {'goal':>6s}")
    for name, batch, res in results:
        for (p, m), ours in res.items():
            ref = rows.get(f"{name}/{batch}/{m}")
            if p != "native" or not ref:
                continue
            goal = GOALS.get((name, batch, m))
            mark = "" if goal is None else f"{goal:5.1f}x {'met' if ours / ref >= goal else 'NOT met'}"
            print(f"{name:8s} {batch:5d} {m:6s} {ours:10,.0f} {ref:10,.0f} {ours / ref:6.2f}x {mark}")


if __name__ == "__main__":
    sys.exit(main())
