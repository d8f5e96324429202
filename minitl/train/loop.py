"""Training and evaluation loops: ``fit`` and ``evaluate``.

    history = fit(model, loader, optimizer, steps=500, eval_loader=test_loader, eval_every=100,
                  checkpoint="run/ckpt.safetensors", checkpoint_every=100, resume=True)
    history.last("eval_acc"); history.series("loss")

``fit`` counts optimizer steps (``steps=``) or passes over the loader
(``epochs=``). A checkpoint holds the model, the optimizer, minitl's RNG
state, the loader's position and generators, the scheduler, stateful
callbacks and the history, so a resumed run continues bit-identically on the
CPU. A NaN or Inf loss stops training before the update, naming the step.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from ..core.grad_mode import no_grad
from ..data import DataLoader
from ..nn import functional as F
from .checkpoint import apply_checkpoint, read_checkpoint, save_checkpoint
from .history import History
from .progress import Progress

__all__ = ["fit", "evaluate", "TrainState"]


@dataclass
class TrainState:
    """What callbacks see. ``step``: optimizer steps done; ``epoch``: passes over the
    loader done; ``batch``: batches done in the current pass; ``loss``: the last
    batch's loss. A callback may set ``stop = True`` to end training after this step."""

    model: object
    optimizer: object
    history: History
    scheduler: object = None
    step: int = 0
    epoch: int = 0
    batch: int = 0
    loss: float | None = None
    stop: bool = False


# ---------------------------------------------------------------- evaluate
def _module_modes(model):
    return [(m, m.training) for m in model.modules()] if hasattr(model, "modules") else []


def _restore_modes(modes) -> None:
    for m, mode in modes:
        object.__setattr__(m, "training", mode)


def _correct(out, y) -> int | None:
    """How many argmax predictions match ``y``; None when ``out`` is not (N, C) logits."""
    if out.ndim != 2 or y.ndim != 1 or y.dtype.kind not in "iu":
        return None
    return int((out.data.argmax(axis=1) == y.data).sum())


def evaluate(model, loader, loss_fn=None, features_fn=None) -> dict:
    """Mean loss and accuracy of ``model`` over ``loader``: ``{'loss', 'acc', 'n'}``.

    Runs in eval mode under ``no_grad`` and puts every sub-module's previous
    train/eval mode back. ``loader`` is any iterable of ``(x, y)`` Tensors.
    ``features_fn`` maps each ``x`` first (as in :func:`fit`). The loss is the
    per-sample mean over the whole set; ``acc`` is None for non-class outputs,
    and both are NaN for an empty loader.
    """
    loss_fn = loss_fn or F.cross_entropy
    modes = _module_modes(model)
    model.eval()
    total_loss, correct, n, has_acc = 0.0, 0, 0, True
    try:
        with no_grad():
            for x, y in loader:
                if features_fn is not None:
                    x = features_fn(x)
                out = model(x)
                batch_n = len(y)
                total_loss += float(loss_fn(out, y).item()) * batch_n
                c = _correct(out, y)
                has_acc = has_acc and c is not None
                correct += c or 0
                n += batch_n
    finally:
        _restore_modes(modes)
    if n == 0:
        return {"loss": math.nan, "acc": math.nan, "n": 0}
    return {"loss": total_loss / n, "acc": correct / n if has_acc else None, "n": n}


# --------------------------------------------------------------------- fit
def _call(callbacks, hook: str, state) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(state)


def _save(path, state, loader, scheduler, callbacks, loader_epoch) -> None:
    """A checkpoint of everything ``fit`` needs to continue from ``state``."""
    extra = {
        "batch": state.batch,
        "loader_epoch": loader_epoch,
        "loader": loader.state_dict() if isinstance(loader, DataLoader) else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "callbacks": [cb.state_dict() if callable(getattr(cb, "state_dict", None)) else None for cb in callbacks],
        "history": state.history.to_dict(),
    }
    save_checkpoint(path, state.model, state.optimizer, state.step, state.epoch, extra=extra)


