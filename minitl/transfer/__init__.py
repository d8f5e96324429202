"""Transfer learning: strategies, layer groups and freezing, ``prepare``, the frozen-feature
cache, weight drift, CKA and the freeze audit.

    setup = prepare("finetune:lr_mult=0.1", LeNet(), load("source.safetensors"), num_classes=5, lr=0.01)
    history = setup.fit(train_loader, steps=300, eval_loader=test_loader)
    report = setup.audit()
"""
from .cka import cka, format_cka, layer_activations, linear_cka
from .drift import AuditReport, audit, layer_drift, snapshot, weight_drift
from .features import FeatureCache, backbone_is_deterministic, cache_features, feature_loader, why_not_cacheable
from .groups import freeze_plan, freeze_to, head_names, layer_groups
from .l2sp import L2SP
from .prepare import Setup, prepare
from .strategies import NEEDS_PRETRAINED, SCRATCH, STRATEGIES, Strategy, parse_strategy, parse_strategy_list
from .unfreeze import GradualUnfreeze

__all__ = [
    "STRATEGIES", "SCRATCH", "NEEDS_PRETRAINED", "Strategy", "parse_strategy", "parse_strategy_list", "prepare",
    "Setup", "layer_groups", "head_names", "freeze_to", "freeze_plan", "GradualUnfreeze", "L2SP",
    "FeatureCache", "cache_features", "feature_loader", "why_not_cacheable", "backbone_is_deterministic",
    "weight_drift", "layer_drift", "audit", "AuditReport", "snapshot",
    "cka", "linear_cka", "layer_activations", "format_cka",
]
