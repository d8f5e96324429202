"""Scratch-vs-transfer experiments: source x target x strategy x k-shot x seed.

    grid = Grid(sources=[Source("fmnist[0-4]", task=source_task)], targets=[target_task],
                strategies=["scratch", "features", "finetune"], k_shots=[5, 20, 100],
                seeds=[0, 1, 2], steps=300, transform=Normalize(0.2860, 0.3530))
    results = run(grid, out_dir="runs/demo")      # results.json/.csv/.md and PNG plots
    print(results.table())

The rules that make the numbers comparable:

- **One budget.** Every strategy trains for exactly ``steps`` optimizer steps
  with the same batch size, learning rate and optimizer.
- **One test set.** Every run is scored on the target's *full* test set.
- **Pairing.** Run (strategy, k, seed) trains on ``target.train.k_shot(k, seed)``
  with the loader shuffled by ``seed``, after ``manual_seed(seed)``, so a
  strategy and scratch with the same seed see the same sample in the same order
  and start from the same random head: their difference is the strategy's effect.
- **Pretraining per seed** (``pretrain_per_seed=True``, the default). Seed
  ``s`` pretrains its own backbone with seed ``s`` (its own initial weights and
  batch order), cached as ``<cache_dir>/<source>-<model>-seed<s>.safetensors``
  with its provenance in the metadata; a later run with the same provenance
  (data fingerprint, model, steps, learning rate, seed, ...) loads it instead of
  training again. Pairing by seed still holds, and the intervals now include
  the spread from one pretraining draw to the next. ``pretrain_per_seed=False``
  pretrains once (seed ``pretrain_seed``, file ``<source>-<model>.safetensors``)
  and every seed reuses that one draw: the intervals are then conditional on it.
- **The backbone's share of the spread.** With several backbones and
  ``backbone_swaps=True``, each transfer run is repeated once on the *next*
  seed's backbone with everything else held (sample, batch order, head): half
  the mean squared difference estimates the between-backbone variance of the
  cell (``backbone_std`` in the report). The swapped runs are kept apart
  (``Results.swaps``) and never enter a cell's mean or interval.
- **Representation similarity.** Each transfer run records the per-layer
  linear CKA (:func:`minitl.transfer.cka`) between the pretrained model and the
  trained one on a fixed probe set of ``cka_probe`` target test images (scratch
  runs too, against the same seed's backbone: how alike an independently
  trained network ends up).
- **Frozen features are computed once.** A strategy that freezes the whole
  backbone (``features``) trains only the head on cached representations
  (:class:`minitl.transfer.FeatureCache`, the same cache and the same rule for
  random transforms as ``Setup.fit``); the test set's representation is
  computed once per backbone and target. The audit after training checks that
  the backbone did not move.

Runs are deterministic per seed on the CPU. The seeds measure the spread over
k-shot samples, data order, head initialisation and (per-seed pretraining)
the pretrained backbone.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .. import io, optim, train, transfer
from ..core.random import manual_seed
from ..data import DataLoader
from ..data.tasks import Task, fingerprint
from ..models import build_model, model_name
from ..transfer import SCRATCH, FeatureCache
from .report import Results, summarize

EVAL_BATCH = 1000


@dataclass
class Source:
    """Where transferred weights come from: a task to pretrain on, or ready weights.

    ``name`` labels the source in results; ``state`` (a state_dict) skips
    pretraining; ``meta`` is the provenance that came with ready weights.
    """

    name: str
    task: Task | None = None
    state: dict | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class Grid:
    """An experiment's configuration: what to compare, on what, and with which budget."""

    sources: list
    targets: list
    strategies: list = field(default_factory=lambda: ["scratch", "features", "finetune"])
    k_shots: list = field(default_factory=lambda: [5, 20, 100])
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    model: object = "lenet"          # a spec for tasks.build_model, or a callable
    steps: int = 300                 # the budget of every (strategy, k, seed) run
    batch_size: int = 64
    lr: float = 0.01
    lr_by_strategy: dict = field(default_factory=dict)  # e.g. {"features": 0.1}: by spec or kind
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    pretrain_steps: int | None = None
    pretrain_epochs: int | None = 2
    pretrain_lr: float = 0.01
    pretrain_seed: int = 0           # the one draw's seed when pretrain_per_seed is False
    pretrain_per_seed: bool = True   # seed s pretrains its own backbone with seed s
    backbone_swaps: bool = True      # rerun each transfer run on the next seed's backbone (backbone_std)
    cka_probe: int = 300             # target test images for per-layer CKA (0: no CKA)
    transform: object = None         # batch transform for every loader (e.g. Normalize)
    curve_points: int = 6            # learning-curve evaluations per run
    curve_per_class: int = 50        # test images per class in the learning-curve subset
    confidence: float = 0.95
    device: str = "cpu"
    cache_dir: str | None = None     # pretrained weights go here (default: <out_dir>/pretrained)

    def lr_for(self, strategy: str) -> float:
        """The learning rate of ``strategy``: by its full spec, else its kind, else ``lr``."""
        kind = transfer.parse_strategy(strategy).kind
        return float(self.lr_by_strategy.get(strategy, self.lr_by_strategy.get(kind, self.lr)))

    def describe(self) -> dict:
        """The configuration as JSON-ready values (for results.json)."""
        return dict(sources=[s.name for s in self.sources], targets=[t.name for t in self.targets],
                    strategies=list(self.strategies), k_shots=list(self.k_shots), seeds=list(self.seeds),
                    model=model_name(self.model), steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                    lr_by_strategy=dict(self.lr_by_strategy),
                    optimizer=self.optimizer, momentum=self.momentum, weight_decay=self.weight_decay,
                    pretrain_steps=self.pretrain_steps, pretrain_epochs=self.pretrain_epochs,
                    pretrain_lr=self.pretrain_lr, pretrain_seed=self.pretrain_seed,
                    pretrain_per_seed=self.pretrain_per_seed, backbone_swaps=self.backbone_swaps,
                    cka_probe=self.cka_probe,
                    transform=repr(self.transform), curve_points=self.curve_points,
                    curve_per_class=self.curve_per_class, confidence=self.confidence, device=self.device)


