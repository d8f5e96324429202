"""Models with PyTorch's state_dict keys and the timm-style transfer API."""
from .classifier import Classifier
from .lenet import LeNet
from .mlp import MLP
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from .specs import build_model, check_model_spec, model_name, spec_from_state

__all__ = ["Classifier", "LeNet", "MLP", "ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50",
           "build_model", "check_model_spec", "model_name", "spec_from_state"]
