"""``History``: the per-step records of a training run (losses, accuracies, evaluations)."""
from __future__ import annotations


class History:
    """Training records, one per optimizer step, in order.

    Each record is a dict with ``step`` (1-based), ``epoch`` (epochs completed
    before this step), ``loss`` (the data loss of the batch, without any
    penalty), ``acc`` (the batch's training accuracy, None when the output is
    not class logits), ``lr`` (first parameter group), ``time`` (seconds since
    training began), ``samples_per_s``, ``penalty`` when one is used, and
    ``eval_loss``/``eval_acc``/``eval_n`` on the steps where the model was
    evaluated.
    """

    def __init__(self, records=None):
        self.records = [dict(r) for r in records or ()]

    def append(self, record: dict) -> None:
        """Add one step's record."""
        self.records.append(dict(record))

    def update_last(self, **values) -> None:
        """Merge ``values`` (e.g. evaluation results) into the latest record."""
        if not self.records:
            self.records.append({"step": 0, "epoch": 0})
        self.records[-1].update(values)

    def last(self, key: str, default=None):
        """The most recent value recorded under ``key`` (``default`` if none)."""
        for r in reversed(self.records):
            if r.get(key) is not None:
                return r[key]
        return default

    def series(self, key: str) -> tuple[list, list]:
        """``(steps, values)`` of every record holding ``key``: a curve to plot."""
        pairs = [(r["step"], r[key]) for r in self.records if r.get(key) is not None]
        return [s for s, _ in pairs], [v for _, v in pairs]

    def to_dict(self) -> dict:
        """``{'records': [...]}`` of plain numbers: JSON-serialisable."""
        return {"records": [dict(r) for r in self.records]}

    @staticmethod
    def check_dict(data) -> None:
        """Raise ``ValueError`` unless ``data`` is what :meth:`to_dict` returns."""
        if not isinstance(data, dict) or not isinstance(data.get("records", []), list):
            raise ValueError("a History must be {'records': [...]} as History.to_dict() returns")
        for i, r in enumerate(data.get("records", [])):
            if not isinstance(r, dict) or not all(isinstance(k, str) for k in r):
                raise ValueError(f"History record {i} is not a dict of named values")
            step = r.get("step")
            if not isinstance(step, int) or isinstance(step, bool):
                raise ValueError(f"History record {i} has step {step!r}, not an integer")

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """Invert :meth:`to_dict` (checked first: :meth:`check_dict`)."""
        cls.check_dict(data)
        return cls(data.get("records", ()))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def __repr__(self) -> str:
        last = self.records[-1] if self.records else {}
        return f"History({len(self)} records, last={last})"
