"""ResNet-18/34/50: torchvision's state_dict keys and shapes (listed from the
architecture's definition, not by loading torch), the width / small_input
options, the transfer API, and a tiny overfit."""
import numpy as np
import pytest

import minitl
import minitl.nn.functional as F
from minitl import nn, optim
from minitl.models import build_model, spec_from_state
from minitl.models.resnet import resnet18, resnet34, resnet50


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def torchvision_keys(blocks, bottleneck, num_classes=1000, width=64, in_chans=3, stem=7):
    """torchvision.models.resnet's state_dict, written out from its definition:
    conv1/bn1 stem; layerN.i.{conv1,bn1,conv2,bn2[,conv3,bn3]}; downsample.{0,1}
    on the first block of a stage that changes shape; fc."""
    keys = {"conv1.weight": (width, in_chans, stem, stem), **_bn("bn1", width)}
    exp = 4 if bottleneck else 1
    inplanes = width
    for s, n in enumerate(blocks):
        planes = width * 2 ** s
        for i in range(n):
            p = f"layer{s + 1}.{i}"
            if bottleneck:
                keys.update({f"{p}.conv1.weight": (planes, inplanes, 1, 1), **_bn(f"{p}.bn1", planes),
                             f"{p}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{p}.bn2", planes),
                             f"{p}.conv3.weight": (planes * 4, planes, 1, 1), **_bn(f"{p}.bn3", planes * 4)})
            else:
                keys.update({f"{p}.conv1.weight": (planes, inplanes, 3, 3), **_bn(f"{p}.bn1", planes),
                             f"{p}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{p}.bn2", planes)})
            if i == 0 and (s > 0 or inplanes != planes * exp):
                keys.update({f"{p}.downsample.0.weight": (planes * exp, inplanes, 1, 1),
                             **_bn(f"{p}.downsample.1", planes * exp)})
            inplanes = planes * exp
    keys.update({"fc.weight": (num_classes, inplanes), "fc.bias": (num_classes,)})
    return keys


@pytest.mark.parametrize("build, blocks, bottleneck, params", [
    (resnet18, (2, 2, 2, 2), False, 11_689_512),
    (resnet34, (3, 4, 6, 3), False, 21_797_672),
    (resnet50, (3, 4, 6, 3), True, 25_557_032),
])
def test_torchvision_keys_shapes_and_parameter_counts(build, blocks, bottleneck, params):
    model = build()
    sd = model.state_dict()
    want = torchvision_keys(blocks, bottleneck)
    assert list(sd) == list(want)
    assert {k: tuple(v.shape) for k, v in sd.items()} == want
    assert sum(p.numel() for p in model.parameters()) == params  # torchvision's published counts
    assert sd["layer2.0.downsample.1.num_batches_tracked"].dtype == np.int64


def test_resnet18_has_122_entries_with_the_named_examples():
    sd = resnet18().state_dict()
    assert len(sd) == 122
    assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd["layer4.1.bn2.running_var"].shape == (512,)
    assert sd["fc.weight"].shape == (1000, 512)


def test_width_and_small_input_keep_the_keys():
    small = resnet18(num_classes=5, in_chans=1, width=16, small_input=True)
    want = torchvision_keys((2, 2, 2, 2), False, num_classes=5, width=16, in_chans=1, stem=3)
    assert {k: tuple(v.shape) for k, v in small.state_dict().items()} == want
    x = minitl.tensor(np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32))
    assert small.forward_features(x).shape == (2, 128)
    assert small(x).shape == (2, 5)
    big = resnet50(num_classes=3, width=8)
    assert big(minitl.tensor(np.zeros((1, 3, 64, 64), np.float32))).shape == (1, 3)
    assert big.num_features == 8 * 8 * 4


def test_transfer_api_reset_and_replace_head():
    m = resnet18(num_classes=5, width=8, small_input=True)
    m.reset_classifier(7)
    assert m.head is m.fc and m.fc.weight.shape == (7, 64) and m.num_classes == 7
    head = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    m.replace_head(head)
    assert m.head is head and m.num_classes == 10
    assert [k for k in m.state_dict() if k.startswith("fc.")] == ["fc.0.weight", "fc.0.bias", "fc.2.weight",
                                                                 "fc.2.bias"]
    x = minitl.tensor(np.zeros((2, 3, 16, 16), np.float32))
    assert m(x).shape == (2, 10)
    np.testing.assert_array_equal(m.forward_head(m.forward_features(x)).numpy(), m(x).numpy())
    with pytest.raises(ValueError, match="input"):
        m(minitl.tensor(np.zeros((2, 1, 16, 16), np.float32)))


def test_build_model_spec_and_spec_from_state():
    m = build_model("resnet18:width=16", 5, (1, 32, 32))
    assert m.width == 16 and m.small_input and m.fc.weight.shape == (5, 128)
    assert spec_from_state(m.state_dict()) == ("resnet18:width=16", 5)
    m50 = build_model("resnet50:width=4,small_input=0", 3, (3, 64, 64))
    assert not m50.small_input and spec_from_state(m50.state_dict()) == ("resnet50:width=4,small_input=0", 3)
    assert spec_from_state(resnet34(num_classes=2, width=4, small_input=True).state_dict())[0] == "resnet34:width=4"
    with pytest.raises(ValueError, match="width"):
        build_model("resnet18:width=x", 5, (1, 32, 32))
    with pytest.raises(ValueError, match="unknown option"):
        build_model("resnet18:depth=3", 5, (1, 32, 32))


def test_resnet_overfits_a_tiny_batch_and_bn_stats_move():
    minitl.manual_seed(0)
    m = resnet18(num_classes=3, in_chans=1, width=4, small_input=True)
    rng = np.random.default_rng(0)
    x = minitl.tensor(rng.random((6, 1, 8, 8), dtype=np.float32))
    y = minitl.tensor(np.array([0, 1, 2, 0, 1, 2]))
    opt = optim.Adam(m.parameters(), lr=0.01)
    first = None
    for _ in range(40):
        loss = F.cross_entropy(m(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
    assert int(m.bn1.num_batches_tracked.numpy()) == 40
    m.eval()
    assert (m(x).numpy().argmax(1) == y.numpy()).mean() >= 0.5  # eval mode runs on running statistics
