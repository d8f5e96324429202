"""ResNet-18/34/50 with torchvision's module names, so ``state_dict`` keys and
shapes are exactly torchvision's at the default arguments (a torchvision
checkpoint converted to .safetensors loads with ``strict=True``).

``width`` scales every stage (64 is torchvision's; 16 trains in minutes on two
cores); ``small_input=True`` is the CIFAR stem (3x3 conv, stride 1, no
max-pool) under the same keys. ``forward_features`` returns the pooled
``(N, 8 * width * expansion)`` vector the head reads.

Every conv -> BatchNorm (-> ReLU) runs through ``nn.conv_bn_fold.conv_bn_act``:
in eval mode without gradients (inference, a frozen backbone) the BatchNorm is
folded into the conv's weights and the ReLU into its kernel; in training the
layers run one by one, unchanged.
"""
from __future__ import annotations

from .. import nn
from ..nn import functional as F
from ..nn.conv_bn_fold import conv_bn_act
from ..nn.init import kaiming_normal_fan_out
from .classifier import Classifier


def _conv(cin, cout, k, stride=1):
    """A bias-free k x k conv with padding k // 2, torchvision's init."""
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
    conv.weight.data[...] = kaiming_normal_fan_out(conv.weight.shape)
    return conv


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = _conv(inplanes, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample  # a Module, or None (then no keys, as in torchvision)

    def forward(self, x):
        out = conv_bn_act(self.conv1, self.bn1, x, "relu")
        out = conv_bn_act(self.conv2, self.bn2, out)
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, torchvision's v1.5), 1x1 expand x4 (ResNet-50)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = _conv(inplanes, planes, 1), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = _conv(planes, planes * 4, 1), nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample  # a Module, or None (then no keys, as in torchvision)

    def forward(self, x):
        out = conv_bn_act(self.conv1, self.bn1, x, "relu")
        out = conv_bn_act(self.conv2, self.bn2, out, "relu")
        out = conv_bn_act(self.conv3, self.bn3, out)
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet(Classifier):
    """torchvision's ResNet: stem, four stages of blocks, global average pool, fc."""

    def __init__(self, block, layers, num_classes: int = 1000, in_chans: int = 3, width: int = 64,
                 small_input: bool = False):
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"ResNet width must be a positive int, got {width!r}")
        self.num_classes, self.in_chans, self.width, self.small_input = num_classes, in_chans, width, small_input
        if small_input:  # CIFAR stem: keep 32x32 resolution into layer1
            self.conv1 = _conv(in_chans, width, 3)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False)
            self.conv1.weight.data[...] = kaiming_normal_fan_out(self.conv1.weight.shape)
            self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.bn1, self.relu = nn.BatchNorm2d(width), nn.ReLU()
        inplanes = width
        for i, blocks in enumerate(layers):
            planes, stride = width * 2 ** i, 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(_conv(inplanes, planes * block.expansion, 1, stride),
                                           nn.BatchNorm2d(planes * block.expansion))
            stage = [block(inplanes, planes, stride, downsample)]
            inplanes = planes * block.expansion
            stage += [block(inplanes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self._num_features = inplanes
        self.fc = nn.Linear(inplanes, num_classes)

    @property
    def head(self):
        return self.fc

    @property
    def num_features(self) -> int:
        """Width of the pooled representation: 8 * width * expansion."""
        return self._num_features

    def forward_features(self, x):
        """The pooled (N, num_features) representation the head reads."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"ResNet expects input (N, {self.in_chans}, H, W), got shape {x.shape}")
        x = self.maxpool(conv_bn_act(self.conv1, self.bn1, x, "relu"))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def reset_classifier(self, num_classes: int):
        """A fresh Linear(num_features, num_classes) as ``fc``."""
        self.fc = nn.Linear(self._num_features, num_classes)
        self.num_classes = num_classes
        return self

    def replace_head(self, module: nn.Module):
        """Put ``module`` (e.g. the seeds' Linear -> ReLU -> Linear) in place of ``fc``."""
        if not isinstance(module, nn.Module):
            raise ValueError(f"replace_head needs an nn.Module, got {type(module).__name__}")
        self.fc = module
        last = [m for m in module.modules() if isinstance(m, nn.Linear)]
        if last:
            self.num_classes = last[-1].out_features
        return self


def resnet18(num_classes: int = 1000, in_chans: int = 3, width: int = 64, small_input: bool = False) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2]."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_chans, width, small_input)


def resnet34(num_classes: int = 1000, in_chans: int = 3, width: int = 64, small_input: bool = False) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3]."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_chans, width, small_input)


def resnet50(num_classes: int = 1000, in_chans: int = 3, width: int = 64, small_input: bool = False) -> ResNet:
    """ResNet-50: bottlenecks [3, 4, 6, 3], 2048 features at width 64."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_chans, width, small_input)
