"""What can be known before training is checked here (or in the layer owning the concept:
``parse_classes``, ``check_model_spec``, ``parse_strategy_list``), so a bad invocation
costs no training time."""
from __future__ import annotations

import os

from .arguments import CLIError


def check_device(device: str) -> None:
    import minitl

    if device not in ("cpu", "cuda"):
        raise CLIError(f"unknown --device {device!r}; use cpu or cuda")
    if device == "cuda" and not minitl.cuda.is_available():
        raise CLIError(f"--device cuda: CUDA is unavailable: {minitl.cuda.why_unavailable()}")


def check_out(path: str, flag: str = "--out", is_dir: bool = False) -> None:
    """``path`` can be written: not a directory (or, with ``is_dir``, not a file) and not under a file."""
    from .. import io

    if not is_dir and os.path.splitext(path)[1].lower() not in io.FORMATS:
        raise CLIError(f"{flag} {path}: a weight file ends in {' or '.join(io.FORMATS)}")
    if os.path.exists(path) and os.path.isdir(path) != is_dir:
        raise CLIError(f"{flag} {path}: is {'a file' if is_dir else 'a directory'}; "
                       f"expected {'a directory' if is_dir else 'a file name'}")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CLIError(f"{flag} {path}: {parent} is a file, so nothing can be written under it")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"{flag} {path}: {parent} is not writable")


def check_data_args(args) -> list[int]:
    """The common data arguments; returns the parsed classes."""
    from ..data import catalog
    from ..data.tasks import DATASETS, parse_classes

    if args.dataset not in DATASETS:
        raise CLIError(f"unknown --dataset {args.dataset!r}; choose from {', '.join(DATASETS)}")
    check_device(args.device)
    try:
        classes = parse_classes(args.classes, len(catalog.CATALOG[args.dataset].classes))
    except ValueError as e:
        raise CLIError(f"--classes: {e}") from None
    if len(classes) < 2:
        raise CLIError(f"--classes {args.classes!r}: a classification task needs at least 2 classes")
    if args.limit is not None and args.limit < len(classes):
        raise CLIError(f"--limit {args.limit} is below the number of classes ({len(classes)}): "
                       "every class needs at least one image")
    return classes


def check_weights(path: str, shape) -> tuple[dict, dict, str]:
    """``(state, metadata, model spec)`` of a weight file that fits inputs of ``shape``, or CLIError."""
    from .. import io
    from ..models import build_model, spec_from_state

    if not os.path.isfile(path):
        raise CLIError(f"--weights {path}: no such file")
    try:
        state, meta = io.load_with_metadata(path)
        model, num_classes = spec_from_state(state)
    except ValueError as e:
        raise CLIError(f"--weights {e}" if str(e).startswith(path) else f"--weights {path}: {e}") from None
    report = build_model(model, num_classes, shape).load_state_dict(state, strict=False)
    if not report.ok:
        raise CLIError(f"--weights {path}: these {model} weights do not fit inputs of shape {tuple(shape)}: {report}")
    return state, meta, model


def check_k(k_shots, task, limit) -> None:
    """Every class of the target's training set holds at least max(k) images."""
    import numpy as np

    smallest = int(np.bincount(task.train.labels, minlength=task.num_classes).min())
    if max(k_shots) > smallest:
        raise CLIError(f"--k {max(k_shots)}: the smallest class of {task.name} has {smallest} training "
                       f"images{f' with --limit {limit}' if limit else ''}; use k <= {smallest}")
