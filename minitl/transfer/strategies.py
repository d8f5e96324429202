"""Transfer strategies by name: the spec grammar, its parser, and what each name means.

A spec is ``name[:argument]...`` where an argument is ``key=value`` (several
may share one argument, comma-separated) or, for ``layers``, a positional
value::

    scratch   features   finetune   finetune:lr_mult=0.1   gradual:every=50,lr_mult=0.3
    l2sp:alpha=0.01,beta=0.01   structure   layers:2:frozen   layers:2:finetune:lr_mult=0.1
    finetune:bn=frozen   features:train_bn=1   features:head=mlp1024d0.5,opt=adam

Every strategy takes ``head=`` (``linear``, the default; ``mlpN``: Linear(F, N)
-> ReLU -> Linear(N, classes); ``mlpNdP``: with Dropout(P) after the ReLU)
and ``opt=`` (``sgd``, ``adam``, ``adamw``; default: the caller's optimizer).

``parse_strategy`` turns one into a :class:`Strategy` with every option
filled in; ``Strategy.name`` is the canonical spec (defaults left out), so
``parse_strategy(s.name) == s``. What a strategy does to a model is in
:func:`minitl.transfer.prepare`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

SCRATCH = "scratch"  # the baseline every other strategy is paired with

# name -> one-line description (``minitl transfer --list`` prints these)
STRATEGIES = {
    "scratch": "random initialisation, every layer trains (the baseline)",
    "structure": "the pretrained architecture re-initialised: only the structure transfers",
    "features": "pretrained backbone frozen, a new head trains (features cached when there is no augmentation)",
    "finetune": "pretrained initialisation, every layer trains; lr_mult=x scales the backbone's learning rate",
    "gradual": "fine-tuning with gradual unfreezing: the head first, one more layer group every `every` steps",
    "l2sp": "fine-tuning with the L2-SP penalty alpha/2*|w-w0|^2 on the backbone + beta/2*|head|^2",
    "layers": "copy the first n layers, re-initialise the rest; layers:n:frozen (AnB) or layers:n:finetune (AnB+)",
}

# name -> {option: default}; None marks a required option.
_OPTIONS = {
    "scratch": {},
    "structure": {},
    "features": {},
    "finetune": {"lr_mult": 1.0, "bn": "train"},
    "gradual": {"every": 50, "lr_mult": 1.0, "train_bn": 0},
    "l2sp": {"alpha": 0.01, "beta": 0.01, "lr_mult": 1.0},
    "layers": {"n": None, "mode": None, "lr_mult": 1.0, "train_bn": 0},
}
_OPTIONS["features"] = {"train_bn": 0}
# Options every strategy takes: the head to put on the model and the optimizer.
COMMON = {"head": "linear", "opt": "default"}
for _opts in _OPTIONS.values():
    _opts.update(COMMON)
_BN_MODES = ("train", "frozen")
_OPTIMIZERS = ("default", "sgd", "adam", "adamw")
_POSITIONAL = {"layers": ("n", "mode")}
_MODES = ("frozen", "finetune")
# Strategies that need pretrained weights (all but scratch).
NEEDS_PRETRAINED = frozenset(STRATEGIES) - {"scratch"}


@dataclass
class Strategy:
    """A parsed strategy: ``kind`` (the base name) and every option, defaults included."""

    kind: str
    options: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The canonical spec, e.g. ``'finetune:lr_mult=0.1'`` or ``'layers:2:frozen'``: a display name."""
        defaults = _OPTIONS[self.kind]
        positional = _POSITIONAL.get(self.kind, ())
        parts = [self.kind] + [_format(self.options[k]) for k in positional]
        named = [f"{k}={_format(v)}" for k, v in self.options.items()
                 if k not in positional and v != defaults.get(k)]
        if named:
            parts.append(",".join(named))
        return ":".join(parts)

    @property
    def freezes(self) -> bool:
        """Whether this strategy claims to keep some layers frozen (the audit checks it)."""
        return self.kind in ("features", "gradual") or (self.kind == "layers" and self.options["mode"] == "frozen")

    @property
    def uses_pretrained(self) -> bool:
        """Whether weights are copied from the pretrained model (``structure`` only checks the shapes)."""
        return self.kind not in ("scratch", "structure")

    @property
    def bn_frozen(self) -> bool:
        """``finetune:bn=frozen``: every BatchNorm keeps its running statistics (eval-locked)."""
        return self.options.get("bn") == "frozen"

    def __getitem__(self, key):
        return self.options[key]

    def __str__(self) -> str:
        return self.name


