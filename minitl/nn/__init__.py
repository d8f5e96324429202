"""Neural-network building blocks."""
from . import functional, init
from .layers import (AvgPool2d, Conv2d, Dropout, Flatten, Identity, Linear, MaxPool2d, ReLU, Sequential,
                     Sigmoid, Tanh)
from .module import LoadReport, Module
from .conv_bn_fold import conv_bn_act, fold_conv_bn
from .activations import *  # noqa: F401,F403  (LeakyReLU, GELU, ... : activations.__all__)
from .losses import *  # noqa: F401,F403  (CrossEntropyLoss, ... : losses.__all__)
from . import activations as _activations, losses as _losses
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d
from .parameter import Parameter

__all__ = [
    "functional", "init", "Module", "Parameter", "LoadReport", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d",
    "ReLU", "Tanh", "Sigmoid", "Flatten", "Dropout", "Identity", "Sequential",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
    "conv_bn_act", "fold_conv_bn",
]
__all__ += _activations.__all__ + _losses.__all__
