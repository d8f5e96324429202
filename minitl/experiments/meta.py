"""Meta-learning: Reptile and first-order MAML against pretrain-then-fine-tune and scratch.

    results = run_meta(MetaConfig(ways=3, shots=5), source, target, out_dir="runs/meta")
    print(results.table())

A few-shot *task* is an episode (:func:`minitl.data.episodes.sample_episode`):
N classes of a class split, relabelled 0..N-1 in a random order, K support
images each, and query images of the same classes. Meta-training draws its
tasks from the source classes; the comparison uses held-out tasks from the
target classes (support from the target's train split, query from its test
split), never seen in meta-training or pretraining.

- **Reptile** (Nichol et al., 2018): on each task, ``inner_steps`` SGD steps
  from the current weights ``w`` reach ``w'``; then ``w += eps (w' - w)``.
- **First-order MAML** (Finn et al., 2017, first-order form): on each task,
  adapt on the support to ``w'``, take the gradient of the *query* loss at
  ``w'``, and step ``w -= beta grad``: MAML's update without the second
  derivatives (which minitl's backward does not compute, and which the
  first-order form does without at little cost).
- **pretrain**: ordinary training on the source classes for as many
  sample-gradients as one meta-learner's inner loops used, then a new head.
- **scratch**: random weights.

Both outer step sizes are annealed linearly to 0 over the meta-iterations. The
head is meta-learned too (an N-way head; a task's labels are a random
permutation, so it learns no class identity). On every held-out task each
start point gets the *same* adaptation: the same support set, ``adapt_steps``
full-batch SGD steps at ``lr``, and the same fresh head for scratch and
pretrain (``manual_seed`` of the task); all are scored on the same query set,
so differences are paired by task (``stats.paired_difference``); the results,
their table and files are in ``meta_report.py``.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import optim, train, transfer
from ..core.random import manual_seed
from ..data import DataLoader
from ..data.episodes import sample_episode
from ..models import build_model, model_name
from ..nn import functional as F
from .grid import Grid, Source, pretrain
from .meta_report import MetaResults

METHODS = ("scratch", "pretrain", "reptile", "fomaml")


@dataclass
class MetaConfig:
    """A meta-learning comparison: the tasks, the meta-training budget and the adaptation budget."""

    ways: int = 3
    shots: int = 5
    query: int = 100                 # query images per class of a held-out task (from the test split)
    meta_query: int = 5              # query images per class of a meta-training task (FOMAML's outer loss)
    methods: list = field(default_factory=lambda: list(METHODS))
    model: str = "lenet"
    meta_iters: int = 500            # meta-training tasks per meta-learner
    inner_steps: int = 5             # SGD steps on each meta-training task's support
    reptile_lr: float = 1.0          # Reptile's outer step eps (annealed linearly to 0)
    fomaml_lr: float = 0.1           # FOMAML's outer SGD step beta (annealed linearly to 0)
    tasks: int = 20                  # held-out test tasks
    adapt_steps: int = 20            # SGD steps on a held-out task's support, for every start point
    lr: float = 0.05                 # the SGD learning rate of every inner and adaptation loop
    seed: int = 0
    batch_size: int = 64             # pretraining's batch size
    transform: object = None
    device: str = "cpu"
    confidence: float = 0.95

    def describe(self) -> dict:
        """The configuration as JSON-ready values."""
        d = asdict(self)
        d["transform"] = repr(self.transform)
        return d


# --------------------------------------------------------------- the updates
def _batch(dataset, transform, device):
    """The whole set as one ``(x, y)`` batch, scaled as every loader scales it."""
    loader = DataLoader(dataset, max(1, len(dataset)), transform=transform, device=device)
    return loader.batch(np.arange(len(dataset)))


def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


def adapt(model, support, steps: int, lr: float, transform=None, device="cpu"):
    """Full-batch SGD on ``support`` for ``steps`` steps (the inner loop, and test-time adaptation)."""
    x, y = _batch(support, transform, device)
    opt = optim.SGD(model.parameters(), lr=lr)
    for _ in range(int(steps)):
        loss = _loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def _weights(model):
    return [p.data.copy() for p in model.parameters()]


def reptile_step(model, support, inner_steps: int, inner_lr: float, outer_lr: float, transform=None,
                 device="cpu"):
    """One Reptile update in place: adapt to ``w'`` on ``support``, then ``w += outer_lr (w' - w)``."""
    start = _weights(model)
    adapt(model, support, inner_steps, inner_lr, transform, device)
    for p, w in zip(model.parameters(), start):
        p.data = w + outer_lr * (p.data - w)  # d(w)/d(eps) = w' - w: a step toward the adapted weights
    return model


def fomaml_step(model, support, query, inner_steps: int, inner_lr: float, outer_lr: float, transform=None,
                device="cpu"):
    """One first-order MAML update in place: ``w -= outer_lr * grad L_query(w')``, ``w'`` adapted on ``support``.

    The gradient is taken at the adapted weights and applied to the starting
    ones: MAML's meta-gradient with the Jacobian dw'/dw replaced by the identity.
    """
    start = _weights(model)
    adapt(model, support, inner_steps, inner_lr, transform, device)
    params = list(model.parameters())
    for p in params:
        p.grad = None
    x, y = _batch(query, transform, device)
    _loss(model, x, y).backward()
    for p, w in zip(params, start):
        p.data = w - outer_lr * p.grad.data  # first order: dL(w')/dw ~ dL(w')/dw'
        p.grad = None
    return model


def meta_train(method: str, config: MetaConfig, dataset, log=None) -> tuple[dict, dict]:
    """``(state_dict, record)``: a start point meta-learned by ``method`` on tasks drawn from ``dataset``."""
    if method not in ("reptile", "fomaml"):
        raise ValueError(f"unknown meta-learner {method!r}; use 'reptile' or 'fomaml'")
    manual_seed(config.seed)
    model = build_model(config.model, config.ways, dataset.shape).to(config.device)
    start = time.perf_counter()
    iters = int(config.meta_iters)
    for it in range(iters):
        anneal = 1.0 - it / iters  # both outer steps decay linearly to 0
        episode = sample_episode(dataset, config.ways, config.shots,
                                 config.meta_query if method == "fomaml" else 0, seed=[config.seed, 0, it])
        if method == "reptile":
            reptile_step(model, episode.support, config.inner_steps, config.lr, config.reptile_lr * anneal,
                         config.transform, config.device)
        else:
            fomaml_step(model, episode.support, episode.query, config.inner_steps, config.lr,
                        config.fomaml_lr * anneal, config.transform, config.device)
    seconds = time.perf_counter() - start
    if log is not None:
        log(f"{method}: {iters} {config.ways}-way {config.shots}-shot tasks, {config.inner_steps} inner steps "
            f"each, in {seconds:.1f} s")
    state = transfer.snapshot(model)
    return state, dict(method=method, iters=iters, seconds=round(seconds, 1),
                       sample_gradients=iters * config.inner_steps * config.ways * config.shots)


# ---------------------------------------------------------------- evaluation
def held_out_tasks(config: MetaConfig, target):
    """The held-out tasks: support from ``target.train``, query from ``target.test`` (seeded by config.seed)."""
    return [sample_episode(target.train, config.ways, config.shots, config.query, seed=[config.seed, 1, t],
                           query_from=target.test) for t in range(int(config.tasks))]


def start_model(method: str, config: MetaConfig, state, shape, task_seed: int):
    """The model a method adapts on a task: the same fresh head for scratch and pretrain (``task_seed``)."""
    manual_seed(task_seed)
    model = build_model(config.model, config.ways, shape)
    if method == "pretrain":
        heads = set(transfer.head_names(model))
        model.load_state_dict({k: v for k, v in state.items() if k not in heads}, strict=False)
    elif method in ("reptile", "fomaml"):
        model.load_state_dict(state)  # the meta-learned head included
    return model.to(config.device)


def evaluate_start(model, episode, config: MetaConfig) -> float:
    """Adapt ``model`` on the episode's support by the one budget; its accuracy on the query set."""
    adapt(model, episode.support, config.adapt_steps, config.lr, config.transform, config.device)
    loader = DataLoader(episode.query, 1000, transform=config.transform, device=config.device)
    return float(train.evaluate(model, loader)["acc"])


def run_meta(config: MetaConfig, source, target, out_dir=None, log=print, plots: bool = True) -> MetaResults:
    """Meta-train, pretrain, and compare every method of ``config`` on the same held-out tasks.

    ``source`` and ``target``: :class:`~minitl.data.tasks.Task` s with disjoint classes.
    Writes ``meta.json``, ``meta.md`` (and ``meta.png``) to ``out_dir`` when given.
    """
    methods = list(dict.fromkeys(config.methods))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown or methods}; choose from {', '.join(METHODS)}")
    if tuple(source.shape) != tuple(target.shape):
        raise ValueError(f"source inputs {tuple(source.shape)} and target inputs {tuple(target.shape)} differ")
    if config.adapt_steps < 0 or config.meta_iters < 1 or config.tasks < 1:
        raise ValueError("meta_iters and tasks must be at least 1, adapt_steps at least 0")
    tasks = held_out_tasks(config, target)  # drawn first: a bad ways/shots fails before any training
    start = time.perf_counter()
    states, records = {}, {}
    for method in methods:
        if method in ("reptile", "fomaml"):
            states[method], records[method] = meta_train(method, config, source.train, log)
    if "pretrain" in methods:
        # The same number of sample-gradients as one meta-learner's inner loops, in ordinary batches.
        budget = int(config.meta_iters) * config.inner_steps * config.ways * config.shots
        recipe = Grid(sources=[], targets=[], model=config.model, batch_size=config.batch_size,
                      pretrain_steps=max(1, budget // config.batch_size), pretrain_epochs=None,
                      pretrain_lr=config.lr, pretrain_seed=config.seed, transform=config.transform,
                      device=config.device)
        path = None if out_dir is None else os.path.join(
            out_dir, f"pretrained-{model_name(config.model)}-{recipe.pretrain_steps}steps-seed{config.seed}"
                     f".safetensors")
        states["pretrain"], record = pretrain(recipe, Source(source.name, task=source), path, log=log)
        records["pretrain"] = dict(steps=recipe.pretrain_steps, sample_gradients=recipe.pretrain_steps
                                   * config.batch_size, cached=record["cached"],
                                   source_test_acc=record["meta"].get("test_acc"))
    acc = {m: [] for m in methods}
    for t, episode in enumerate(tasks):
        for method in methods:
            model = start_model(method, config, states.get(method), target.shape, task_seed=1000 + t)
            acc[method].append(evaluate_start(model, episode, config))
        if log is not None:
            log(f"task {t + 1:>3}/{len(tasks)} classes {', '.join(episode.support.classes)}: "
                + "  ".join(f"{m} {100 * acc[m][-1]:5.1f}%" for m in methods))
    results = MetaResults(config=config.describe(), source=source.name, target=target.name, acc=acc,
                          tasks=[list(e.classes) for e in tasks], training=records,
                          seconds=round(time.perf_counter() - start, 1))
    if out_dir is not None:
        results.write(out_dir, plots=plots, quiet=log is None)
    return results


__all__ = ["MetaConfig", "MetaResults", "run_meta", "meta_train", "reptile_step", "fomaml_step", "adapt",
           "held_out_tasks", "start_model", "evaluate_start", "METHODS"]
