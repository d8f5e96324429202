"""Optimizers with PyTorch's update rules and parameter groups, and learning-rate schedules."""
from .optimizers import SGD, Adam, AdamW, Optimizer
from .schedules import CosineAnnealingLR, LinearWarmup, LRScheduler, OneCycleLR, StepLR

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR", "LinearWarmup",
           "OneCycleLR"]
