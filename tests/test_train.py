"""fit / evaluate / History / checkpoints, on tiny synthetic data and tiny models."""
import json
import os
import sys
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.nn.functional as F
from minitl import io, nn, optim
from minitl.train.checkpoint import decode, encode
from minitl.data import DataLoader, RandomHorizontalFlip
from minitl.models import MLP
from minitl.train import History, evaluate, fit, load_checkpoint, save_checkpoint


def data(n=40, seed=0, image=False):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 2, 4) if image else (n, 8), dtype=np.float32)
    return x, rng.integers(0, 3, n)


def batches(n=40, size=10, seed=0):
    x, y = data(n, seed)
    return [(minitl.tensor(x[i:i + size]), minitl.tensor(y[i:i + size])) for i in range(0, n, size)]


def model(seed=0):
    minitl.manual_seed(seed)
    return MLP(in_features=8, hidden=(6,), num_classes=3)


def params(m):
    return {n: p.numpy().copy() for n, p in m.named_parameters()}


# ------------------------------------------------------------------ history
def test_history_records_per_step_and_eval():
    m = model()
    hist = fit(m, batches(), optim.SGD(m.parameters(), lr=0.1), steps=6, eval_loader=batches(seed=1),
               eval_every=4, progress=False)
    assert isinstance(hist, History) and len(hist) == 6
    assert [r["step"] for r in hist] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in hist] == [0, 0, 0, 0, 1, 1]  # 4 batches per pass
    for r in hist:
        assert np.isfinite(r["loss"]) and 0 <= r["acc"] <= 1 and r["samples_per_s"] > 0 and r["lr"] == 0.1
    assert [r["step"] for r in hist if "eval_acc" in r] == [4, 6]  # every 4 steps and at the end
    steps, accs = hist.series("eval_acc")
    assert steps == [4, 6] and hist.last("eval_acc") == accs[-1] and hist.last("nothing", 7) == 7
    times = [r["time"] for r in hist]
    assert times == sorted(times)
    again = History.from_dict(json.loads(json.dumps(hist.to_dict())))  # JSON-serialisable
    assert again.records == hist.records


def test_epochs_mode_callbacks_and_eval_each_epoch():
    calls = []

    class Spy:
        def on_train_begin(self, s):
            calls.append(("begin", s.step))

        def on_step_end(self, s):
            calls.append(("step", s.step))

        def on_epoch_end(self, s):
            calls.append(("epoch", s.epoch))

        def on_train_end(self, s):
            calls.append(("end", s.step, s.loss is not None, s.history is not None))

    m = model()
    hist = fit(m, batches(), optim.SGD(m.parameters(), lr=0.1), epochs=2, eval_loader=batches(seed=1),
               callbacks=[Spy()], progress=False)
    assert len(hist) == 8
    assert [r["step"] for r in hist if "eval_acc" in r] == [4, 8]
    assert calls[0] == ("begin", 0) and calls[-1] == ("end", 8, True, True)
    assert [c for c in calls if c[0] == "epoch"] == [("epoch", 1), ("epoch", 2)]


