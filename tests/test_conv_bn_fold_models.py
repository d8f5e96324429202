"""The conv+BatchNorm fold inside models: ResNet (stem, blocks, downsample) and a
user's Sequential, against their layers run one by one; training bit-identical;
the frozen-feature cache folds; the state_dict is never written."""
import numpy as np
import pytest

import minitl
import minitl.nn.functional as F
from minitl import nn
from minitl.data import DataLoader
from minitl.models.resnet import BasicBlock, resnet18, resnet50
from minitl.nn import conv_bn_fold
from minitl.transfer.batchnorm import lock_batchnorm
from minitl.transfer.features import cache_features

from fold_helpers import cast_floats, fold_at_any_size, move_bn_stats  # noqa: F401 (autouse fixture)


def _moved(model, seed=0):
    return move_bn_stats(model, np.random.default_rng(seed))


def _resnet_layer_by_layer(m, x):
    """ResNet's forward with every conv, BatchNorm and ReLU called on its own."""
    x = m.maxpool(F.relu(m.bn1(m.conv1(x))))
    for stage in (m.layer1, m.layer2, m.layer3, m.layer4):
        for blk in stage:
            out = F.relu(blk.bn1(blk.conv1(x)))
            if isinstance(blk, BasicBlock):
                out = blk.bn2(blk.conv2(out))
            else:
                out = blk.bn3(blk.conv3(F.relu(blk.bn2(blk.conv2(out)))))
            identity = x if blk.downsample is None else blk.downsample[1](blk.downsample[0](x))
            x = F.relu(out + identity)
    return m.fc(m.avgpool(x).flatten(1))


@pytest.fixture
def fold_count(monkeypatch):
    """How many times a conv+BatchNorm pair was folded."""
    calls = []
    original = conv_bn_fold.fold_conv_bn

    def counting(conv, bn):
        calls.append((conv, bn))
        return original(conv, bn)
    monkeypatch.setattr(conv_bn_fold, "fold_conv_bn", counting)
    return calls


