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
        self.body[len(self.body) - 1] = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        self.num_classes = num_classes
        return self
