"""A Linear/ReLU stack with PyTorch's state_dict keys (``layers.*``)."""
from __future__ import annotations

from .. import nn
from .classifier import Classifier


class MLP(Classifier):
    """Linear/ReLU stack over flattened inputs: in -> hidden... -> classes."""

    def __init__(self, in_features: int = 784, hidden=(256, 128), num_classes: int = 10):
        super().__init__()
        self.in_features, self.num_classes = in_features, num_classes
        layers, width = [], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    @property
    def body(self):
        return self.layers

    @property
    def head(self):
        return self.layers[len(self.layers) - 1]

    def forward_features(self, x):
        """The last hidden representation (input flattened from dim 1)."""
        x = x.flatten(1) if x.ndim > 2 else x
        if x.shape[-1] != self.in_features:
            raise ValueError(f"MLP expects {self.in_features} input features, got input of shape {x.shape}")
        return self.layers[: len(self.layers) - 1](x)
