"""Meta-learning: Reptile's and first-order MAML's outer updates against hand-computed steps,
and the comparison on held-out tasks (same tasks, same budget, paired)."""
import json

import numpy as np
import pytest

import minitl
from minitl.data import ArrayDataset
from minitl.data.tasks import split_task
from minitl.experiments import plots
from minitl.experiments.meta import MetaConfig, fomaml_step, reptile_step, run_meta
from minitl.models import MLP
from tiny_tasks import synthetic_dataset

X_SUPPORT = np.array([[1.0, 0.5], [-0.5, 1.0], [0.3, -1.2], [-1.0, -0.4]])
Y_SUPPORT = np.array([0, 1, 0, 1])
X_QUERY = np.array([[0.2, 0.9], [-0.7, -0.3], [1.1, 0.1]])
Y_QUERY = np.array([1, 1, 0])


def _set(x, y):
    return ArrayDataset(x.reshape(len(x), 1, 1, 2), y, classes=("a", "b"))  # float images pass through as they are


def _linear(seed=0):
    minitl.manual_seed(seed)
    model = MLP(in_features=2, hidden=(), num_classes=2)  # one Linear layer: logits = x W^T + b
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


def _grad(w, b, x, y):
    """Mean cross-entropy's gradient for logits = x w^T + b, by hand."""
    z = x @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = (p - np.eye(2)[y]) / len(x)  # dL/dz
    return d.T @ x, d.sum(0)  # dL/dW = dz^T x, dL/db = sum of dz


def _sgd(w, b, x, y, steps, lr):
    for _ in range(steps):
        gw, gb = _grad(w, b, x, y)
        w, b = w - lr * gw, b - lr * gb
    return w, b


def test_reptile_outer_update_matches_a_hand_computed_step():
    model = _linear()
    w0, b0 = model.layers[0].weight.data.copy(), model.layers[0].bias.data.copy()
    reptile_step(model, _set(X_SUPPORT, Y_SUPPORT), inner_steps=3, inner_lr=0.5, outer_lr=0.25)
    w1, b1 = _sgd(w0, b0, X_SUPPORT, Y_SUPPORT, 3, 0.5)
    np.testing.assert_allclose(model.layers[0].weight.data, w0 + 0.25 * (w1 - w0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.layers[0].bias.data, b0 + 0.25 * (b1 - b0), rtol=1e-10, atol=1e-12)


def test_fomaml_outer_update_matches_a_hand_computed_step():
    model = _linear(3)
    w0, b0 = model.layers[0].weight.data.copy(), model.layers[0].bias.data.copy()
    fomaml_step(model, _set(X_SUPPORT, Y_SUPPORT), _set(X_QUERY, Y_QUERY), inner_steps=2, inner_lr=0.4,
                outer_lr=0.3)
    w1, b1 = _sgd(w0, b0, X_SUPPORT, Y_SUPPORT, 2, 0.4)
    gw, gb = _grad(w1, b1, X_QUERY, Y_QUERY)  # the query gradient at the adapted weights ...
    np.testing.assert_allclose(model.layers[0].weight.data, w0 - 0.3 * gw, rtol=1e-10, atol=1e-12)  # ... at w0
    np.testing.assert_allclose(model.layers[0].bias.data, b0 - 0.3 * gb, rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in model.parameters())


def test_reptile_with_outer_step_one_is_plain_sgd_on_the_task():
    model = _linear(1)
    w0, b0 = model.layers[0].weight.data.copy(), model.layers[0].bias.data.copy()
    reptile_step(model, _set(X_SUPPORT, Y_SUPPORT), inner_steps=1, inner_lr=0.1, outer_lr=1.0)
    gw, gb = _grad(w0, b0, X_SUPPORT, Y_SUPPORT)
    np.testing.assert_allclose(model.layers[0].weight.data, w0 - 0.1 * gw, rtol=1e-10)


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory):
    train, test = synthetic_dataset(20, classes=6, size=28), synthetic_dataset(12, classes=6, size=28, seed=1)
    source, target = split_task(train, test, "0-2", "synth"), split_task(train, test, "3-5", "synth")
    config = MetaConfig(ways=2, shots=2, query=5, meta_query=2, model="mlp:16", meta_iters=6, inner_steps=2,
                        tasks=4, adapt_steps=3, lr=0.05, batch_size=8)
    out = tmp_path_factory.mktemp("meta")
    lines = []
    return out, run_meta(config, source, target, out_dir=out, log=lines.append, plots=False), lines


def test_every_method_is_scored_on_the_same_held_out_tasks(meta_run):
    out, res, lines = meta_run
    assert set(res.acc) == {"scratch", "pretrain", "reptile", "fomaml"}
    assert all(len(v) == 4 for v in res.acc.values()) and len(res.tasks) == 4
    assert all(set(t) <= {0, 1, 2} and len(t) == 2 for t in res.tasks)  # class ids of the target split
    assert res.training["reptile"]["sample_gradients"] == 6 * 2 * 2 * 2
    assert res.training["pretrain"]["steps"] == max(1, 48 // 8)  # the same sample-gradient budget
    diffs = res.differences()
    assert set(diffs) == {("pretrain", "scratch"), ("reptile", "scratch"), ("fomaml", "scratch"),
                          ("reptile", "pretrain"), ("fomaml", "pretrain")}
    d = diffs[("reptile", "scratch")]
    assert d.n == 4 and d.mean == pytest.approx(np.mean(np.subtract(res.acc["reptile"], res.acc["scratch"])))
    data = json.loads((out / "meta.json").read_text())
    assert data["acc"] == res.acc and len(data["differences"]) == 5
    table = (out / "meta.md").read_text()
    assert "| reptile − scratch |" in table and "| fomaml |" in table
    assert sum(line.startswith("task ") for line in lines) == 4


def test_meta_run_is_deterministic(meta_run):
    _, res, _ = meta_run
    train, test = synthetic_dataset(20, classes=6, size=28), synthetic_dataset(12, classes=6, size=28, seed=1)
    source, target = split_task(train, test, "0-2", "synth"), split_task(train, test, "3-5", "synth")
    config = MetaConfig(ways=2, shots=2, query=5, meta_query=2, model="mlp:16", meta_iters=6, inner_steps=2,
                        tasks=4, adapt_steps=3, lr=0.05, batch_size=8, methods=["scratch", "reptile"])
    again = run_meta(config, source, target, log=None)
    assert again.acc["reptile"] == res.acc["reptile"] and again.acc["scratch"] == res.acc["scratch"]


def test_bad_meta_configuration_fails_before_training():
    train = synthetic_dataset(4, classes=6, size=28)
    source, target = split_task(train, train, "0-2", "s"), split_task(train, train, "3-5", "s")
    with pytest.raises(ValueError, match="unknown method"):
        run_meta(MetaConfig(methods=["maml2"]), source, target, log=None)
    with pytest.raises(ValueError, match="cannot draw a 4-way"):
        run_meta(MetaConfig(ways=4, model="mlp:8"), source, target, log=None)


@pytest.mark.skipif(not plots.matplotlib_available(), reason="matplotlib not installed")
def test_meta_plot_written(meta_run, tmp_path):
    _, res, _ = meta_run
    paths = res.write(tmp_path, plots=True)
    assert (tmp_path / "meta.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(tmp_path / "meta.png") in paths
