"""Progress display for ``fit``: a tqdm bar, or plain lines without tqdm."""
from __future__ import annotations

import math
import sys
import time


class Progress:
    """A tqdm bar when asked for (or auto on a terminal); without tqdm, plain lines at
    epoch ends, at most one a second (few-shot runs have one batch per epoch) and the last."""

    LINE_INTERVAL = 1.0

    def __init__(self, progress, total):
        self.bar, self.lines, self.last_line, self.pending = None, False, -math.inf, None
        if progress is None:
            progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
        if not progress:
            return
        try:
            from tqdm.auto import tqdm  # the optional 'progress' extra
        except ImportError:
            self.lines = True
            return
        self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, leave=False)

    def step(self, state, record) -> None:
        """Advance the bar to ``state.step``."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", epoch=state.epoch, refresh=False)
            self.bar.update(state.step - self.bar.n)
        self.pending = state

    def epoch_end(self, state) -> None:
        """Print an epoch line (plain mode), unless one was printed less than a second ago."""
        now = time.perf_counter()
        if self.lines and now - self.last_line >= self.LINE_INTERVAL:
            self._line(state)
            self.last_line = now

    def _line(self, state) -> None:
        if not state.history.records:
            return
        r = state.history.records[-1]
        parts = [f"epoch {state.epoch}", f"step {state.step}", f"loss {r['loss']:.4f}"]
        if r.get("eval_acc") is not None:
            parts.append(f"eval acc {r['eval_acc']:.4f}")
        if r.get("samples_per_s"):
            parts.append(f"{r['samples_per_s']:,.0f} samples/s")
        print("  ".join(parts), file=sys.stderr, flush=True)
        self.pending = None

    def close(self, state=None) -> None:
        """Close the bar; in plain mode print the final state if it was not printed."""
        if self.bar is not None:
            self.bar.close()
        if self.lines and state is not None and self.pending is not None:
            self._line(state)