def _loader(dataset, grid, batch_size=EVAL_BATCH, shuffle=False, seed=None):
    return DataLoader(dataset, batch_size, shuffle=shuffle, seed=seed, transform=grid.transform,
                      device=grid.device)


# ------------------------------------------------------------------ pretraining
_MATCH = ("kind", "dataset", "data_sha", "classes", "model", "steps", "epochs", "batch_size",
          "lr", "momentum", "seed", "transform")


def pretrain_provenance(grid: Grid, source: Source, seed: int | None = None) -> dict:
    """The metadata that identifies a pretraining run (what the cache is matched on).

    ``seed``: the pretraining seed (default ``grid.pretrain_seed``).
    """
    task = source.task
    seed = grid.pretrain_seed if seed is None else seed
    return io.provenance(kind="pretrain", dataset=source.name, data_sha=fingerprint(task.train),
                         classes=list(task.train.classes), model=model_name(grid.model),
                         steps=grid.pretrain_steps, epochs=grid.pretrain_epochs,
                         batch_size=grid.batch_size, lr=grid.pretrain_lr, momentum=grid.momentum,
                         seed=seed, transform=repr(grid.transform))


def pretrain(grid: Grid, source: Source, path=None, log=print, seed: int | None = None) -> tuple[dict, dict]:
    """``(state_dict, record)``: the source's pretrained weights, from ``path`` or by training.

    ``seed`` (default ``grid.pretrain_seed``) seeds the initial weights and the
    batch order. A file at ``path`` whose provenance matches is loaded;
    otherwise the model is trained on ``source.task`` and saved there with its
    provenance. The record says which happened, the seed, the source test
    accuracy and the time.
    """
    if source.state is not None:
        return source.state, dict(name=source.name, seed=None, cached=True, path=None, meta=source.meta)
    seed = grid.pretrain_seed if seed is None else int(seed)
    want = pretrain_provenance(grid, source, seed)
    label = f"{source.name} (seed {seed})"
    if path is not None and os.path.exists(path):
        state, meta = io.load_with_metadata(path)
        if all(meta.get(k) == want[k] for k in _MATCH):
            _log(log, f"pretrained {label}: reusing {path} (source test accuracy {meta.get('test_acc')})")
            return state, dict(name=source.name, seed=seed, cached=True, path=os.fspath(path), meta=meta)
        _log(log, f"pretrained {label}: {path} has other provenance; training again")
    task = source.task
    manual_seed(seed)
    model = build_model(grid.model, task.num_classes, task.shape).to(grid.device)
    opt = optim.SGD(model.parameters(), lr=grid.pretrain_lr, momentum=grid.momentum)
    loader = _loader(task.train, grid, grid.batch_size, shuffle=True, seed=seed)
    start = time.perf_counter()
    history = train.fit(model, loader, opt, steps=grid.pretrain_steps, epochs=grid.pretrain_epochs,
                        progress=False if log is None else None)
    seconds = time.perf_counter() - start
    acc = train.evaluate(model, _loader(task.test, grid))["acc"]
    steps = int(history.last("step", 0))
    meta = dict(want, test_acc=f"{acc:.4f}", trained_steps=str(steps), seconds=f"{seconds:.1f}")
    state = transfer.snapshot(model)  # host copies
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        io.save(state, path, metadata=meta)
    _log(log, f"pretrained {label}: {task.num_classes} classes, {len(task.train)} images, "
              f"test accuracy {100 * acc:.1f}% in {seconds:.1f} s" + (f" -> {path}" if path else ""))
    return state, dict(name=source.name, seed=seed, cached=False, path=None if path is None else os.fspath(path),
                       meta=meta)