def _check_extra(extra, loader, scheduler, callbacks) -> None:
    """Raise ``ValueError`` naming what in ``fit``'s part of a checkpoint cannot be resumed."""
    fields = {"batch", "loader_epoch", "loader", "scheduler", "callbacks", "history"}
    if not isinstance(extra, dict) or set(extra) != fields:
        raise ValueError(f"extra must hold {sorted(fields)} (written by fit), found "
                         f"{sorted(extra) if isinstance(extra, dict) else type(extra).__name__}")
    for key in ("batch", "loader_epoch"):
        v = extra[key]
        if not (v is None and key == "loader_epoch") and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            raise ValueError(f"extra.{key} is {v!r:.60}, not a count")
    History.check_dict(extra["history"])
    if isinstance(loader, DataLoader) and extra["loader"] is not None:
        loader.check_state_dict(extra["loader"])
    if scheduler is not None and extra["scheduler"] is not None:
        scheduler.check_state_dict(extra["scheduler"])
    if not isinstance(extra["callbacks"], list):
        raise ValueError("extra.callbacks is not a list")
    for cb, cb_state in zip(callbacks, extra["callbacks"]):
        if cb_state is not None and callable(getattr(cb, "check_state_dict", None)):
            cb.check_state_dict(cb_state)


def _resume(path, state, loader, scheduler, callbacks):
    """Load ``path`` into ``state`` and the loader; returns the loader epoch to replay.

    Everything is checked (:func:`read_checkpoint`, then ``fit``'s own part)
    before the model, optimizer, RNG, loader or scheduler is touched.
    """
    ckpt = read_checkpoint(path, state.model, state.optimizer)
    try:
        _check_extra(ckpt.extra, loader, scheduler, callbacks)
    except ValueError as e:
        raise ValueError(f"{ckpt.path}: not a usable checkpoint: {e}") from None
    info = apply_checkpoint(ckpt, state.model, state.optimizer)
    extra = info["extra"]
    state.step, state.epoch, state.batch = info["step"], info["epoch"], extra["batch"]
    state.history = History.from_dict(extra["history"])
    if isinstance(loader, DataLoader) and extra["loader"] is not None:
        loader.load_state_dict(extra["loader"])
    if scheduler is not None and extra["scheduler"] is not None:
        scheduler.load_state_dict(extra["scheduler"])
    for cb, cb_state in zip(callbacks, extra["callbacks"]):
        if cb_state is not None and callable(getattr(cb, "load_state_dict", None)):
            cb.load_state_dict(cb_state)
    return extra["loader_epoch"]


