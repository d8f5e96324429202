"""Per-geometry time of the C++ conv kernels on the ResNet-18 shapes.

Times ``conv2d_forward`` and ``conv2d_backward`` (dx alone, dw + db alone)
of the native CPU kernels for every distinct conv geometry of
``resnet18(width=16, small_input=True)`` on 1x32x32 inputs (stem, the
stride-1 3x3 convs, the stride-2 3x3 convs opening layer2/3/4 and their
1x1 stride-2 downsample convs), at the given batch, and prints one row per
geometry: milliseconds per call (best of ``--repeats`` windows of
``--calls`` calls) and the conv's count in one step of the net.

    python benchmarks/bench_conv.py                  # batch 64, float32
    python benchmarks/bench_conv.py --batch 128 --dtype float64
    python benchmarks/bench_conv.py --threads 1 --clock cpu   # a busy machine
    MINITL_CPU_ISA=avx2 python benchmarks/bench_conv.py
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minitl.kernels import cpu  # noqa: E402

# (name, C, O, H, k, stride, padding, count in one resnet18(width=16) step)
GEOMETRIES = (
    ("stem 3x3 s1", 1, 16, 32, 3, 1, 1, 1),
    ("l1 3x3 s1", 16, 16, 32, 3, 1, 1, 4),
    ("l2 3x3 s2", 16, 32, 32, 3, 2, 1, 1),
    ("l2 1x1 s2", 16, 32, 32, 1, 2, 0, 1),
    ("l2 3x3 s1", 32, 32, 16, 3, 1, 1, 3),
    ("l3 3x3 s2", 32, 64, 16, 3, 2, 1, 1),
    ("l3 1x1 s2", 32, 64, 16, 1, 2, 0, 1),
    ("l3 3x3 s1", 64, 64, 8, 3, 1, 1, 3),
    ("l4 3x3 s2", 64, 128, 8, 3, 2, 1, 1),
    ("l4 1x1 s2", 64, 128, 8, 1, 2, 0, 1),
    ("l4 3x3 s1", 128, 128, 4, 3, 1, 1, 3),
)


def best_ms(fn, calls, repeats, clock=time.perf_counter):
    """Best, over `repeats` windows, of the mean milliseconds of `calls` calls of fn."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        for _ in range(calls):
            fn()
        best = min(best, (clock() - t0) / calls * 1e3)
    return best


def main(argv=None):
    """Print the per-geometry table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="time only the geometries whose name contains this")
    ap.add_argument("--threads", type=int, default=None, help="kernel threads (default: all)")
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="cpu: process CPU time, for a busy machine (use with --threads 1)")
    args = ap.parse_args(argv)
    if not cpu.AVAILABLE:
        sys.exit(cpu.STATUS)
    if args.threads:
        cpu.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    rng = np.random.default_rng(0)
    dt = np.dtype(args.dtype)
    print(f"# {cpu.STATUS}; batch {args.batch}, {args.dtype}, {cpu.get_num_threads()} threads, "
          f"{args.clock} ms per call (best of {args.repeats} x {args.calls})")
    print(f"{'geometry':<12} {'C':>4} {'O':>4} {'H':>3} {'n':>2} {'fwd':>8} {'dx':>8} {'dw+db':>8} {'step ms':>8}")
    total = 0.0
    for name, c, o, h, k, s, p, count in GEOMETRIES:
        if args.only not in name:
            continue
        x = rng.standard_normal((args.batch, c, h, h)).astype(dt)
        w = rng.standard_normal((o, c, k, k)).astype(dt)
        st, pd = (s, s), (p, p)
        y = cpu.conv2d_forward(x, w, None, st, pd, None)
        gy = rng.standard_normal(y.shape).astype(dt)
        fwd = best_ms(lambda: cpu.conv2d_forward(x, w, None, st, pd, None), args.calls, args.repeats, clock)
        dx = best_ms(lambda: cpu.conv2d_backward(gy, x, w, None, st, pd, None, (True, False, False)),
                     args.calls, args.repeats, clock)
        dw = best_ms(lambda: cpu.conv2d_backward(gy, x, w, None, st, pd, None, (False, True, True)),
                     args.calls, args.repeats, clock)
        step = count * (fwd + dx + dw) if c > 1 else count * (fwd + dw)  # the stem needs no dx
        total += step
        print(f"{name:<12} {c:>4} {o:>4} {h:>3} {count:>2} {fwd:>8.3f} {dx:>8.3f} {dw:>8.3f} {step:>8.2f}")
    print(f"{'total':<12} {'':>4} {'':>4} {'':>3} {'':>2} {'':>8} {'':>8} {'':>8} {total:>8.2f}")


if __name__ == "__main__":
    main()