def _pairs(model):
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("build, width, small", [(resnet18, 8, True), (resnet18, 4, False), (resnet50, 2, True)])
def test_resnet_eval_no_grad_folds_every_pair_and_equals_layer_by_layer(fold_count, build, width, small):
    minitl.manual_seed(0)
    m = cast_floats(_moved(build(num_classes=5, in_chans=3, width=width, small_input=small)), np.float64).eval()
    x = minitl.tensor(np.random.default_rng(1).standard_normal((3, 3, 16, 16)), dtype=np.float64)
    with minitl.no_grad():
        got = m(x).numpy()
        assert len(fold_count) == _pairs(m)
        want = _resnet_layer_by_layer(m, x).numpy()
    assert len(fold_count) == _pairs(m)  # the layer-by-layer run folds nothing
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_resnet18_float32_eval_close_to_layer_by_layer_and_state_dict_untouched():
    minitl.manual_seed(0)
    m = _moved(resnet18(num_classes=5, in_chans=3, width=8, small_input=True)).eval()
    tensors = dict(m.named_parameters(), **dict(m.named_buffers()))
    before = {k: (t.data, t.numpy().copy()) for k, t in tensors.items()}
    state = {k: np.array(v, copy=True) for k, v in m.state_dict().items()}
    x = minitl.tensor(np.random.default_rng(2).standard_normal((4, 3, 16, 16)).astype(np.float32))
    with minitl.no_grad():
        got = m(x).numpy()
        want = _resnet_layer_by_layer(m, x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    for k, (array, values) in before.items():  # same arrays, same values
        assert tensors[k].data is array and np.array_equal(tensors[k].numpy(), values), k
    after = m.state_dict()
    assert list(after) == list(state) and all(np.array_equal(after[k], v) for k, v in state.items())


def test_resnet_training_is_bit_identical_to_layer_by_layer(fold_count):
    models = []
    for _ in range(2):
        minitl.manual_seed(3)
        models.append(_moved(resnet18(num_classes=4, in_chans=1, width=4, small_input=True)))
    x = minitl.tensor(np.random.default_rng(4).standard_normal((4, 1, 12, 12)).astype(np.float32))
    y = minitl.tensor(np.array([0, 1, 2, 3]))
    a, b = models
    la, lb = F.cross_entropy(a(x), y), F.cross_entropy(_resnet_layer_by_layer(b, x), y)
    la.backward()
    lb.backward()
    assert fold_count == [] and la.item() == lb.item()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(pa.grad.numpy(), pb.grad.numpy()), n
    for (n, ba), (_, bb) in zip(a.named_buffers(), b.named_buffers()):
        assert np.array_equal(ba.numpy(), bb.numpy()), n


def test_frozen_backbone_training_folds_and_gives_the_head_the_same_gradient(fold_count):
    minitl.manual_seed(5)
    m = _moved(resnet18(num_classes=3, in_chans=1, width=4, small_input=True))
    head = {id(p) for p in m.head.parameters()}
    m.freeze([n for n, p in m.named_parameters() if id(p) not in head])
    lock_batchnorm(m)
    m.train()
    x = minitl.tensor(np.random.default_rng(6).standard_normal((4, 1, 12, 12)).astype(np.float32))
    y = minitl.tensor(np.array([0, 1, 2, 0]))
    F.cross_entropy(m(x), y).backward()
    assert len(fold_count) == _pairs(m)
    folded = m.fc.weight.grad.numpy().copy()
    m.fc.weight.grad = None
    F.cross_entropy(_resnet_layer_by_layer(m, x), y).backward()
    np.testing.assert_allclose(folded, m.fc.weight.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_feature_cache_folds_the_frozen_backbone(fold_count):
    minitl.manual_seed(7)
    m = _moved(resnet18(num_classes=3, in_chans=1, width=4, small_input=True))
    m.freeze()
    lock_batchnorm(m)
    rng = np.random.default_rng(8)
    loader = DataLoader((rng.standard_normal((10, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 10)),
                        batch_size=4)
    feats, _ = cache_features(m, loader)
    assert len(fold_count) == _pairs(m)  # one pass of 10 rows
    with minitl.no_grad():
        x, _ = loader.batch(np.arange(10))
        m.fc, fc = nn.Identity(), m.fc
        want = _resnet_layer_by_layer(m, x).numpy()
        m.fc = fc
    np.testing.assert_allclose(feats, want, rtol=1e-4, atol=1e-5)


def _seq_layer_by_layer(seq, x):
    for layer in seq:
        x = layer(x)
    return x


def _user_seq(seed=0):
    minitl.manual_seed(seed)
    seq = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 6, 3, groups=2, bias=False), nn.BatchNorm2d(6), nn.Tanh(),
                        nn.Conv2d(6, 3, 1), nn.BatchNorm2d(3, affine=False), nn.Flatten())
    return _moved(seq, seed)


def test_sequential_conv_bn_act_pool_is_one_step_and_folds_in_eval(fold_count):
    seq = _user_seq().eval()
    assert len(seq._fused_plan()) == 4  # three conv+BN steps and the Flatten
    x = minitl.tensor(np.random.default_rng(9).standard_normal((2, 2, 8, 8)).astype(np.float32))
    with minitl.no_grad():
        got = seq(x).numpy()
        assert len(fold_count) == 3
        want = _seq_layer_by_layer(seq, x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_sequential_training_bit_identical_and_a_hooked_batchnorm_sees_its_output(fold_count):
    a, b = _user_seq(1), _user_seq(1)
    x = minitl.tensor(np.random.default_rng(10).standard_normal((2, 2, 8, 8)).astype(np.float32))
    ya, yb = a(x), _seq_layer_by_layer(b, x)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    assert fold_count == [] and np.array_equal(ya.numpy(), yb.numpy())
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(pa.grad.numpy(), pb.grad.numpy()), n
    a.eval()
    seen, bn = [], a[1]
    original = bn.forward
    object.__setattr__(bn, "forward", lambda t: seen.append(1) or original(t))
    with minitl.no_grad():
        a(x)
    assert seen == [1] and len(fold_count) == 2  # the hooked pair ran unfolded, the other two folded


@pytest.mark.gpu
def test_resnet_on_cuda_folds_and_equals_layer_by_layer(fold_count):
    minitl.manual_seed(11)
    m = _moved(resnet18(num_classes=5, in_chans=3, width=8, small_input=True)).eval().to("cuda")
    x = minitl.tensor(np.random.default_rng(12).standard_normal((4, 3, 16, 16)).astype(np.float32), device="cuda")
    with minitl.no_grad():
        got = m(x).numpy()
        assert len(fold_count) == _pairs(m)
        want = _resnet_layer_by_layer(m, x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
