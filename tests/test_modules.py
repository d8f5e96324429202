"""Module behaviour: naming, state_dict, strict/non-strict loading, freezing, fusion, repr."""
import numpy as np
import pytest

import minitl
import minitl.nn.functional as F
from minitl import nn, optim
from minitl.models import MLP, LeNet

LENET_SHAPES = {
    "features.0.weight": (6, 1, 5, 5), "features.0.bias": (6,),
    "features.3.weight": (16, 6, 5, 5), "features.3.bias": (16,),
    "classifier.0.weight": (120, 400), "classifier.0.bias": (120,),
    "classifier.2.weight": (84, 120), "classifier.2.bias": (84,),
    "classifier.4.weight": (10, 84), "classifier.4.bias": (10,),
}


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return minitl.tensor(rng.random((n, 1, 28, 28), dtype=np.float32)), minitl.tensor(rng.integers(0, 10, n))


def test_lenet_keys_and_shapes_match_pytorch():
    sd = LeNet().state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == LENET_SHAPES
    assert list(sd) == list(LENET_SHAPES)


def test_lenet_32_and_mlp_keys():
    assert LeNet(in_channels=3, input_size=32).state_dict()["features.0.weight"].shape == (6, 3, 5, 5)
    assert list(MLP().state_dict()) == [f"layers.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]


def test_default_init_bounds_and_seed():
    minitl.manual_seed(1)
    a = nn.Linear(400, 120)
    minitl.manual_seed(1)
    b = nn.Linear(400, 120)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    bound = 1 / np.sqrt(400)
    assert np.abs(a.weight.numpy()).max() <= bound and np.abs(a.weight.numpy()).max() > 0.95 * bound
    assert np.abs(a.bias.numpy()).max() <= bound


def test_named_parameters_children_modules_train_eval():
    m = LeNet()
    assert [n for n, _ in m.named_parameters()] == list(LENET_SHAPES)
    assert len(list(m.children())) == 2
    assert len(list(m.modules())) == 1 + 2 + 6 + 5
    m.eval()
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())


def test_state_dict_round_trip_is_exact():
    src, dst = LeNet(), LeNet()
    report = dst.load_state_dict(src.state_dict())
    assert report.ok and report.loaded == list(LENET_SHAPES)
    x, _ = batch()
    np.testing.assert_array_equal(src(x).numpy(), dst(x).numpy())
    # loading copies: changing the source afterwards leaves the destination alone
    src.state_dict()["features.0.bias"][...] = 7
    assert not np.any(dst.state_dict()["features.0.bias"] == 7)


def test_strict_load_raises_before_changing_anything():
    m = LeNet()
    before = {k: v.copy() for k, v in m.state_dict().items()}
    sd = LeNet(num_classes=5).state_dict()
    with pytest.raises(ValueError, match=r"classifier\.4\.weight.*\(10, 84\).*\(5, 84\)"):
        m.load_state_dict(sd)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_non_strict_load_skips_and_reports():
    m = LeNet()
    sd = dict(LeNet(num_classes=5).state_dict())
    sd["extra.weight"] = np.zeros(3)
    del sd["features.0.bias"]
    head_before = m.head.weight.numpy().copy()
    report = m.load_state_dict(sd, strict=False)
    assert report.missing == ["features.0.bias"]
    assert report.unexpected == ["extra.weight"]
    assert [k for k, _, _ in report.mismatched] == ["classifier.4.weight", "classifier.4.bias"]
    np.testing.assert_array_equal(m.head.weight.numpy(), head_before)  # never broadcast
    np.testing.assert_array_equal(m.features[3].weight.numpy(), sd["features.3.weight"])


def test_freeze_by_name_glob_and_module():
    m = LeNet()
    assert m.freeze("features") == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias"]
    assert m.count_parameters() == (61706 - 2572, 2572)
    m.unfreeze()
    assert m.freeze("classifier.*.bias") == ["classifier.0.bias", "classifier.2.bias", "classifier.4.bias"]
    m.unfreeze()
    assert m.freeze(m.head) == ["classifier.4.weight", "classifier.4.bias"]
    with pytest.raises(ValueError, match="matches no parameter"):
        m.freeze("backbone")
    assert "2,572 frozen" not in repr(m) and "frozen" in repr(m)


