"""PNG plots of an experiment's results, through matplotlib (the optional ``plot`` extra).

- ``accuracy_vs_k.png``: mean test accuracy against k, one line per strategy,
  its confidence interval as a band; one panel per (source, target).
- ``learning_curves.png``: accuracy on the curve subset of the target test set
  against the step, mean over seeds, one panel per k.
- ``weight_drift.png``: per-layer relative drift ||W - W0|| / ||W0|| after
  training (weight and bias together; W0: the weights training started from),
  mean over seeds, at the largest k; a frozen layer shows as zero.
- ``cka.png``: per-layer linear CKA between the pretrained and the trained
  model on the probe set, a layer x strategy heat-map, mean over seeds at the
  largest k (1: the layer computes what it computed before training).

matplotlib is imported only here and only when plotting, with the ``Agg``
backend (files, no display), so minitl never needs it to train.
"""
from __future__ import annotations

import os
import sys

import numpy as np

INSTALL_HINT = 'plots skipped: matplotlib is not installed (pip install "minitl[plot]")'


def matplotlib_available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display and in CI
    import matplotlib.pyplot as plt

    return plt


def write_plots(results, out_dir, quiet: bool = False) -> list[str]:
    """Write the PNGs for ``results`` into ``out_dir``; return their paths.

    Without matplotlib, print one line saying how to get it and return [].
    """
    if not matplotlib_available():
        print(INSTALL_HINT, file=sys.stderr if quiet else sys.stdout)
        return []
    plt = _pyplot()
    paths = []
    for name, draw in (("accuracy_vs_k.png", plot_accuracy_vs_k),
                       ("learning_curves.png", plot_learning_curves),
                       ("weight_drift.png", plot_weight_drift),
                       ("cka.png", plot_cka)):
        fig = draw(results, plt)
        if fig is None:
            continue
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def _pairs(results) -> list[tuple]:
    """The (source, target) pairs with at least one transfer strategy, in order."""
    pairs = dict.fromkeys((c["source"], c["target"]) for c in results.cells if c["source"] is not None)
    if not pairs:  # scratch only
        pairs = dict.fromkeys((None, c["target"]) for c in results.cells)
    return list(pairs)


def _cells_for(results, source, target, strategy):
    """Cells of one strategy on a (source, target) pair, sorted by k; scratch ignores the source."""
    want = None if strategy == "scratch" else source
    return sorted((c for c in results.cells if c["strategy"] == strategy and c["target"] == target
                   and c["source"] == want), key=lambda c: c["k"])


def _strategies(results) -> list[str]:
    return list(dict.fromkeys(c["strategy"] for c in results.cells))


def plot_accuracy_vs_k(results, plt):
    """Accuracy vs k per strategy, with interval bands; one panel per (source, target)."""
    pairs = _pairs(results)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 4), squeeze=False)
    level = f"{100 * results.confidence:g}%"
    for ax, (source, target) in zip(axes[0], pairs):
        for strategy in _strategies(results):
            cells = _cells_for(results, source, target, strategy)
            if not cells:
                continue
            k = [c["k"] for c in cells]
            mean = np.array([c["mean"] for c in cells])
            line, = ax.plot(k, 100 * mean, marker="o", label=strategy)
            lo = np.array([np.nan if c["lo"] is None else c["lo"] for c in cells])
            hi = np.array([np.nan if c["hi"] is None else c["hi"] for c in cells])
            if np.isfinite(lo).any():  # clipped for display: a t interval can pass 0% or 100%
                ax.fill_between(k, np.clip(100 * lo, 0, 100), np.clip(100 * hi, 0, 100),
                                color=line.get_color(), alpha=0.15, linewidth=0)
            for c in cells:
                if c["negative_transfer"]:
                    ax.plot(c["k"], 100 * c["mean"], "x", color="red", markersize=12, markeredgewidth=2)
        ax.set_xscale("log")
        ax.minorticks_off()  # label only the k values run
        ks = sorted({c["k"] for c in results.cells})
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
        ax.set_xlabel("k (training examples per class)")
        ax.set_ylabel("test accuracy %")
        ax.set_title(f"{source or 'scratch'} → {target}" if source else target, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title=f"band: {level} CI; x: negative transfer", title_fontsize=7)
    fig.tight_layout()
    return fig


def _mean_curve(runs):
    """Steps and the mean eval-accuracy curve over runs (runs share the eval steps)."""
    curves = [r["curve"] for r in runs if r.get("curve") and r["curve"].get("eval_acc")]
    if not curves:
        return None, None
    n = min(len(c["eval_acc"]) for c in curves)
    steps = curves[0]["eval_step"][:n]
    return steps, np.mean([c["eval_acc"][:n] for c in curves], axis=0)