def _log(log, text):
    if log is not None:
        log(text)


# ------------------------------------------------------------------------- runs
def run_one(grid: Grid, source_name, state, target: Task, strategy: str, k: int, seed: int,
            test_set, curve_set, cache: FeatureCache | None = None, probe=None, reference=None,
            backbone=None) -> dict:
    """Train one strategy on ``target.train.k_shot(k, seed)`` for ``grid.steps`` steps; score it.

    Returns the run's record: accuracy and loss on ``test_set`` (the full target
    test set), the learning curve on ``curve_set``, per-layer weight drift from
    where training started, the sample's identity (a hash of its indices), and
    ``backbone``: the seed of the pretraining that gave ``state`` (None for
    scratch or ready weights). With a ``probe`` dataset and a ``reference``
    model (the pretrained model), also the per-layer CKA between the two.
    """
    sample = target.train.k_shot(k, seed)
    manual_seed(seed)  # the same random head (or scratch model) for every strategy of this seed
    model = build_model(grid.model, target.num_classes, target.shape).to(grid.device)
    setup = transfer.prepare(strategy, model, state, num_classes=target.num_classes, lr=grid.lr_for(strategy),
                             optimizer=grid.optimizer, momentum=grid.momentum, weight_decay=grid.weight_decay)
    model = setup.model
    batch = min(grid.batch_size, len(sample))
    every = max(1, grid.steps // max(1, grid.curve_points))
    start = time.perf_counter()
    # A frozen backbone trains the head alone on representations computed once
    # (Setup decides, by the one rule of the feature cache); the batches are
    # those the image loader would give (same seed, same batch size).
    train_loader = _loader(sample, grid, batch, True, seed)
    cached = setup.uses_cache(train_loader)
    history = setup.fit(train_loader, steps=grid.steps,
                        eval_loader=_loader(curve_set, grid), eval_every=every, progress=False,
                        feature_cache=cache)
    final = setup.evaluate(_loader(test_set, grid), feature_cache=cache)
    seconds = time.perf_counter() - start
    audit = transfer.audit(model, setup.initial_state, setup)  # raises if a frozen weight moved
    indices = np.asarray(getattr(sample, "indices", np.arange(len(sample))))
    record = dict(source=None if strategy == SCRATCH else source_name, target=target.name, strategy=strategy,
                  k=int(k), seed=int(seed), backbone=None if strategy == SCRATCH else backbone,
                  acc=float(final["acc"]), loss=float(final["loss"]),
                  n_test=int(final["n"]), train_size=len(sample), steps=grid.steps, lr=grid.lr_for(strategy),
                  seconds=round(seconds, 3), cached_features=cached,
                  sample=_short_hash(indices), curve=_curve(history), frozen=len(audit.frozen),
                  drift={layer: float(v) for layer, v in audit.layers.items()})
    if probe is not None and reference is not None:
        table = transfer.cka(reference, model, _loader(probe, grid))
        record["cka"] = {layer: float(v) for layer, v in table.items()}
    return record


def reference_model(grid: Grid, state: dict, shape):
    """The pretrained model itself (its own head), for CKA against the trained ones."""
    probe = build_model(grid.model, 2, shape)  # any class count: to find the head's parameter names
    heads = transfer.head_names(probe)
    weight = next((state[n] for n in heads if n.endswith("weight") and n in state), None)
    if weight is None:
        raise ValueError(f"the pretrained weights have no head ({', '.join(heads)}): cannot rebuild the model")
    model = build_model(grid.model, int(np.shape(weight)[0]), shape)
    model.load_state_dict(state)
    return model.to(grid.device)


def _short_hash(indices) -> str:
    import hashlib

    return hashlib.sha256(np.sort(indices).astype("<i8").tobytes()).hexdigest()[:12]


def _curve(history, max_points: int = 200) -> dict:
    """The learning curve from a History: training loss by step (thinned), eval accuracy by step."""
    steps, loss = history.series("loss")
    stride = max(1, -(-len(steps) // max_points))  # ceil: at most max_points training-loss points
    eval_steps, eval_acc = history.series("eval_acc")
    return dict(step=[int(s) for s in steps[::stride]], train_loss=[float(v) for v in loss[::stride]],
                eval_step=[int(s) for s in eval_steps], eval_acc=[float(v) for v in eval_acc])


def _plan(grid: Grid):
    """Every (source, target, strategy, k, seed), scratch once per (target, k, seed)."""
    for target in grid.targets:
        for k in grid.k_shots:
            for seed in grid.seeds:
                for strategy in grid.strategies:
                    for source in ([None] if strategy == SCRATCH else grid.sources):
                        yield source, target, strategy, k, seed


def _per_seed(grid: Grid, source: Source) -> bool:
    """Whether ``source`` gets one backbone per seed (ready weights are one backbone)."""
    return grid.pretrain_per_seed and source.state is None


def backbone_seed(grid: Grid, source: Source, seed: int):
    """The pretraining seed of the backbone that run ``seed`` transfers from (None: ready weights)."""
    if source.state is not None:
        return None
    return int(seed) if grid.pretrain_per_seed else grid.pretrain_seed


def _cache_path(grid: Grid, source: Source, out_dir, seed=None):
    folder = grid.cache_dir or (os.path.join(out_dir, "pretrained") if out_dir else None)
    if folder is None:
        return None
    name = f"{source.name}-{model_name(grid.model)}" + ("" if seed is None else f"-seed{seed}")
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return os.path.join(folder, slug + ".safetensors")


def check_shapes(grid: Grid, sources, targets) -> None:
    """Fail before any training when a source's inputs differ from a target's.

    Transfer across datasets (MNIST -> EMNIST) needs the same input shape; the
    head is rebuilt for the target's classes by ``prepare``, the rest must fit.
    """
    for source in sources:
        shape = source.task.shape if source.task is not None else None
        for target in targets:
            if shape is not None and tuple(shape) != tuple(target.shape):
                raise ValueError(f"source {source.name} has inputs of shape {tuple(shape)}, target {target.name} "
                                 f"has {tuple(target.shape)}: transfer needs the same input shape")
            if source.state is not None:
                model = build_model(grid.model, target.num_classes, target.shape)
                theirs = {n: tuple(np.shape(v)) for n, v in source.state.items()}
                heads = set(transfer.head_names(model))
                bad = [f"{n} {theirs[n]} vs {tuple(p.shape)}" for n, p in model.named_parameters()
                       if n not in heads and n in theirs and theirs[n] != tuple(p.shape)]
                if bad:
                    raise ValueError(f"weights of {source.name} do not fit {model_name(grid.model)} on "
                                     f"{target.name} (inputs {tuple(target.shape)}): {'; '.join(bad)}")


def run(grid: Grid, out_dir=None, log=print, plots: bool = True) -> Results:
    """Run the whole grid; write results (and plots) to ``out_dir`` when given.

    ``log``: a function taking one line per event (None: silent).
    """
    # Canonical names (fails on a bad spec before any training): "finetune:lr_mult=1.0" is "finetune".
    names = [transfer.parse_strategy(s).name for s in grid.strategies]
    if len(set(names)) != len(names):
        raise ValueError(f"strategies repeat: {names}")
    grid = dataclasses.replace(grid, strategies=names)
    if grid.curve_per_class < 1 or grid.steps < 1:
        raise ValueError("steps and curve_per_class must be at least 1")
    if grid.cka_probe < 0:
        raise ValueError(f"cka_probe must be 0 (off) or a number of images, got {grid.cka_probe}")
    start = time.perf_counter()
    need_weights = any(s != SCRATCH for s in grid.strategies)
    check_shapes(grid, grid.sources if need_weights else [], grid.targets)
    states, pretrain_records = {}, {}
    for source in grid.sources if need_weights else []:
        seeds = list(dict.fromkeys(grid.seeds)) if _per_seed(grid, source) else [None]
        draws = []
        for s in seeds:
            seed = backbone_seed(grid, source, grid.seeds[0] if s is None else s)
            state, record = pretrain(grid, source, _cache_path(grid, source, out_dir, s), log, seed=seed)
            states[(source.name, seed)] = state
            draws.append(record)
        pretrain_records[source.name] = dict(per_seed=_per_seed(grid, source), draws=draws)
    cache, runs, swaps = FeatureCache(), [], []
    plan = list(_plan(grid))
    curve_sets = {t.name: t.test.k_shot(min(grid.curve_per_class, _smallest_class(t.test)), seed=0)
                  for t in grid.targets}
    probes = {t.name: _probe_set(t.test, grid.cka_probe) for t in grid.targets} if grid.cka_probe else {}
    references = {}

    def reference_for(source, seed, target):
        key = (source.name, backbone_seed(grid, source, seed))
        if key not in references:
            references[key] = reference_model(grid, states[key], target.shape)
        return references[key]

    seeds = list(dict.fromkeys(grid.seeds))
    for i, (source, target, strategy, k, seed) in enumerate(plan, 1):
        name = None if source is None else source.name
        # Scratch runs are compared (CKA) with the backbone of their seed from the first source.
        ref_source = source if source is not None else (grid.sources[0] if grid.sources and need_weights else None)
        state = None if source is None else states[(source.name, backbone_seed(grid, source, seed))]
        probe = probes.get(target.name)
        reference = None if ref_source is None or probe is None else reference_for(ref_source, seed, target)
        record = run_one(grid, name, state, target, strategy, k, seed, target.test, curve_sets[target.name], cache,
                         probe=probe, reference=reference,
                         backbone=None if source is None else backbone_seed(grid, source, seed))
        runs.append(record)
        _log(log, f"[{i:>3}/{len(plan)}] {target.name} k={k:<4} seed={seed} {strategy:<22} "
                  f"{'' if name is None else 'from ' + name + ' '}accuracy {100 * record['acc']:5.1f}%  "
                  f"({record['seconds']:.1f} s)")
        if source is not None and grid.backbone_swaps and _per_seed(grid, source) and len(seeds) > 1:
            # The same run on the next seed's backbone: only the backbone differs.
            other = seeds[(seeds.index(seed) + 1) % len(seeds)]
            swap = run_one(grid, name, states[(source.name, other)], target, strategy, k, seed, target.test,
                           curve_sets[target.name], cache, backbone=other)
            swaps.append(swap)
            _log(log, f"      same run on the backbone of seed {other}: accuracy {100 * swap['acc']:5.1f}%")
    results = Results(config=grid.describe(), runs=runs, cells=summarize(runs, grid.confidence, swaps),
                      pretrain=pretrain_records, swaps=swaps)
    results.seconds = round(time.perf_counter() - start, 1)
    if out_dir is not None:
        results.write(out_dir, plots=plots, quiet=log is None)
    return results


def _probe_set(dataset, n: int):
    """A fixed, class-balanced probe of about ``n`` images (seed 0): the same for every run."""
    per_class = max(1, n // max(1, len(dataset.classes)))
    return dataset.k_shot(min(per_class, _smallest_class(dataset)), seed=0)


def _smallest_class(dataset) -> int:
    return int(np.bincount(dataset.labels, minlength=len(dataset.classes)).min())
