"""Loss modules with PyTorch's names and constructor arguments: ``nn.CrossEntropyLoss()(logits, y)``.
Each calls its function in ``nn.functional``; class weights are kept as given (not parameters)."""
from __future__ import annotations

from . import functional as F
from .args import bind
from .module import Module


class _Loss(Module):
    fn = None

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, input, target):
        return type(self).fn(input, target, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.kwargs.items() if k not in ("weight", "pos_weight"))


def _loss(name, fn, doc, **defaults):
    def __init__(self, *args, **kwargs):
        _Loss.__init__(self, **bind(name, defaults, args, kwargs))

    return type(name, (_Loss,), {"fn": staticmethod(fn), "__init__": __init__, "__doc__": doc})


CrossEntropyLoss = _loss("CrossEntropyLoss", F.cross_entropy, "Softmax cross-entropy (see F.cross_entropy).",
                         weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0)
NLLLoss = _loss("NLLLoss", F.nll_loss, "Negative log-likelihood of log-probabilities.", reduction="mean")
MSELoss = _loss("MSELoss", F.mse_loss, "Mean squared error.", reduction="mean")
L1Loss = _loss("L1Loss", F.l1_loss, "Mean absolute error.", reduction="mean")
SmoothL1Loss = _loss("SmoothL1Loss", F.smooth_l1_loss, "Smooth L1 (quadratic below beta).", reduction="mean",
                     beta=1.0)
HuberLoss = _loss("HuberLoss", F.huber_loss, "Huber loss (quadratic up to delta).", reduction="mean", delta=1.0)
BCELoss = _loss("BCELoss", F.binary_cross_entropy, "Binary cross-entropy of probabilities.", weight=None,
                reduction="mean")
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits,
                          "Binary cross-entropy of logits (stable).", weight=None, reduction="mean", pos_weight=None)
KLDivLoss = _loss("KLDivLoss", F.kl_div, "KL divergence of log-probabilities from a target.", reduction="mean",
                  log_target=False)


class CosineSimilarity(Module):
    """cosine_similarity(x1, x2) along ``dim``."""

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "CosineSimilarity"]