def fit(model, loader, optimizer, *, steps=None, epochs=None, eval_loader=None, eval_every=None,
        callbacks=(), loss_fn=None, penalty=None, scheduler=None, checkpoint=None, checkpoint_every=None,
        resume=False, progress=None, features_fn=None) -> History:
    """Train ``model`` on ``loader`` for ``steps`` optimizer steps or ``epochs`` passes.

    - ``loader``: re-iterable ``(x, y)`` batches (a ``minitl.data.DataLoader`` or a list).
    - ``loss_fn(output, y)``: default ``cross_entropy``; ``penalty(model)`` (a Tensor)
      is added to it before backward (L2-SP uses this).
    - ``features_fn``: when given, each ``x`` (training and evaluation) becomes
      ``features_fn(x)``, computed without a graph: ``model`` is then a head
      over a fixed representation.
    - ``eval_loader``: evaluated every ``eval_every`` steps, or after each epoch
      when ``eval_every`` is None and ``epochs`` is given, and always at the end.
    - ``scheduler``: ``scheduler.step()`` after every optimizer step.
    - ``checkpoint``: a ``.safetensors``/``.npz`` path written every
      ``checkpoint_every`` steps (after each epoch when None and ``epochs`` is
      given) and at the end; with ``resume=True`` an existing file is loaded
      first and training continues from it, bit-identically on the CPU.
    - ``progress``: None = a tqdm bar when stderr is a terminal (plain lines
      per epoch without tqdm); False = silent; True = always.
    - ``callbacks``: objects with any of ``on_train_begin``, ``on_step_end``,
      ``on_epoch_end``, ``on_train_end``, each called with a :class:`TrainState`.

    Raises ``FloatingPointError`` naming the step when the loss is NaN or Inf
    (before that step's update). Returns the :class:`History`.
    """
    if (steps is None) == (epochs is None):
        raise ValueError("fit needs exactly one of steps= or epochs=")
    if (steps is not None and steps < 0) or (epochs is not None and epochs < 0):
        raise ValueError(f"steps and epochs must be >= 0, got steps={steps}, epochs={epochs}")
    for name, every in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
        if every is not None and every < 1:
            raise ValueError(f"{name} must be >= 1, got {every}")
    loss_fn = loss_fn or F.cross_entropy
    callbacks = list(callbacks)
    state = TrainState(model=model, optimizer=optimizer, history=History(), scheduler=scheduler)

    resume_epoch = None
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        resume_epoch = _resume(checkpoint, state, loader, scheduler, callbacks)
    time_offset = state.history.last("time", 0.0)
    try:
        per_epoch = len(loader)
    except TypeError:
        per_epoch = None
    total = steps if steps is not None else (epochs * per_epoch if per_epoch is not None else None)
    bar = Progress(progress, total)
    start = time.perf_counter()
    evaluated_at = saved_at = None

    def save(loader_epoch):
        nonlocal saved_at
        if saved_at != (state.step, state.epoch):  # the same point is written once
            _save(checkpoint, state, loader, scheduler, callbacks, loader_epoch)
            saved_at = (state.step, state.epoch)

    def run_eval():
        nonlocal evaluated_at
        result = evaluate(model, eval_loader, loss_fn, features_fn)
        state.history.update_last(eval_loss=result["loss"], eval_acc=result["acc"], eval_n=result["n"])
        evaluated_at = state.step

    def finished():
        return state.stop or (state.step >= steps if steps is not None else state.epoch >= epochs)

    loader_epoch = resume_epoch if resume_epoch is not None else getattr(loader, "epoch", None)
    model.train()
    _call(callbacks, "on_train_begin", state)
    try:
        while not finished():
            skip = state.batch
            if resume_epoch is not None and isinstance(loader, DataLoader):
                loader.set_epoch(resume_epoch)  # replay the interrupted pass's order
            resume_epoch = None
            loader_epoch = getattr(loader, "epoch", None)
            produced = skip
            tick = time.perf_counter()
            for x, y in _batches_from(loader, skip):
                record = _train_step(state, x, y, loss_fn, penalty, scheduler, features_fn)
                produced += 1
                now = time.perf_counter()
                record["time"] = time_offset + now - start
                record["samples_per_s"] = len(y) / max(now - tick, 1e-12)
                state.history.append(record)
                if eval_loader is not None and eval_every is not None and state.step % eval_every == 0:
                    run_eval()
                _call(callbacks, "on_step_end", state)
                if checkpoint is not None and checkpoint_every is not None and state.step % checkpoint_every == 0:
                    save(loader_epoch)
                bar.step(state, record)
                if finished():
                    break
                tick = time.perf_counter()
            else:  # the pass ended
                if produced == 0:
                    raise ValueError("the loader produced no batches: fit needs a non-empty, re-iterable loader")
                state.epoch += 1
                state.batch = 0
                if eval_loader is not None and eval_every is None and epochs is not None:
                    run_eval()
                _call(callbacks, "on_epoch_end", state)
                if checkpoint is not None and checkpoint_every is None and epochs is not None:
                    save(getattr(loader, "epoch", None))
                bar.epoch_end(state)
        if eval_loader is not None and evaluated_at != state.step:
            run_eval()
        if checkpoint is not None:
            save(loader_epoch if state.batch else getattr(loader, "epoch", None))
        _call(callbacks, "on_train_end", state)
    finally:
        bar.close(state)
    return state.history


def _batches_from(loader, skip: int):
    """One pass over ``loader``, starting after its first ``skip`` batches (a resumed run).

    A ``DataLoader`` jumps straight there (:meth:`DataLoader.batches`); any
    other iterable of batches is replayed and the skipped batches dropped.
    """
    if isinstance(loader, DataLoader):
        yield from loader.batches(skip)
        return
    it = iter(loader)
    for _ in range(skip):
        if next(it, None) is None:
            return
    yield from it


def _train_step(state, x, y, loss_fn, penalty, scheduler, features_fn) -> dict:
    """Forward, finite-loss check, backward, update; returns the step's record."""
    model, optimizer = state.model, state.optimizer
    if features_fn is not None:
        with no_grad():
            x = features_fn(x)
    out = model(x)
    loss = loss_fn(out, y)
    objective = loss
    pen = None
    if penalty is not None:
        pen = penalty(model)
        objective = loss + pen
    value = float(objective.item())
    step = state.step + 1
    if not math.isfinite(value):
        raise FloatingPointError(
            f"the loss is {value} at step {step} (epoch {state.epoch + 1}, batch {state.batch + 1}): "
            "training stopped before this step's update; try a lower learning rate")
    optimizer.zero_grad()
    objective.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    state.step, state.batch = step, state.batch + 1
    data_loss = value if pen is None else float(loss.item())
    state.loss = data_loss
    correct = _correct(out, y)
    record = {"step": step, "epoch": state.epoch, "loss": data_loss,
              "acc": None if correct is None else correct / max(len(y), 1),
              "lr": float(optimizer.param_groups[0]["lr"])}
    if pen is not None:
        record["penalty"] = float(pen.item())
    return record