def test_fit_argument_errors_and_stop():
    m = model()
    opt = optim.SGD(m.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        fit(m, batches(), opt, progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        fit(m, batches(), opt, steps=1, epochs=1, progress=False)
    with pytest.raises(ValueError, match="no batches"):
        fit(m, [], opt, steps=1, progress=False)

    class Stop:
        def on_step_end(self, s):
            s.stop = s.step == 3

    assert len(fit(m, batches(), opt, steps=100, callbacks=[Stop()], progress=False)) == 3


def test_penalty_is_added_and_recorded():
    m, m2 = model(), model()
    fit(m, batches(), optim.SGD(m.parameters(), lr=0.1), steps=2, progress=False,
        penalty=lambda mod: (mod.head.weight * mod.head.weight).sum() * 0.5)
    hist = fit(m2, batches(), optim.SGD(m2.parameters(), lr=0.1), steps=2, progress=False)
    # The penalty's gradient (the weight itself) changes the head; the data loss is recorded alone.
    assert not np.array_equal(params(m)["layers.2.weight"], params(m2)["layers.2.weight"])
    assert "penalty" not in hist[0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_names_the_step_and_skips_the_update(bad):
    m = model()
    calls = {"n": 0}

    def loss_fn(out, y):
        calls["n"] += 1
        loss = F.cross_entropy(out, y)
        return loss * bad if calls["n"] == 3 else loss

    seen = []

    class Keep:
        def on_step_end(self, s):
            seen.append(params(s.model))

    with pytest.raises(FloatingPointError, match=r"step 3\b") as info:
        fit(m, batches(), optim.SGD(m.parameters(), lr=0.1), steps=5, loss_fn=loss_fn, callbacks=[Keep()],
            progress=False)
    assert str(bad) in str(info.value)
    assert len(seen) == 2
    for name, value in params(m).items():  # no update from the bad step
        np.testing.assert_array_equal(value, seen[-1][name])


# ---------------------------------------------------------------- evaluate
def test_evaluate_values_and_restores_modes():
    m = model()
    loader = batches(n=30, size=7)
    m.train()
    m.layers[0].eval()  # a mixed state must come back as it was
    out = evaluate(m, loader)
    assert m.training and not m.layers[0].training and m.layers[2].training
    x = np.concatenate([b[0].numpy() for b in loader])
    y = np.concatenate([b[1].numpy() for b in loader])
    with minitl.no_grad():
        logits = m(minitl.tensor(x))
    assert out["n"] == 30
    assert out["acc"] == pytest.approx(float((logits.numpy().argmax(1) == y).mean()))
    assert out["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    m.eval()
    evaluate(m, loader)
    assert not m.training
    assert evaluate(m, [])["n"] == 0


def test_features_fn_trains_the_head_on_a_fixed_representation():
    full, head_only = model(), model()
    full.freeze("layers.0")
    opt1 = optim.SGD(full.parameters(), lr=0.1, momentum=0.9)
    opt2 = optim.SGD(head_only.head.parameters(), lr=0.1, momentum=0.9)
    fit(full, batches(), opt1, steps=5, progress=False)
    fit(head_only.head, batches(), opt2, steps=5, progress=False, features_fn=head_only.forward_features)
    for name, value in params(full).items():
        np.testing.assert_allclose(value, params(head_only)[name], rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- progress
def test_progress_false_is_silent_and_plain_lines_without_tqdm(capsys, monkeypatch):
    m = model()
    fit(m, batches(), optim.SGD(m.parameters(), lr=0.1), epochs=2, progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes the import fail
    fit(m, batches(), optim.SGD(m.parameters(), lr=0.1), epochs=2, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("epoch 1 ") and "samples/s" in lines[0]
    assert lines[-1].startswith("epoch 2 ") and len(lines) <= 2  # at most a line a second, and the last
    fit(m, batches(), optim.SGD(m.parameters(), lr=0.1), steps=6, progress=True)
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("epoch 1  step 6")


def test_progress_uses_tqdm_when_available(monkeypatch):
    bars = []

    class FakeBar:
        def __init__(self, total, **kw):
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def set_postfix(self, **kw):
            self.postfix = kw

        def update(self, k):
            self.n += k

        def close(self):
            self.closed = True

    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = FakeBar
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    m = model()
    fit(m, batches(), optim.SGD(m.parameters(), lr=0.1), steps=5, progress=True)
    assert bars[0].total == 5 and bars[0].n == 5 and bars[0].closed and "loss" in bars[0].postfix
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    fit(m, batches(), optim.SGD(m.parameters(), lr=0.1), steps=5)  # auto: no terminal, no bar
    assert len(bars) == 1


# -------------------------------------------------------------- checkpoints
@st.composite
def nested(draw):
    leaf = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=False), st.booleans(), st.none(),
                     st.text(max_size=5), st.builds(lambda v: np.array(v, np.float32), st.lists(st.floats(-9, 9),
                                                                                                 max_size=3)))
    return draw(st.recursive(leaf, lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.tuples(kids, kids),
        st.dictionaries(st.one_of(st.integers(0, 9), st.text(max_size=3)), kids, max_size=3)), max_leaves=8))


def _same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(nested())
def test_checkpoint_codec_round_trips_through_json(value):
    arrays = {}
    text = json.dumps(encode(value, arrays, "extra"))
    assert _same(value, decode(json.loads(text), arrays))


def test_save_and_load_checkpoint_restore_everything(tmp_path):
    m = model()
    m.freeze("layers.0.bias")
    opt = optim.Adam(m.parameters(), lr=0.01, betas=(0.8, 0.9))
    fit(m, batches(), opt, steps=3, progress=False)
    minitl.manual_seed(5)
    rng_state = minitl.core.random.get_state()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, m, opt, step=3, epoch=0, extra={"note": (1, 2), "a": np.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]  # no temporary file left
    assert "model/layers.0.weight" in io.load(path)  # a plain safetensors file, no pickle

    minitl.core.random.generator().random(10)  # move the generator on
    other = model(seed=9)
    opt2 = optim.Adam(other.parameters(), lr=0.5)
    info = load_checkpoint(path, other, opt2)
    assert info["step"] == 3 and info["epoch"] == 0 and info["extra"]["note"] == (1, 2)
    np.testing.assert_array_equal(info["extra"]["a"], np.arange(3))
    for name, value in params(m).items():
        np.testing.assert_array_equal(value, params(other)[name])
    assert not dict(other.named_parameters())["layers.0.bias"].requires_grad
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9) and opt2.param_groups[0]["lr"] == 0.01
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and all(s1[k]["step"] == s2[k]["step"] for k in s1)
    assert minitl.core.random.get_state() == rng_state

    io.save(m.state_dict(), tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a minitl checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors", m, opt)


class Net(nn.Module):
    """A tiny model with dropout, so a resumed run must restore minitl's RNG too."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU(), nn.Dropout(0.3), nn.Linear(6, 3))

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_resume_is_bit_identical(tmp_path, kind):
    """2N steps straight == N steps, then a fresh process-like rebuild resumed for N more."""
    x, y = data(n=30, image=True)

    def build(seed):
        minitl.manual_seed(seed)
        net = Net()
        opt = (optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True) if kind == "sgd"
               else optim.Adam(net.parameters(), lr=0.01))
        sched = optim.StepLR(opt, step_size=4, gamma=0.5)
        loader = DataLoader((x, y), batch_size=8, shuffle=True, seed=11,
                            transform=RandomHorizontalFlip(seed=12))  # 4 batches, the last partial
        return net, opt, sched, loader

    n = 7  # the checkpoint falls mid-epoch
    net, opt, sched, loader = build(0)
    straight = fit(net, loader, opt, steps=2 * n, scheduler=sched, progress=False)

    ckpt = tmp_path / "run" / "ckpt.safetensors"
    net2, opt2, sched2, loader2 = build(0)
    fit(net2, loader2, opt2, steps=n, scheduler=sched2, checkpoint=ckpt, checkpoint_every=3, progress=False)
    net3, opt3, sched3, loader3 = build(123)  # different init and RNG: everything must come from the file
    resumed = fit(net3, loader3, opt3, steps=2 * n, scheduler=sched3, checkpoint=ckpt, resume=True,
                  progress=False)
    for name, value in params(net).items():
        np.testing.assert_array_equal(value, params(net3)[name], err_msg=name)
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]
    assert opt3.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert loader3.epoch == loader.epoch


def test_resume_in_epochs_mode_and_with_a_list_loader(tmp_path):
    def run(epochs, seed=0, **kw):
        m = model(seed)
        opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        fit(m, batches(n=30, size=8), opt, epochs=epochs, progress=False, **kw)
        return m

    straight = run(3)
    path = tmp_path / "c.npz"
    run(2, checkpoint=path)
    resumed = run(3, seed=4, checkpoint=path, resume=True)
    for name, value in params(straight).items():
        np.testing.assert_array_equal(value, params(resumed)[name])
    assert os.path.exists(path)
    # resume=True without a file starts from scratch
    fresh = run(1, checkpoint=tmp_path / "new.safetensors", resume=True)
    assert os.path.exists(tmp_path / "new.safetensors") and fresh is not None
