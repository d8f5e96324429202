"""Experiments: the scratch-vs-transfer grid, its report, statistics and plots."""
from . import plots, stats
from .grid import Grid, Source, pretrain, run, run_one
from .report import Results, markdown_table, summarize

__all__ = ["Grid", "Source", "run", "run_one", "pretrain", "Results", "summarize", "markdown_table", "stats",
           "plots"]
