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

    def forward(self, x):
        """The logits: the whole stack as one Sequential call, so the hidden layers and
        the head run as one fused chain (the same kernel calls as body then head)."""
        cls = type(self)
        if (cls.forward_features is not MLP.forward_features or cls.head is not MLP.head
                or "forward_features" in self.__dict__
                or type(next(reversed(self.layers._modules.values()), None)) is not nn.Linear):
            return super().forward(x)  # a part was changed: honour it
        # the head is a Linear, so it fuses with nothing before it: same steps as body, head
        return self.layers(self._flat_input(x))

    def forward_features(self, x):
        """The last hidden representation (input flattened from dim 1)."""
        return self._body()(self._flat_input(x))

    def _flat_input(self, x):
        x = x.flatten(1) if x.ndim > 2 else x
        if x.shape[-1] != self.in_features:
            raise ValueError(f"MLP expects {self.in_features} input features, got input of shape {x.shape}")
        return x

    def _body(self):
        """``layers`` without the head, as a Sequential kept across calls (so its fused
        plan is too) and rebuilt when a layer is replaced."""
        layers = tuple(self.layers._modules.values())
        cached = self.__dict__.get("_body_cache")
        if cached is None or cached[0] != layers:
            cached = (layers, self.layers[: len(self.layers) - 1])
            object.__setattr__(self, "_body_cache", cached)
        return cached[1]
