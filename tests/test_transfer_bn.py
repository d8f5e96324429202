"""Transfer with BatchNorm: frozen BatchNorm stays in eval mode and bit-identical,
train_bn, finetune:bn=frozen, the audit over buffers, the feature cache's
determinism rule, and multi-layer heads on a ResNet."""
import numpy as np
import pytest

import minitl
from minitl import transfer
from minitl.data import DataLoader
from minitl.models import resnet18
from minitl.transfer import FeatureCache, audit, layer_groups, prepare, snapshot, why_not_cacheable
from minitl.transfer.batchnorm import batchnorm_modules


def tiny(seed=0, num_classes=3):
    minitl.manual_seed(seed)
    return resnet18(num_classes=num_classes, in_chans=1, width=4, small_input=True)


def source_state():
    """Pretrained-looking weights: a tiny ResNet whose BatchNorm statistics have moved."""
    m = tiny(seed=100, num_classes=5)
    x = minitl.tensor(np.random.default_rng(9).normal(size=(8, 1, 8, 8)).astype(np.float32))
    m(x)
    return snapshot(m)


def data(n=24, seed=1):
    rng = np.random.default_rng(seed)
    return DataLoader((rng.normal(size=(n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)), batch_size=8,
                      shuffle=True, seed=seed)


def bn_state(model):
    return {n: np.array(b.data, copy=True) for n, b in model.named_buffers()}


def test_layer_groups_bn_own_groups_and_head_one_group():
    m = tiny()
    groups = layer_groups(m)
    assert groups[:3] == ["conv1", "bn1", "layer1.0.conv1"] and groups[-1] == "fc"
    m.replace_head(minitl.nn.Sequential(minitl.nn.Linear(32, 8), minitl.nn.ReLU(), minitl.nn.Linear(8, 3)))
    assert layer_groups(m)[-1] == "fc" and "fc.0" not in layer_groups(m)


def test_features_keeps_frozen_batchnorm_in_eval_and_bit_identical():
    state = source_state()
    setup = prepare("features", tiny(), state, num_classes=3, lr=0.1)
    model = setup.model
    # the running statistics came with the pretrained weights
    np.testing.assert_array_equal(model.bn1.running_mean.numpy(), state["bn1.running_mean"])
    model.train()
    assert not any(m.training for _, m in batchnorm_modules(model))
    assert model.fc.training
    before = bn_state(model)
    setup.fit(data(), steps=4, cache=False, progress=False)
    for n, v in bn_state(model).items():
        np.testing.assert_array_equal(v, before[n])
    report = setup.audit()
    assert "bn1.running_mean" in report.frozen_buffers and "bn1.running_mean" not in report.frozen
    assert report.moving_buffers == []
    assert "buffers: " in str(report)


def test_audit_fails_when_a_frozen_batchnorm_statistic_moves_by_one_bit():
    setup = prepare("features", tiny(), source_state(), num_classes=3, lr=0.1)
    setup.fit(data(), steps=2, cache=False, progress=False)
    rm = setup.model.layer2[0].bn1.running_mean.data
    rm[0] = np.nextafter(rm[0], np.float32(np.inf))
    with pytest.raises(RuntimeError, match="frozen BatchNorm statistics moved: layer2.0.bn1.running_mean"):
        setup.audit()


def test_without_the_lock_train_mode_moves_the_statistics():
    # What the lock prevents: a frozen (requires_grad=False) BatchNorm in train mode still drifts.
    m = tiny()
    m.freeze()
    before = bn_state(m)
    m.train()
    m(minitl.tensor(np.random.default_rng(0).normal(size=(4, 1, 8, 8)).astype(np.float32)))
    assert not np.array_equal(bn_state(m)["bn1.running_mean"], before["bn1.running_mean"])


def test_train_bn_keeps_batchnorm_affine_trainable_in_a_frozen_backbone():
    setup = prepare("features:train_bn=1", tiny(), source_state(), num_classes=3, lr=0.1)
    model = setup.model
    assert model.bn1.weight.requires_grad and not model.conv1.weight.requires_grad
    assert "bn1.weight" not in setup.frozen and "conv1.weight" in setup.frozen
    assert not setup.cache_features  # the backbone's BatchNorm trains: features depend on the batch
    before = snapshot(model)
    setup.fit(data(), steps=3, progress=False)
    report = setup.audit()
    assert not np.array_equal(model.bn1.weight.numpy(), before["bn1.weight"])
    assert not np.array_equal(model.bn1.running_mean.numpy(), before["bn1.running_mean"])
    assert "bn1.running_mean" in report.moving_buffers
    assert prepare("features", tiny(), source_state(), 3, 0.1, train_bn=True).model.bn1.weight.requires_grad


def test_finetune_bn_frozen_versus_bn_train():
    runs = {}
    for spec in ("finetune", "finetune:bn=frozen"):
        setup = prepare(spec, tiny(), source_state(), num_classes=3, lr=0.05)
        before = snapshot(setup.model)
        setup.fit(data(), steps=3, progress=False)
        report = setup.audit()
        runs[spec] = (setup.model, before, report)
    model, before, report = runs["finetune:bn=frozen"]
    assert all(p.requires_grad for p in model.parameters())
    assert not np.array_equal(model.bn1.weight.numpy(), before["bn1.weight"])  # affine trains
    for n, v in bn_state(model).items():
        np.testing.assert_array_equal(v, before[n])  # statistics frozen
    assert len(report.frozen_buffers) == 3 * len(batchnorm_modules(model)) and report.frozen == []
    model, before, report = runs["finetune"]
    assert not np.array_equal(model.bn1.running_mean.numpy(), before["bn1.running_mean"])
    assert report.frozen_buffers == []


def test_feature_cache_matches_the_backbone_in_train_mode_and_refuses_moving_batchnorm():
    setup = prepare("features", tiny(), source_state(), num_classes=3, lr=0.1)
    assert setup.cache_features
    loader = data()
    feats, labels = FeatureCache().features(setup.model, loader)
    setup.model.train()  # the locked BatchNorm layers stay in eval mode: same features as the cache
    with minitl.no_grad():
        x, _ = loader.batch(np.arange(len(labels)))
        np.testing.assert_allclose(setup.model.forward_features(x).numpy(), feats, rtol=1e-5, atol=1e-6)
    free = tiny()  # nothing locked: its BatchNorm would normalise with batch statistics during training
    assert "BatchNorm bn1" in why_not_cacheable(free, loader)
    with pytest.raises(ValueError, match="BatchNorm"):
        FeatureCache().features(free, loader)


def test_seed_heads_on_resnet_with_adam():
    setup = prepare("features:head=mlp16d0.5,opt=adam", tiny(), source_state(), num_classes=3, lr=1e-3)
    model = setup.model
    assert [type(m).__name__ for m in model.fc] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert model.fc[0].weight.shape == (16, 32) and model.fc[3].weight.shape == (3, 16)
    assert type(setup.optimizer).__name__ == "Adam"
    assert all(p.requires_grad for p in model.fc.parameters())
    assert not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("fc."))
    assert setup.cache_features  # dropout in the head does not change the backbone's features
    setup.fit(data(), steps=3, progress=False)
    setup.audit()
    plain = prepare("scratch:head=mlp8", tiny(), None, num_classes=3, lr=0.1).model
    assert [type(m).__name__ for m in plain.fc] == ["Linear", "ReLU", "Linear"]


def test_gradual_unfreezing_releases_batchnorm_as_its_group_unfreezes():
    setup = prepare("gradual:every=1", tiny(), source_state(), num_classes=3, lr=0.01)
    model = setup.model
    last_bn = model.layer4[1].bn2
    assert last_bn.eval_locked
    setup.fit(data(), steps=2, progress=False)  # fc, then layer4.1.bn2 (step 1), layer4.1.conv2 (step 2)
    assert not last_bn.eval_locked and last_bn.training is True
    assert model.layer4[1].bn1.eval_locked
    audit(model, setup.initial_state, setup)
