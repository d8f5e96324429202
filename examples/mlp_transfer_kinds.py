"""MLP: parameter transfer vs feature transfer vs structure transfer.

Three things can move from a source task (Fashion-MNIST classes 0-4) to a
target task (classes 5-9):

- **structure**: the architecture. Hidden sizes are chosen on the source
  (by validation accuracy); the target model has that shape but fresh weights.
- **features**: the representation. The pretrained hidden layers are frozen;
  only a new output layer learns on the target.
- **parameters**: the weights as a starting point. Every layer is fine-tuned.

The baseline is scratch with the default MLP (784-256-128-5), the model one
would use without a source. Every model trains for the same number of steps
on the same k-shot samples; differences to scratch are paired by seed.

    python examples/mlp_transfer_kinds.py            # about 1 min on 2 cores
    python examples/mlp_transfer_kinds.py --quick    # a smoke run
"""
from __future__ import annotations

import os

import minitl
from common import example_parser, fashion_tasks
from minitl import train
from minitl.data import DataLoader
from minitl.data.tasks import Task, normalization
from minitl.experiments import Grid, Source, run
from minitl.experiments.report import Results, summarize
from minitl.models import build_model

DEFAULT = "mlp:256,128"
CANDIDATES = ["mlp:64", DEFAULT, "mlp:512,256,128", "mlp:1024"]


def parse_args(argv=None):
    p = example_parser(__doc__, "mlp_transfer_kinds")
    p.add_argument("--k", default="5,50", help="examples per target class, comma-separated")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200, help="optimizer steps of every target run")
    return p.parse_args(argv)


def choose_structure(source: Task, norm, steps: int) -> str:
    """The candidate architecture with the best validation accuracy on the source task."""
    fit_part, val_part = source.train.split(0.1, seed=0)
    scores = {}
    for spec in CANDIDATES:
        minitl.manual_seed(0)
        model = build_model(spec, source.num_classes, source.shape)
        opt = minitl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        train.fit(model, DataLoader(fit_part, 64, shuffle=True, seed=0, transform=norm), opt,
                  steps=steps, progress=False)
        scores[spec] = train.evaluate(model, DataLoader(val_part, 1000, transform=norm))["acc"]
        print(f"  {spec:<18} source validation accuracy {100 * scores[spec]:.1f}%")
    return max(scores, key=scores.get)


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.steps, args.seeds = 40, 2
    source, target = fashion_tasks(args, limit=2000 if args.quick else None)
    norm = normalization("fashion-mnist")

    print(f"structure search on {source.name}:")
    chosen = choose_structure(source, norm, steps=60 if args.quick else 400)
    print(f"  chosen: {chosen}\n")

    common = dict(targets=[target], k_shots=[int(k) for k in args.k.split(",")], seeds=list(range(args.seeds)),
                  steps=args.steps, transform=norm, pretrain_epochs=None if args.quick else 2,
                  pretrain_steps=100 if args.quick else None)
    # The baseline: the default MLP from scratch.
    baseline = run(Grid(sources=[], strategies=["scratch"], model=DEFAULT, **common), log=None)
    # Structure, features and parameters, all with the architecture chosen on the source.
    transfers = run(Grid(sources=[Source(source.name, task=source)], model=chosen,
                         strategies=["structure", "features", "finetune"],
                         cache_dir=os.path.join(args.out, "pretrained"), **common), log=None)
    runs = baseline.runs + transfers.runs  # same targets, k and seeds: pairs by seed
    results = Results(config=dict(transfers.config, baseline=DEFAULT), runs=runs, cells=summarize(runs),
                      pretrain=transfers.pretrain)
    results.write(args.out, plots=False)
    print(f"scratch = default {DEFAULT}; structure/features/finetune = {chosen} "
          f"(structure: fresh weights, features: frozen pretrained hidden layers, finetune: all pretrained)\n")
    print(results.table())
    print(f"\nresults in {args.out}/")


if __name__ == "__main__":
    main()
