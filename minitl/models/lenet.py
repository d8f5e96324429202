"""LeNet-5 with PyTorch's state_dict keys (``features.*``, ``classifier.*``)."""
from __future__ import annotations

from .. import nn
from .classifier import Classifier


class LeNet(Classifier):
    """LeNet-5: two conv/pool stages, then 400 -> 120 -> 84 -> classes.

    With ``input_size=28`` the first conv pads by 2 so 28x28 images give the
    classic 5x5x16 = 400 features; use ``input_size=32`` for unpadded 32x32.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28):
        super().__init__()
        if input_size not in (28, 32):
            raise ValueError(f"LeNet supports input_size 28 or 32, got {input_size}")
        self.in_channels, self.num_classes, self.input_size = in_channels, num_classes, input_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
        )

    @property
    def body(self):
        return self.classifier

    @property
    def head(self):
        return self.classifier[4]

    def forward_features(self, x):
        """The 84-wide representation the head reads."""
        s = self.input_size
        if x.ndim != 4 or x.shape[1:] != (self.in_channels, s, s):
            raise ValueError(f"LeNet expects input (N, {self.in_channels}, {s}, {s}), got shape {x.shape}")
        x = self.features(x).flatten(1)
        return self.classifier[:4](x)
