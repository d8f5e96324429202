"""What a meta-learning comparison produced: per-method query accuracies on the held-out tasks,
their intervals, the paired differences, and the files (``meta.json``, ``meta.md``, ``meta.png``)."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

from ..io import atomic_write
from . import stats


def _pct(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def _signed(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}"


@dataclass
class MetaResults:
    """Per-method query accuracies on the held-out tasks (index t: task t), and how each start was made."""

    config: dict
    source: str
    target: str
    acc: dict
    tasks: list = field(default_factory=list)
    training: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def confidence(self) -> float:
        """The confidence level of the intervals."""
        return float(self.config.get("confidence", 0.95))

    def summary(self) -> dict:
        """``{method: MeanCI}`` of the query accuracy over tasks."""
        return {m: stats.mean_ci(v, self.confidence) for m, v in self.acc.items()}

    def differences(self) -> dict:
        """``{(a, b): PairedDifference}``: each meta-learner and pretrain against scratch, meta-learners
        against pretrain; paired by task."""
        pairs = [(a, "scratch") for a in self.acc if a != "scratch" and "scratch" in self.acc]
        pairs += [(a, "pretrain") for a in ("reptile", "fomaml") if a in self.acc and "pretrain" in self.acc]
        return {(a, b): stats.paired_difference(self.acc[a], self.acc[b], self.confidence) for a, b in pairs}

    def table(self) -> str:
        """Markdown: accuracy per method, then the paired differences."""
        level = f"{100 * self.confidence:g}%"
        c = self.config
        rows = [f"{len(self.tasks)} held-out {c['ways']}-way {c['shots']}-shot tasks from {self.target} "
                f"(meta-training on {self.source}); every start adapted by {c['adapt_steps']} SGD steps at lr "
                f"{c['lr']:g} on the support, scored on {c['query']} query images per class", "",
                f"| start point | query accuracy % (mean ± std) | {level} CI |", "|---|--:|--:|"]
        for m, s in self.summary().items():
            rows.append(f"| {m} | {_pct(s.mean)} ± {_pct(s.std)} | [{_pct(s.lo)}, {_pct(s.hi)}] |")
        diffs = self.differences()
        if diffs:
            rows += ["", f"| paired by task | Δ points | Δ {level} CI | p |", "|---|--:|--:|--:|"]
            for (a, b), d in diffs.items():
                p = "n/a" if not math.isfinite(d.p_value) else f"{d.p_value:.3g}"
                rows.append(f"| {a} − {b} | {_signed(d.mean)} | [{_signed(d.lo)}, {_signed(d.hi)}] | {p} |")
        return "\n".join(rows)

    def to_dict(self) -> dict:
        """Everything as JSON-ready values."""
        summary = {m: dict(zip(("mean", "std", "lo", "hi"), (None if not math.isfinite(v) else v for v in s)))
                   for m, s in self.summary().items()}
        diffs = [dict(a=a, b=b, mean=d.mean, lo=_finite(d.lo), hi=_finite(d.hi), p=_finite(d.p_value), n=d.n)
                 for (a, b), d in self.differences().items()]
        return dict(config=self.config, source=self.source, target=self.target, seconds=self.seconds,
                    training=self.training, tasks=self.tasks, acc=self.acc, summary=summary, differences=diffs)

    def write(self, out_dir, plots: bool = True, quiet: bool = False) -> list[str]:
        """``meta.json``, ``meta.md`` and (with matplotlib) ``meta.png`` in ``out_dir``; their paths."""
        os.makedirs(out_dir, exist_ok=True)
        paths = [os.path.join(out_dir, "meta.json"), os.path.join(out_dir, "meta.md")]
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        atomic_write(paths[0], lambda f: f.write((text + "\n").encode("utf-8")))
        atomic_write(paths[1], lambda f: f.write((self.table() + "\n").encode("utf-8")))
        if plots:
            from . import plots as plotting

            paths += plotting.write_meta_plot(self, out_dir, quiet=quiet)
        return paths


def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)
