"""The MNIST -> EMNIST seed system: an MLP pretrained on MNIST digits, transferred to EMNIST letters.

Each seed pretrains its own MLP on all ten MNIST digits; the letters task
(26 classes, labels 0..25, images turned upright on load) is learnt from k
examples per letter by scratch, frozen features and fine-tuning, with one
step budget, paired by seed. The head is rebuilt for 26 classes; inputs are
scaled as in pretraining (MNIST's mean and std).

    python examples/mlp_mnist_to_emnist.py              # needs MNIST and EMNIST (see below)
    python examples/mlp_mnist_to_emnist.py --download   # fetch both first (EMNIST: a 535 MB archive)
"""
from __future__ import annotations

import sys

from minitl import cli
from minitl.data import catalog, locate


def missing(root=None) -> list[str]:
    """The datasets of this system not found on this machine."""
    return [name for name in ("mnist", "emnist-letters")
            if locate.search(catalog.info(name), "train", root)[0] is None]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = argv[argv.index("--root") + 1] if "--root" in argv else None
    absent = missing(root)
    if absent and "--download" not in argv:
        print(f"{' and '.join(absent)} not found: get them with `python examples/mlp_mnist_to_emnist.py --download` "
              f"(or put the files under $MINITL_DATA/mnist and $MINITL_DATA/emnist)")
        return 0
    quick = "--quick" in argv
    argv = [a for a in argv if a != "--quick"]
    return cli.main(["transfer", "--source-dataset", "mnist", "--dataset", "emnist-letters", "--model", "mlp",
                     "--strategies", "scratch,features,finetune", "--k", "5,20" if quick else "5,20,100",
                     "--seeds", "2" if quick else "3", "--steps", "50" if quick else "300",
                     "--out", "runs/mnist_to_emnist"] + argv)


if __name__ == "__main__":
    sys.exit(main())