def _format(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def _convert(kind: str, key: str, text: str):
    """The typed value of option ``key``, with a message naming the spec's problem."""
    try:
        if key in ("n", "every"):
            v = int(text)
            if v < 1:
                raise ValueError
            return v
        if key == "mode":
            if text not in _MODES:
                raise ValueError
            return text
        if key == "bn":
            if text not in _BN_MODES:
                raise ValueError
            return text
        if key == "opt":
            if text not in _OPTIMIZERS:
                raise ValueError
            return text
        if key == "train_bn":
            if text not in ("0", "1"):
                raise ValueError
            return int(text)
        if key == "head":
            head_spec(text)
            return text
        v = float(text)
        if v < 0 or v != v:
            raise ValueError
        return v
    except ValueError:
        want = {"n": "an integer >= 1", "every": "an integer >= 1", "mode": " or ".join(_MODES),
                "bn": " or ".join(_BN_MODES), "opt": ", ".join(_OPTIMIZERS), "train_bn": "0 or 1",
                "head": "linear, mlpN or mlpNdP (e.g. mlp256, mlp1024d0.5)"}.get(key, "a number >= 0")
        raise ValueError(f"strategy {kind!r}: {key}={text!r} is not valid; {key} must be {want}") from None


def head_spec(text: str):
    """``'linear'`` -> None; ``'mlp256'`` -> (256, 0.0); ``'mlp1024d0.5'`` -> (1024, 0.5)."""
    if text == "linear":
        return None
    m = re.fullmatch(r"mlp([1-9][0-9]*)(?:d(0?\.[0-9]+|0))?", text)
    if m is None:
        raise ValueError(text)
    return int(m.group(1)), float(m.group(2) or 0.0)


def parse_strategy(spec) -> Strategy:
    """Parse ``'finetune:lr_mult=0.1'``-style specs (a :class:`Strategy` is returned as is).

    Unknown names and options, bad values and missing required arguments
    raise ``ValueError`` saying what is allowed.
    """
    if isinstance(spec, Strategy):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a strategy spec is a non-empty string such as 'finetune', got {spec!r}")
    kind, *args = [a.strip() for a in spec.strip().split(":")]
    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy {kind!r}; choose from {', '.join(STRATEGIES)}")
    allowed = _OPTIONS[kind]
    options = dict(allowed)
    positional = list(_POSITIONAL.get(kind, ()))
    given = set()
    for arg in args:
        if not arg:
            raise ValueError(f"strategy spec {spec!r} has an empty argument")
        for item in (arg.split(",") if "=" in arg else [arg]):
            key, eq, text = item.partition("=")
            key, text = key.strip(), text.strip()
            if not eq:  # a positional value
                free = [p for p in positional if p not in given]
                if not free:
                    raise ValueError(f"strategy {kind!r} takes no positional argument {item!r}; "
                                     f"use key=value with keys {', '.join(allowed) or '(none)'}")
                key, text = free[0], item.strip()
            if key not in allowed:
                raise ValueError(f"strategy {kind!r} has no option {key!r}; "
                                 f"options: {', '.join(allowed) or '(none)'}")
            if key in given:
                raise ValueError(f"strategy spec {spec!r} sets {key!r} twice")
            options[key] = _convert(kind, key, text)
            given.add(key)
    missing = [k for k, v in options.items() if v is None]
    if missing:
        raise ValueError(f"strategy {kind!r} needs {', '.join(missing)}: "
                         "e.g. 'layers:2:frozen' or 'layers:2:finetune'")
    if kind == "layers" and options["mode"] == "frozen" and options["lr_mult"] != 1.0:
        raise ValueError("layers:n:frozen keeps the copied layers frozen, so lr_mult would have no effect; "
                         "use layers:n:finetune:lr_mult=...")
    return Strategy(kind, options)


def parse_strategy_list(text: str) -> list[str]:
    """Split a comma-separated list of specs (the CLI's ``--strategies``) into specs.

    A spec's options are comma-separated too (``gradual:every=50,lr_mult=0.3``),
    so a fragment holding ``=`` but no ``:`` is glued back to the spec before it.
    Each spec is checked with :func:`parse_strategy` (a bad one raises ``ValueError``).
    """
    merged: list[str] = []
    for part in (s.strip() for s in str(text).split(",")):
        if not part:
            continue
        if merged and "=" in part and ":" not in part:
            merged[-1] += "," + part
        else:
            merged.append(part)
    if not merged:
        raise ValueError(f"no strategy in {text!r}; e.g. 'scratch,features,finetune'")
    for spec in merged:
        parse_strategy(spec)
    return merged