def test_frozen_submodule_is_bit_identical_after_training():
    minitl.manual_seed(0)
    m = LeNet()
    m.freeze("features")
    frozen = {k: v.copy() for k, v in m.state_dict().items() if k.startswith("features")}
    head = m.head.weight.numpy().copy()
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    x, y = batch()
    for _ in range(10):
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()
    for k, v in frozen.items():
        np.testing.assert_array_equal(m.state_dict()[k], v)
        assert dict(m.named_parameters())[k].grad is None
    assert not np.array_equal(m.head.weight.numpy(), head)


def test_unfrozen_parameters_join_the_optimizer():
    m = MLP(in_features=4, hidden=(3,), num_classes=2)
    m.freeze("layers.0")
    opt = optim.Adam(m.parameters(), lr=0.1)
    x, y = minitl.tensor(np.ones((2, 4), np.float32)), minitl.tensor([0, 1])
    F.cross_entropy(m(x), y).backward()
    opt.step()
    w0 = m.layers[0].weight.numpy().copy()
    m.unfreeze("layers.0")
    opt.zero_grad()
    F.cross_entropy(m(x), y).backward()
    opt.step()
    assert not np.array_equal(m.layers[0].weight.numpy(), w0)


def test_sequential_fuses_layer_and_activation(monkeypatch):
    from minitl import kernels

    calls = []
    orig_get = kernels.get

    def get(op, device="cpu"):  # spy on the kernel calls, whichever Function makes them
        fn = orig_get(op, device)
        if op != "linear_forward":
            return fn

        def spy(x, w, b, activation):
            calls.append(activation)
            return fn(x, w, b, activation)

        return spy

    monkeypatch.setattr(kernels, "get", get)
    m = MLP(in_features=6, hidden=(5, 4), num_classes=3)
    out = m(minitl.tensor(np.ones((2, 6), np.float32)))
    assert calls == ["relu", "relu", None] and out.shape == (2, 3)
    # same values as the unfused chain
    x = minitl.tensor(np.random.default_rng(0).random((2, 6)).astype(np.float32))
    h = m.layers[0](x).relu()
    h = m.layers[2](h).relu()
    np.testing.assert_allclose(m(x).numpy(), m.layers[4](h).numpy(), rtol=1e-6)


def test_sequential_index_and_slice():
    s = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert isinstance(s[0], nn.Linear) and len(s) == 3
    tail = s[1:]
    assert isinstance(tail, nn.Sequential) and list(tail.state_dict()) == ["2.weight", "2.bias"]
    assert tail[1] is s[2]


def test_reset_classifier_and_forward_features():
    m = LeNet()
    x, _ = batch(3)
    assert m.forward_features(x).shape == (3, 84)
    body = m.classifier[0].weight
    m.reset_classifier(5)
    assert m(x).shape == (3, 5) and m.classifier[0].weight is body
    assert m.state_dict()["classifier.4.weight"].shape == (5, 84)
    mlp = MLP().reset_classifier(3)
    assert mlp(x).shape == (3, 3) and mlp.forward_features(x).shape == (3, 128)


@pytest.mark.parametrize("model", [LeNet, MLP])
def test_models_overfit_64_samples(model):
    minitl.manual_seed(0)
    m = model()
    x, y = batch(64, seed=1)
    opt = optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
    with minitl.no_grad():
        acc = (m(x).numpy().argmax(1) == y.numpy()).mean()
    assert acc == 1.0, f"{model.__name__} reached only {acc:.2%} after 150 steps (loss {loss.item():.4f})"


def test_lenet_fused_blocks_equal_the_unfused_chain():
    """Sequential runs Conv2d->ReLU->MaxPool2d as one conv2d_pool call; values and
    gradients must equal those of the layers called one by one."""
    minitl.manual_seed(0)
    m = LeNet()
    x, y = batch(4)
    F.cross_entropy(m(x), y).backward()
    fused = {k: p.grad.numpy().copy() for k, p in m.named_parameters()}
    m.zero_grad()
    h = x
    for layer in list(m.features) + [nn.Flatten()] + list(m.classifier):
        h = layer(h)
    F.cross_entropy(h, y).backward()
    np.testing.assert_allclose(h.numpy(), m(x).numpy(), rtol=1e-5, atol=1e-6)
    for k, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), fused[k], rtol=1e-4, atol=1e-6)
