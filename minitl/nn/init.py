"""Weight initialisation, PyTorch's defaults, drawn from minitl's seeded generator."""
import math

import numpy as np

from ..core import random as _random


def fan_in(shape) -> int:
    """Inputs feeding one output unit: in_features, or C*kh*kw for a conv."""
    return int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])


def kaiming_uniform(shape, a: float = math.sqrt(5), dtype=np.float32) -> np.ndarray:
    """U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)).

    With PyTorch's default a = sqrt(5) this is b = 1/sqrt(fan_in).
    """
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in(shape))
    return _random.generator().uniform(-bound, bound, size=shape).astype(dtype)


def bias_uniform(n: int, weight_shape, dtype=np.float32) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's bias default."""
    bound = 1.0 / math.sqrt(fan_in(weight_shape))
    return _random.generator().uniform(-bound, bound, size=(n,)).astype(dtype)


def kaiming_normal_fan_out(shape, dtype=np.float32) -> np.ndarray:
    """N(0, 2 / fan_out), fan_out = out_channels * kh * kw: torchvision's ResNet conv init
    (``kaiming_normal_(mode='fan_out', nonlinearity='relu')``)."""
    fan_out = int(shape[0] * np.prod(shape[2:])) if len(shape) > 2 else int(shape[0])
    draw = _random.generator().standard_normal(size=shape, dtype=np.float32)  # float32: 25M draws stay fast
    return (draw * np.float32(math.sqrt(2.0 / fan_out))).astype(dtype, copy=False)
