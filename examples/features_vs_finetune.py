"""Feature extraction vs fine-tuning, and how the step budget changes the answer.

LeNet is pretrained on Fashion-MNIST classes 0-4. On classes 5-9 (k examples
per class) two strategies get the same budget of optimizer steps:

- **features**: the pretrained backbone is frozen and only a new head trains,
  on representations computed once (each step is a 84x5 matrix product);
- **finetune**: a new head, and every layer trains.

Each budget is run for several seeds; the table shows both accuracies, the
paired difference finetune - features with its 95% interval, and the time
each strategy took. A small budget favours the strategy with fewer weights
to move; a larger one lets fine-tuning adapt the backbone.

    python examples/features_vs_finetune.py            # budgets 10 to 1000 steps; about 1 min on 2 cores
    python examples/features_vs_finetune.py --quick    # a smoke run
"""
from __future__ import annotations

import os

import numpy as np

from common import example_parser, fashion_tasks
from minitl.data.tasks import normalization
from minitl.experiments import Grid, Source, run, stats


def parse_args(argv=None):
    p = example_parser(__doc__, "features_vs_finetune", "smoke run: small data, small budgets")
    p.add_argument("--budgets", default="10,50,250,1000", help="optimizer steps, comma-separated")
    p.add_argument("--k", type=int, default=50, help="training examples per target class")
    p.add_argument("--seeds", type=int, default=3)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.budgets, args.seeds, args.k = "5,20", 2, 10
    source, target = fashion_tasks(args, limit=2000 if args.quick else None)

    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        grid = Grid(sources=[Source(source.name, task=source)], targets=[target],
                    strategies=["features", "finetune"], k_shots=[args.k], seeds=list(range(args.seeds)),
                    steps=budget, transform=normalization("fashion-mnist"), lr=0.01,
                    lr_by_strategy={"features": 0.1},  # a linear head alone takes larger steps
                    pretrain_epochs=None if args.quick else 1, pretrain_steps=100 if args.quick else None,
                    cache_dir=os.path.join(args.out, "pretrained"))  # pretrained once, reused per budget
        results = run(grid, out_dir=os.path.join(args.out, f"steps{budget}"), log=None, plots=False)
        by = {s: sorted((r for r in results.runs if r["strategy"] == s), key=lambda r: r["seed"])
              for s in grid.strategies}
        acc = {s: [r["acc"] for r in runs] for s, runs in by.items()}
        secs = {s: np.mean([r["seconds"] for r in runs]) for s, runs in by.items()}
        d = stats.paired_difference(acc["finetune"], acc["features"])
        rows.append((budget, stats.mean_ci(acc["features"]), stats.mean_ci(acc["finetune"]), d, secs))

    print(f"\n{target.name}, k = {args.k} per class, {args.seeds} seeds, scored on {len(target.test)} images; "
          "SGD momentum 0.9, lr 0.01 (features head: 0.1)")
    print("| steps | features % | finetune % | finetune - features [95% CI] | s/run features | s/run finetune |")
    print("|--:|--:|--:|--:|--:|--:|")
    for budget, f, t, d, secs in rows:
        lead = "finetune" if d.lo > 0 else "features" if d.hi < 0 else "tie"
        print(f"| {budget} | {100 * f.mean:.1f} ± {100 * f.std:.1f} | {100 * t.mean:.1f} ± {100 * t.std:.1f} | "
              f"{100 * d.mean:+.1f} [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] ({lead}) | "
              f"{secs['features']:.2f} | {secs['finetune']:.2f} |")


if __name__ == "__main__":
    main()
