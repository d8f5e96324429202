"""Experiments: the scratch-vs-transfer grid, its report, statistics and plots, and meta-learning runs."""
from . import meta, plots, stats
from .grid import Grid, Source, pretrain, run, run_one
from .meta import MetaConfig, MetaResults, run_meta
from .report import Results, cka_markdown, markdown_table, summarize

__all__ = ["Grid", "Source", "run", "run_one", "pretrain", "Results", "summarize", "markdown_table", "stats",
           "plots", "meta", "MetaConfig", "MetaResults", "run_meta", "cka_markdown"]