def plot_learning_curves(results, plt):
    """Curve-subset accuracy against the step, mean over seeds; one panel per k."""
    ks = sorted({r["k"] for r in results.runs})
    if not ks or not any(r.get("curve", {}).get("eval_acc") for r in results.runs):
        return None
    source, target = _pairs(results)[0]
    fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.6), squeeze=False, sharey=True)
    for ax, k in zip(axes[0], ks):
        for strategy in _strategies(results):
            want = None if strategy == "scratch" else source
            runs = [r for r in results.runs if r["k"] == k and r["strategy"] == strategy
                    and r["target"] == target and r["source"] == want]
            steps, acc = _mean_curve(runs)
            if steps is not None:
                ax.plot(steps, 100 * acc, label=strategy)
        ax.set_title(f"k = {k}", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy % (curve subset)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"learning curves on {target}, mean over seeds", fontsize=10)
    fig.tight_layout()
    return fig


def plot_weight_drift(results, plt):
    """Per-layer ||W - W0|| / ||W0|| at the largest k, mean over seeds, one bar group per layer."""
    runs = [r for r in results.runs if r.get("drift")]
    if not runs:
        return None
    k = max(r["k"] for r in runs)
    source, target = _pairs(results)[0]
    strategies = _strategies(results)
    layers = list(runs[0]["drift"])
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(layers) * max(1, len(strategies)) / 2), 4))
    width = 0.8 / max(1, len(strategies))
    x = np.arange(len(layers))
    for i, strategy in enumerate(strategies):
        want = None if strategy == "scratch" else source
        chosen = [r for r in runs if r["k"] == k and r["strategy"] == strategy
                  and r["target"] == target and r["source"] == want]
        if not chosen:
            continue
        values = [np.mean([r["drift"].get(name, np.nan) for r in chosen]) for name in layers]
        ax.bar(x + (i - (len(strategies) - 1) / 2) * width, values, width, label=strategy)
    ax.set_xticks(x)
    ax.set_xticklabels(layers, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("||W - W0|| / ||W0||")
    ax.set_title(f"per-layer weight drift on {target}, k = {k} (0 = frozen)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_cka(results, plt):
    """Layer x strategy heat-map of the mean CKA (pretrained vs trained) at the largest k."""
    found = results.cka_matrix()  # a Results method: plots never imports report (report imports plots)
    if found is None:
        return None
    layers, strategies, matrix = found
    k = max(r["k"] for r in results.runs if r.get("cka"))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(strategies), 1.2 + 0.45 * len(layers)))
    image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(len(layers)):
        for j in range(len(strategies)):
            v = matrix[i, j]
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if not np.isnan(v) and v < 0.6 else "black")
    ax.set_xticks(range(len(strategies)))
    ax.set_xticklabels(strategies, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels(layers, fontsize=8)
    ax.set_title(f"linear CKA, pretrained vs trained, k = {k}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig


def write_meta_plot(results, out_dir, quiet: bool = False) -> list[str]:
    """``meta.png`` for a :class:`~minitl.experiments.meta.MetaResults`; [] (and one line) without matplotlib."""
    if not matplotlib_available():
        print(INSTALL_HINT, file=sys.stderr if quiet else sys.stdout)
        return []
    plt = _pyplot()
    fig = plot_meta(results, plt)
    path = os.path.join(out_dir, "meta.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [path]


def plot_meta(results, plt):
    """Left: query accuracy per start point (mean, CI bar, one dot per task); right: paired differences."""
    summary, diffs = results.summary(), results.differences()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False)
    ax = axes[0][0]
    methods = list(summary)
    for i, m in enumerate(methods):
        s = summary[m]
        values = 100 * np.asarray(results.acc[m])
        ax.scatter(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values, s=8, alpha=0.4)
        err = None if not np.isfinite(s.lo) else [[100 * (s.mean - s.lo)], [100 * (s.hi - s.mean)]]
        ax.errorbar([i], [100 * s.mean], yerr=err, fmt="o", color="black", capsize=5)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods)
    ax.set_ylabel("query accuracy %")
    level = f"{100 * results.confidence:g}%"
    ax.set_title(f"held-out tasks ({level} CI)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax = axes[0][1]
    names = [f"{a} − {b}" for a, b in diffs]
    for i, d in enumerate(diffs.values()):
        err = None if not np.isfinite(d.lo) else [[100 * (d.mean - d.lo)], [100 * (d.hi - d.mean)]]
        ax.errorbar([100 * d.mean], [i], xerr=err, fmt="o", color="black", capsize=5)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("paired difference, points")
    ax.set_title("paired by task", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig
