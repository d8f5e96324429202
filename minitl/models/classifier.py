"""The timm-style transfer API every minitl classifier shares: ``forward_features``
(the representation before the head), ``forward_head``, ``head`` and
``reset_classifier(num_classes)``."""
from __future__ import annotations

from .. import nn


class Classifier(nn.Module):
    """Shared transfer API; subclasses define ``forward_features`` and ``head``."""

    def forward(self, x):
        return self.head(self.forward_features(x))

    def forward_head(self, features):
        """Logits from the representation ``forward_features`` returns."""
        return self.head(features)

    def reset_classifier(self, num_classes: int):
        """Replace the last Linear with a freshly initialised one for ``num_classes``."""
        old = self.head
        bias = getattr(old, "bias", True) is not None
        self.body[len(self.body) - 1] = nn.Linear(self.num_features, num_classes, bias=bias)
        self.__dict__.pop("_replaced_head_width", None)
        self.num_classes = num_classes
        return self

    @property
    def num_features(self) -> int:
        """Width of the representation ``forward_features`` returns (the head's input)."""
        width = self.__dict__.get("_replaced_head_width")
        return self.head.in_features if width is None else width

    def replace_head(self, module: nn.Module):
        """Put ``module`` (e.g. Linear -> ReLU -> Linear) in place of the last Linear."""
        if not isinstance(module, nn.Module):
            raise ValueError(f"replace_head needs an nn.Module, got {type(module).__name__}")
        width = self.num_features
        self.body[len(self.body) - 1] = module
        object.__setattr__(self, "_replaced_head_width", width)
        last = [m for m in module.modules() if isinstance(m, nn.Linear)]
        if last:
            self.num_classes = last[-1].out_features
        return self
