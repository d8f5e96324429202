"""The L2-SP penalty: fine-tuning pulled toward the pretrained weights instead of toward zero."""
from __future__ import annotations

from ..core import backend
from ..core.tensor import Tensor


class L2SP:
    """The L2-SP penalty of Li, Grandvalet and Davoine (2018):
    ``alpha/2 * sum |w - w0|^2`` over the transferred parameters (``w0`` their
    pretrained values) plus ``beta/2 * sum |w|^2`` over the new ones (the head).

    Called as ``penalty(model)`` by ``fit``; it is bound to the parameters it
    was built for, so the argument is ignored (the cached-features path passes
    only the head).
    """

    def __init__(self, model, alpha: float, beta: float, anchored, free):
        params = dict(model.named_parameters())
        self.alpha, self.beta = float(alpha), float(beta)
        self.anchors = [(params[n], Tensor._make(params[n].data.copy())) for n in anchored]
        self.free = [params[n] for n in free]

    def __call__(self, model=None) -> Tensor:
        total = None
        for coef, terms in ((self.alpha, [p - w0 for p, w0 in self.anchors]), (self.beta, list(self.free))):
            if coef == 0 or not terms:
                continue
            sq = None
            for d in terms:
                s = (d * d).sum()
                sq = s if sq is None else sq + s
            part = sq * (coef / 2)
            total = part if total is None else total + part
        if total is None:
            ref = (self.anchors[0][0] if self.anchors else self.free[0]).data
            total = Tensor._make(backend.get_array_module(ref).zeros((), dtype=ref.dtype))
        return total
