"""Optimizers and schedules against hand-computed updates."""
import math

import numpy as np
import pytest

import minitl
from minitl import nn, optim


def param(values):
    return nn.Parameter(np.array(values, dtype=np.float64))


def run(opt_factory, grads, p0=(1.0, -2.0)):
    p = param(p0)
    opt = opt_factory([p])
    for g in grads:
        p.grad = minitl.tensor(np.array(g, dtype=np.float64))
        opt.step()
    return p.numpy(), opt


def test_sgd_plain_and_weight_decay():
    p, _ = run(lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.5), [[1.0, 1.0]])
    # p - lr * (g + wd * p)
    np.testing.assert_allclose(p, [1 - 0.1 * (1 + 0.5), -2 - 0.1 * (1 - 1.0)])


def test_sgd_momentum_dampening_nesterov():
    g1, g2 = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    p0 = np.array([1.0, -2.0])
    lr, mu, damp = 0.1, 0.9, 0.1
    # momentum with dampening: buf1 = g1 (first step), buf2 = mu*buf1 + (1-damp)*g2
    p, _ = run(lambda ps: optim.SGD(ps, lr=lr, momentum=mu, dampening=damp), [g1, g2])
    buf2 = mu * g1 + (1 - damp) * g2
    np.testing.assert_allclose(p, p0 - lr * g1 - lr * buf2)
    # nesterov: step uses g + mu*buf
    p, _ = run(lambda ps: optim.SGD(ps, lr=lr, momentum=mu, nesterov=True), [g1, g2])
    b1, b2 = g1, mu * g1 + g2
    np.testing.assert_allclose(p, p0 - lr * (g1 + mu * b1) - lr * (g2 + mu * b2))


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_and_adamw(decoupled):
    g = [np.array([1.0, -3.0]), np.array([0.2, 0.4]), np.array([-1.0, 1.0])]
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.99, 1e-8, 0.1
    cls = optim.AdamW if decoupled else optim.Adam
    p, opt = run(lambda ps: cls(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd), g)
    want, m, v = np.array([1.0, -2.0]), 0.0, 0.0
    for t, gt in enumerate(g, 1):
        if decoupled:
            want = want * (1 - lr * wd)
        else:
            gt = gt + wd * want
        m = b1 * m + (1 - b1) * gt
        v = b2 * v + (1 - b2) * gt * gt
        want = want - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(p, want, rtol=1e-12)
    assert opt.state_dict()["state"][0]["step"] == 3


def test_param_groups_and_skipping():
    a, b, frozen, nograd = param([1.0]), param([1.0]), param([1.0]), param([1.0])
    frozen.requires_grad = False
    opt = optim.SGD([{"params": [a]}, {"params": [b, frozen, nograd], "lr": 1.0}], lr=0.1)
    for p in (a, b, frozen):
        p.grad = minitl.tensor(np.ones(1))
    opt.step()
    assert a.item() == pytest.approx(0.9) and b.item() == pytest.approx(0.0)
    assert frozen.item() == 1.0 and nograd.item() == 1.0
    c = param([1.0])
    opt.add_param_group({"params": c, "lr": 0.5})
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_optimizer_state_dict_round_trip():
    def make():
        p = param([1.0, 2.0])
        return p, optim.SGD([p], lr=0.1, momentum=0.9)

    p1, o1 = make()
    for _ in range(3):
        p1.grad = minitl.tensor(np.array([0.3, -0.1]))
        o1.step()
    p2, o2 = make()
    p2.data = p1.data.copy()
    o2.load_state_dict(o1.state_dict())
    for p, o in ((p1, o1), (p2, o2)):
        p.grad = minitl.tensor(np.array([1.0, 1.0]))
        o.step()
    np.testing.assert_array_equal(p1.numpy(), p2.numpy())
    with pytest.raises(ValueError, match="parameter groups"):
        o2.load_state_dict({"state": {}, "param_groups": []})


def test_empty_parameter_list_is_an_error():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)


def lrs(sched, steps):
    out = [sched.get_last_lr()[0]]
    for _ in range(steps):
        sched.step()
        out.append(sched.get_last_lr()[0])
    return out


def test_schedules():
    mk = lambda: optim.SGD([param([0.0])], lr=1.0)  # noqa: E731
    assert lrs(optim.StepLR(mk(), step_size=2, gamma=0.5), 4) == [1, 1, 0.5, 0.5, 0.25]
    cos = lrs(optim.CosineAnnealingLR(mk(), T_max=4, eta_min=0.0), 5)
    np.testing.assert_allclose(cos, [1, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0, 0],
                               atol=1e-12)
    np.testing.assert_allclose(lrs(optim.LinearWarmup(mk(), warmup_steps=4, start_factor=0.2), 5),
                               [0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    one = lrs(optim.OneCycleLR(mk(), max_lr=1.0, total_steps=10, pct_start=0.3), 9)
    assert one[0] == pytest.approx(1 / 25) and max(one) == pytest.approx(1.0) and one.index(max(one)) == 2
    assert one[-1] == pytest.approx(1 / 25 / 1e4)
    assert all(x >= y for x, y in zip(one[2:], one[3:]))
