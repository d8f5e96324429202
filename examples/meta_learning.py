"""Meta-learning (Reptile, first-order MAML) vs pretrain-then-fine-tune and scratch, few-shot Fashion-MNIST.

Meta-training tasks come from classes 0-4, held-out test tasks from classes
5-9; every start point is adapted by the same SGD steps on the same support
set and scored on the same query set, differences paired by task. The whole
method lives in ``minitl.experiments.meta`` (``minitl meta`` on the command
line); this example is one call of it.

    python examples/meta_learning.py            # 3-way 5-shot, 20 test tasks; a few minutes on 2 cores
    python examples/meta_learning.py --quick    # a smoke run
"""
from __future__ import annotations

from common import example_parser, fashion_tasks
from minitl.data.tasks import normalization
from minitl.experiments import MetaConfig, run_meta


def main(argv=None):
    p = example_parser(__doc__, "meta", "smoke run")
    p.add_argument("--ways", type=int, default=3)
    p.add_argument("--shots", type=int, default=5)
    args = p.parse_args(argv)
    source, target = fashion_tasks(args)
    config = MetaConfig(ways=args.ways, shots=args.shots, meta_iters=30 if args.quick else 500,
                        tasks=4 if args.quick else 20, transform=normalization("fashion-mnist"))
    print(run_meta(config, source, target, out_dir=args.out).table())


if __name__ == "__main__":
    main()
