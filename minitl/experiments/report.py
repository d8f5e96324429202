"""Experiment results: per-cell summaries, paired differences to scratch, and the files.

A *run* is one training of one strategy on one k-shot sample with one seed; a
*cell* is every seed of one (source, target, strategy, k). This module turns
the runs of :func:`minitl.experiments.run` into cells and writes them out:

- ``results.json``: the configuration, every run (with learning curves and
  weight drift), every cell, the pretraining record;
- ``results.csv``: one row per cell; ``runs.csv``: one row per run;
- ``results.md``: the Markdown table :func:`markdown_table` prints.

Each cell holds the mean accuracy over seeds, its sample std and a Student-t
interval; a transfer cell also holds the *paired* difference to scratch on
the same target, k and seed (so the same k-shot sample, the same loader order
and the same head initialisation), with its own interval. When that interval
lies wholly below zero the cell is flagged as **negative transfer**; wholly
above zero, as better than scratch. Pairing is what makes three seeds enough
to see an effect: the seed-to-seed spread of the k-shot sample cancels out.

With one pretrained backbone per seed, a transfer cell's spread includes the
backbone's. ``backbone_std`` says how much: from the *swapped* runs (each run
repeated on another seed's backbone, all else equal), the between-backbone
variance is estimated as half the mean squared difference,
``var_b = mean((acc - acc_swapped)^2) / 2`` (each difference is the gap
between two independent backbone draws on the same sample). ``backbone_share``
is ``var_b / std^2`` (capped at 1): the part of the cell's variance that a
single pretraining draw would have hidden.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..io import atomic_write
from ..transfer import SCRATCH
from . import stats


def _num(x):
    """A float for JSON: NaN and infinities become None (JSON has neither)."""
    return None if x is None or not math.isfinite(x) else float(x)


def cell_key(run: dict) -> tuple:
    """The cell a run belongs to: (source, target, strategy, k)."""
    return (run["source"], run["target"], run["strategy"], run["k"])


def backbone_spread(members: list[dict], swaps: list[dict]) -> float | None:
    """The between-backbone std of a cell from its runs and their swapped twins (None without any).

    ``sqrt(mean((a - a_swapped)^2) / 2)`` over the seeds that have a swapped
    run on a different backbone.
    """
    twins = {r["seed"]: r for r in swaps if r.get("backbone") is not None}
    d = [m["acc"] - twins[m["seed"]]["acc"] for m in members
         if m["seed"] in twins and twins[m["seed"]]["backbone"] != m.get("backbone")]
    if not d:
        return None
    return math.sqrt(sum(v * v for v in d) / len(d) / 2)


def summarize(runs: list[dict], confidence: float = 0.95, swaps: list[dict] | None = None) -> list[dict]:
    """One summary per (source, target, strategy, k), in the order the runs first appear.

    Each summary: ``n``, ``mean``, ``std``, ``lo``, ``hi`` of the accuracy;
    ``diff`` (a dict of mean, std, lo, hi, p and the seeds paired) against the
    scratch runs of the same target and k, or None for scratch itself or when
    no scratch run shares a seed; ``negative_transfer`` (the difference's
    interval lies below zero) and ``positive_transfer`` (above zero);
    ``backbones`` (how many pretrained backbones the cell's runs used) and
    ``backbone_std`` / ``backbone_share`` from ``swaps`` (None where there are
    none: scratch, or a single backbone).
    """
    swapped: dict[tuple, list[dict]] = {}
    for r in swaps or []:
        swapped.setdefault(cell_key(r), []).append(r)
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault(cell_key(r), []).append(r)
    scratch = {(r["target"], r["k"], r["seed"]): r["acc"] for r in runs if r["strategy"] == SCRATCH}
    cells = []
    for (source, target, strategy, k), members in groups.items():
        members = sorted(members, key=lambda r: r["seed"])
        accs = [r["acc"] for r in members]
        m = stats.mean_ci(accs, confidence)
        cell = dict(source=source, target=target, strategy=strategy, k=k, n=len(accs),
                    seeds=[r["seed"] for r in members], mean=m.mean, std=_num(m.std),
                    lo=_num(m.lo), hi=_num(m.hi), diff=None,
                    negative_transfer=False, positive_transfer=False,
                    backbones=len({r.get("backbone") for r in members}) if strategy != SCRATCH else 0,
                    backbone_std=None, backbone_share=None)
        b = backbone_spread(members, swapped.get((source, target, strategy, k), []))
        if b is not None:
            cell["backbone_std"] = b
            total = m.std * m.std if math.isfinite(m.std) else math.nan
            cell["backbone_share"] = _num(min(1.0, b * b / total) if total > 0 else math.nan)
        if strategy != SCRATCH:
            pairs = [(r["acc"], scratch[(target, k, r["seed"])]) for r in members
                     if (target, k, r["seed"]) in scratch]
            if pairs:
                d = stats.paired_difference([a for a, _ in pairs], [b for _, b in pairs], confidence)
                cell["diff"] = dict(mean=d.mean, std=_num(d.std), lo=_num(d.lo), hi=_num(d.hi),
                                    p=_num(d.p_value), n=d.n)
                # A NaN bound (a single pair) never raises a flag: no interval, no claim.
                cell["negative_transfer"] = bool(d.hi < 0)
                cell["positive_transfer"] = bool(d.lo > 0)
        cells.append(cell)
    return cells


# ------------------------------------------------------------------ formatting
def _pct(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def _signed(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}"


def verdict(cell: dict) -> str:
    """A few words for the flag column: negative transfer, better, or not significant."""
    if cell["diff"] is None:
        return "baseline" if cell["strategy"] == SCRATCH else ""
    if cell["negative_transfer"]:
        return "**NEGATIVE TRANSFER**"
    if cell["positive_transfer"]:
        return "better"
    return "n.s."


def markdown_table(cells: list[dict], confidence: float = 0.95) -> str:
    """The cells as a Markdown table (accuracies and differences in percentage points).

    Rows are grouped by target, then k, then source, scratch first. ``backbone
    std``: the between-backbone std (see :func:`backbone_spread`), blank where
    the cell has one backbone.
    """
    level = f"{100 * confidence:g}%"
    head = ("| target | k | strategy | source | accuracy % (mean ± std) | "
            f"{level} CI | backbone std | Δ vs scratch | Δ {level} CI | verdict |")
    rows = [head, "|---|--:|---|---|--:|--:|--:|--:|--:|---|"]
    order = {name: i for i, name in enumerate(dict.fromkeys(c["strategy"] for c in cells))}
    for c in sorted(cells, key=lambda c: (c["target"], c["k"], c["strategy"] != SCRATCH,
                                          c["source"] or "", order[c["strategy"]])):
        std = "" if c["std"] is None else f" ± {_pct(c['std'])}"
        ci = "n/a" if c["lo"] is None else f"[{_pct(c['lo'])}, {_pct(c['hi'])}]"
        d = c["diff"]
        delta = "" if d is None else _signed(d["mean"])
        dci = "" if d is None else ("n/a" if d["lo"] is None else f"[{_signed(d['lo'])}, {_signed(d['hi'])}]")
        b = c.get("backbone_std")
        spread = "" if b is None else _pct(b)
        rows.append(f"| {c['target']} | {c['k']} | {c['strategy']} | {c['source'] or '—'} | "
                    f"{_pct(c['mean'])}{std} | {ci} | {spread} | {delta} | {dci} | {verdict(c)} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------ CKA
def cka_matrix(results, k=None):
    """``(layers, strategies, matrix)``: mean CKA over seeds per layer (rows) and strategy (columns).

    At ``k`` (default: the largest k with CKA), on the first (source, target)
    pair; None when no run recorded CKA. A missing value is NaN.
    """
    runs = [r for r in results.runs if r.get("cka")]
    if not runs:
        return None
    k = max(r["k"] for r in runs) if k is None else k
    source, target = next(((c["source"], c["target"]) for c in results.cells if c["source"] is not None),
                          (None, runs[0]["target"]))
    layers = list(dict.fromkeys(name for r in runs for name in r["cka"]))
    strategies = []
    columns = []
    for strategy in dict.fromkeys(c["strategy"] for c in results.cells):
        want = None if strategy == "scratch" else source
        chosen = [r for r in runs if r["k"] == k and r["strategy"] == strategy
                  and r["target"] == target and r["source"] == want]
        if not chosen:
            continue
        strategies.append(strategy)
        columns.append([_nanmean([r["cka"].get(name, np.nan) for r in chosen]) for name in layers])
    return layers, strategies, np.array(columns, dtype=np.float64).T


def _nanmean(values):
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
    return float(v.mean())  # NaN stays NaN: a dead layer in one seed is shown as such


def cka_markdown(results, k=None) -> str:
    """The mean per-layer CKA (pretrained vs trained) as a layer x strategy Markdown table; '' without CKA."""
    found = cka_matrix(results, k)
    if found is None:
        return ""
    layers, strategies, matrix = found
    rows = ["| layer | " + " | ".join(strategies) + " |", "|---|" + "--:|" * len(strategies)]
    for name, values in zip(layers, matrix):
        rows.append(f"| {name} | " + " | ".join("n/a" if not math.isfinite(v) else f"{v:.3f}" for v in values) + " |")
    return "\n".join(rows)


# ---------------------------------------------------------------------- files
_CELL_COLUMNS = ["source", "target", "strategy", "k", "n", "mean", "std", "lo", "hi",
                 "diff_mean", "diff_std", "diff_lo", "diff_hi", "diff_p",
                 "negative_transfer", "positive_transfer", "backbones", "backbone_std", "backbone_share"]
_RUN_COLUMNS = ["source", "target", "strategy", "k", "seed", "backbone", "acc", "loss", "n_test",
                "train_size", "steps", "lr", "seconds", "sample"]


def _cell_row(c: dict) -> dict:
    row = {k: c[k] for k in _CELL_COLUMNS if k in c}
    d = c["diff"] or {}
    for k in ("mean", "std", "lo", "hi", "p"):
        row[f"diff_{k}"] = d.get(k)
    return row


def _write_csv(path, columns, rows) -> None:
    def write(f):
        import io

        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
        f.write(text.getvalue().encode("utf-8"))
    atomic_write(path, write)


def _write_text(path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


@dataclass
class Results:
    """What an experiment produced: its configuration, runs, cells and pretraining record."""

    config: dict
    runs: list = field(default_factory=list)
    cells: list = field(default_factory=list)
    pretrain: dict = field(default_factory=dict)
    seconds: float = 0.0
    swaps: list = field(default_factory=list)  # runs repeated on another seed's backbone (backbone_std)

    @property
    def per_seed(self) -> bool:
        """Whether each seed pretrained its own backbone (``pretrain_per_seed``)."""
        return bool(self.config.get("pretrain_per_seed", False))

    @property
    def confidence(self) -> float:
        """The confidence level of every interval (0.95 unless configured)."""
        return float(self.config.get("confidence", 0.95))

    def table(self) -> str:
        """The Markdown table of the cells."""
        return markdown_table(self.cells, self.confidence)

    def cell(self, strategy: str, k: int, source=None, target=None) -> dict:
        """The summary of one cell (source/target may be left out when the grid has one)."""
        hits = [c for c in self.cells if c["strategy"] == strategy and c["k"] == k
                and (source is None or c["source"] == source) and (target is None or c["target"] == target)]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} cells match strategy={strategy!r} k={k} source={source!r} target={target!r}")
        return hits[0]

    def cka_matrix(self, k=None):
        """``(layers, strategies, matrix)`` of the mean CKA per layer and strategy (see :func:`cka_matrix`)."""
        return cka_matrix(self, k)

    def flagged(self) -> list[dict]:
        """The cells flagged as negative transfer."""
        return [c for c in self.cells if c["negative_transfer"]]

    def to_dict(self) -> dict:
        """Everything, as JSON-ready Python values."""
        return dict(config=self.config, seconds=self.seconds, pretrain=self.pretrain,
                    cells=self.cells, runs=self.runs, swaps=self.swaps)

    @classmethod
    def from_dict(cls, d: dict) -> "Results":
        """Rebuild from :meth:`to_dict` (or a parsed ``results.json``)."""
        return cls(config=d["config"], runs=d.get("runs", []), cells=d.get("cells", []),
                   pretrain=d.get("pretrain", {}), seconds=d.get("seconds", 0.0), swaps=d.get("swaps", []))

    @classmethod
    def load(cls, path) -> "Results":
        """Read a ``results.json`` (or the directory holding one)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "results.json")
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def write(self, out_dir, plots: bool = True, quiet: bool = False) -> list[str]:
        """Write the json, csv and md files (and the PNG plots if asked); return their paths.

        Plots need matplotlib; without it one line says how to get it and the
        rest is written all the same.
        """
        os.makedirs(out_dir, exist_ok=True)
        paths = {name: os.path.join(out_dir, name)
                 for name in ("results.json", "results.csv", "runs.csv", "results.md")}
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False, default=_num)
        _write_text(paths["results.json"], text + "\n")
        _write_csv(paths["results.csv"], _CELL_COLUMNS, [_cell_row(c) for c in self.cells])
        _write_csv(paths["runs.csv"], _RUN_COLUMNS, self.runs)
        _write_text(paths["results.md"], self.table() + "\n")
        similarity = cka_markdown(self)
        if similarity:
            paths["cka.md"] = os.path.join(out_dir, "cka.md")
            _write_text(paths["cka.md"], similarity + "\n")
        written = list(paths.values())
        if plots:
            from . import plots as plotting

            written += plotting.write_plots(self, out_dir, quiet=quiet)
        return written
