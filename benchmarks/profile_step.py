"""Where a training step's time goes: kernels versus Python, phase by phase.

Runs the MLP (784-256-128-10, SGD with momentum 0.9) on synthetic
Fashion-MNIST-shaped batches with one kernel thread and prints, per step,

* the CPU time of each phase (forward, loss, zero_grad, backward walk,
  optimizer step) and how much of it was spent inside kernels (every op the
  dispatch hands out is wrapped in a clock); the rest is Python: op
  dispatch, graph bookkeeping, allocation;
* the kernel calls per layer (keyed by op and weight shape), so a layer's
  arithmetic can be set beside the Python cost of the phase it runs in;
* the same split for inference (forward under ``no_grad``).

Times are process CPU time (``time.process_time``), not wall-clock, so a
loaded machine inflates them less; each figure is the best of ``--repeats``
windows of ``--steps`` steps. The clock around each kernel call costs about
0.3 us per call and is counted as kernel time.

    python benchmarks/profile_step.py                 # batch 64
    python benchmarks/profile_step.py --batch 256 --steps 200 --repeats 7
    python benchmarks/profile_step.py --keep-grads    # zero_grad(set_to_none=False)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minitl  # noqa: E402
import minitl.nn.functional as F  # noqa: E402
from minitl import optim  # noqa: E402
from minitl.kernels import dispatch  # noqa: E402
from minitl.models import MLP  # noqa: E402

PHASES = ("forward", "loss", "zero_grad", "backward", "step")


class KernelClock:
    """Wraps every kernel of the CPU dispatch table; sums CPU time per (phase, op, shape)."""

    def __init__(self):
        self.phase = None
        self.time = defaultdict(float)
        self.calls = defaultdict(int)

    def install(self):
        dispatch.use(dispatch.mode())  # drop cached tables (and anything cached from them)
        table = dispatch._table("cpu")
        for op, (fn, name) in list(table.items()):
            table[op] = (self._wrap(op, fn), name)

    def _wrap(self, op, fn):
        clock = time.process_time

        def timed(*args, **kwargs):
            t0 = clock()
            out = fn(*args, **kwargs)
            key = (self.phase, op, _weight_shape(op, args))
            self.time[key] += clock() - t0
            self.calls[key] += 1
            return out

        return timed

    def reset(self):
        self.time.clear()
        self.calls.clear()


def _weight_shape(op, args):
    """The weight's shape for linear kernels (it names the layer), else ''."""
    if op.startswith("linear_forward") and len(args) > 1:
        return tuple(args[1].shape)
    if op.startswith("linear_backward") and len(args) > 2:
        return tuple(args[2].shape)
    return ""


def _train_window(model, opt, x, y, steps, clock, set_to_none=True):
    phase_time = defaultdict(float)
    tick = time.process_time
    for _ in range(steps):
        clock.phase = "forward"
        t0 = tick()
        logits = model(x)
        t1 = tick()
        clock.phase = "loss"
        loss = F.cross_entropy(logits, y)
        t2 = tick()
        clock.phase = "zero_grad"
        opt.zero_grad(set_to_none=set_to_none)
        t3 = tick()
        clock.phase = "backward"
        loss.backward()
        t4 = tick()
        clock.phase = "step"
        opt.step()
        t5 = tick()
        for name, a, b in zip(PHASES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
            phase_time[name] += b - a
    return phase_time


def _infer_window(model, x, steps, clock):
    tick = time.process_time
    clock.phase = "forward"
    t0 = tick()
    with minitl.no_grad():
        for _ in range(steps):
            model(x)
    return {"forward": tick() - t0}


def _best(run, repeats, steps, clock):
    """The window with the least total time; its kernel clock."""
    best = None
    for _ in range(repeats):
        clock.reset()
        phases = run()
        total = sum(phases.values())
        if best is None or total < best[0]:
            best = (total, dict(phases), dict(clock.time), dict(clock.calls))
    total, phases, ktime, kcalls = best
    return {k: v / steps for k, v in phases.items()}, {k: v / steps for k, v in ktime.items()}, \
        {k: v / steps for k, v in kcalls.items()}


def _phase_table(title, phases, ktime):
    us = 1e6
    print(f"\n{title}\n")
    print("| phase | total us/step | kernels us/step | Python us/step |")
    print("|---|---|---|---|")
    tot = ker = 0.0
    for name in PHASES:
        if name not in phases:
            continue
        k = sum(v for (p, _, _), v in ktime.items() if p == name)
        t = phases[name]
        tot, ker = tot + t, ker + k
        print(f"| {name} | {t * us:.1f} | {k * us:.1f} | {(t - k) * us:.1f} |")
    print(f"| **step** | **{tot * us:.1f}** | **{ker * us:.1f}** | **{(tot - ker) * us:.1f}** |")


def _kernel_table(ktime, kcalls):
    us = 1e6
    print("\n| phase | kernel | layer (weight) | calls/step | us/step |")
    print("|---|---|---|---|---|")
    for key in sorted(ktime, key=lambda k: (PHASES.index(k[0]), k[1], str(k[2]))):
        phase, op, shape = key
        print(f"| {phase} | {op} | {shape or '-'} | {kcalls[key]:.0f} | {ktime[key] * us:.1f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keep-grads", action="store_true",
                    help="zero_grad(set_to_none=False): each .grad array is kept and added into")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.repeats < 1:
        ap.error("--batch, --steps and --repeats must be at least 1")

    minitl.set_num_threads(1)
    minitl.manual_seed(0)
    model = MLP()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = minitl.tensor(rng.standard_normal((args.batch, 1, 28, 28)).astype(np.float32))
    y = minitl.tensor(rng.integers(0, 10, args.batch))

    clock = KernelClock()
    clock.install()
    set_to_none = not args.keep_grads
    _train_window(model, opt, x, y, 5, clock, set_to_none)  # warm-up: first-use caches, allocator
    phases, ktime, kcalls = _best(lambda: _train_window(model, opt, x, y, args.steps, clock, set_to_none),
                                  args.repeats, args.steps, clock)
    print(f"MLP 784-256-128-10, batch {args.batch}, 1 thread, "
          f"zero_grad(set_to_none={set_to_none}), CPU time per step "
          f"(best of {args.repeats} x {args.steps} steps); kernels: {dispatch.active('cpu')['linear_forward']}")
    _phase_table("Training step", phases, ktime)
    _kernel_table(ktime, kcalls)

    phases, ktime, kcalls = _best(lambda: _infer_window(model, x, args.steps, clock),
                                  args.repeats, args.steps, clock)
    _phase_table("Inference (no_grad forward)", phases, ktime)
    _kernel_table(ktime, kcalls)


if __name__ == "__main__":
    main()
