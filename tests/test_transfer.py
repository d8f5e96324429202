"""Strategies: each freezes and trains exactly what it claims; lrs, unfreezing, L2-SP, the feature cache."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
from minitl import optim, transfer
from minitl.data import DataLoader, Normalize, RandomHorizontalFlip
from minitl.models import MLP, LeNet
from minitl.transfer.strategies import _OPTIONS
from minitl.transfer import (STRATEGIES, GradualUnfreeze, Strategy, audit, freeze_to, layer_drift, layer_groups,
                             parse_strategy, prepare, snapshot, weight_drift)

GROUPS = ["layers.0", "layers.2", "layers.4"]  # MLP(8, (6, 5), ...): two hidden layers and the head


def mlp(num_classes=4, seed=0, hidden=(6, 5)):
    minitl.manual_seed(seed)
    return MLP(in_features=8, hidden=hidden, num_classes=num_classes)


def pretrained(hidden=(6, 5)):
    """A 'source' model's weights (random here: only provenance matters for these tests)."""
    return snapshot(mlp(num_classes=4, seed=100, hidden=hidden))


def loader(n=40, batch_size=16, seed=3, transform=None, images=False):
    rng = np.random.default_rng(7)
    x = rng.random((n, 1, 2, 4) if images else (n, 8), dtype=np.float32)
    return DataLoader((x, rng.integers(0, 3, n)), batch_size=batch_size, shuffle=True, seed=seed,
                      transform=transform)


def names(groups):
    return [f"{g}.{p}" for g in groups for p in ("weight", "bias")]


# ------------------------------------------------------------------ specs
@pytest.mark.parametrize("spec, kind, options, name", [
    ("finetune", "finetune", {"lr_mult": 1.0}, "finetune"),
    ("finetune:lr_mult=0.1", "finetune", {"lr_mult": 0.1}, "finetune:lr_mult=0.1"),
    (" gradual:every=50 ", "gradual", {"every": 50, "lr_mult": 1.0}, "gradual"),
    ("gradual:every=7,lr_mult=0.5", "gradual", {"every": 7, "lr_mult": 0.5}, "gradual:every=7,lr_mult=0.5"),
    ("l2sp:alpha=0.1:beta=0", "l2sp", {"alpha": 0.1, "beta": 0.0, "lr_mult": 1.0}, "l2sp:alpha=0.1,beta=0.0"),
    ("layers:2:frozen", "layers", {"n": 2, "mode": "frozen", "lr_mult": 1.0}, "layers:2:frozen"),
    ("layers:1:finetune:lr_mult=0.1", "layers", {"n": 1, "mode": "finetune", "lr_mult": 0.1},
     "layers:1:finetune:lr_mult=0.1"),
    ("structure", "structure", {}, "structure"),
    ("finetune:bn=frozen", "finetune", {"lr_mult": 1.0, "bn": "frozen"}, "finetune:bn=frozen"),
    ("features:head=mlp1024d0.5,opt=adam", "features", {"train_bn": 0, "head": "mlp1024d0.5", "opt": "adam"},
     "features:head=mlp1024d0.5,opt=adam"),
    ("features:train_bn=1", "features", {"train_bn": 1}, "features:train_bn=1"),
])
def test_parse_strategy(spec, kind, options, name):
    s = parse_strategy(spec)
    # The BatchNorm options and the options every strategy takes, at their defaults unless given.
    extra = {"finetune": {"bn": "train"}, "gradual": {"train_bn": 0}, "layers": {"train_bn": 0},
             "features": {"train_bn": 0}}.get(kind, {})
    options = {**extra, "head": "linear", "opt": "default", **options}
    assert (s.kind, s.options, s.name, str(s)) == (kind, options, name, name)
    assert parse_strategy(s.name) == s and parse_strategy(s) is s


@pytest.mark.parametrize("spec, message", [
    ("transfer", "unknown strategy"), ("", "non-empty"), ("finetune:alpha=1", "no option 'alpha'"),
    ("features:lr_mult=0.1", "no option"), ("gradual:every=0", "every must be an integer >= 1"),
    ("finetune:lr_mult=x", "lr_mult must be a number"), ("layers:2", "needs mode"),
    ("layers:2:thawed", "frozen or finetune"), ("layers:2:frozen:lr_mult=0.1", "no effect"),
    ("finetune:1", "no positional"), ("l2sp:alpha=1,alpha=2", "twice"), ("finetune:", "empty argument"),
])
def test_parse_strategy_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_strategy(spec)


@given(st.sampled_from(sorted(_OPTIONS)), st.data())
def test_canonical_names_round_trip(kind, data):
    options = {}
    for key, default in _OPTIONS[kind].items():
        if key in ("n", "every"):
            options[key] = data.draw(st.integers(1, 99))
        elif key == "mode":
            options[key] = data.draw(st.sampled_from(["frozen", "finetune"]))
        elif key == "bn":
            options[key] = data.draw(st.sampled_from(["train", "frozen"]))
        elif key == "train_bn":
            options[key] = data.draw(st.sampled_from([0, 1]))
        elif key == "head":
            options[key] = data.draw(st.sampled_from(["linear", "mlp256", "mlp1024d0.5"]))
        elif key == "opt":
            options[key] = data.draw(st.sampled_from(["default", "sgd", "adam", "adamw"]))
        else:
            options[key] = data.draw(st.floats(0, 10, allow_nan=False))
    if kind == "layers" and options["mode"] == "frozen":
        options["lr_mult"] = 1.0
    s = Strategy(kind, options)
    assert parse_strategy(s.name) == s


def test_strategy_list_for_the_cli():
    assert set(STRATEGIES) == {"scratch", "structure", "features", "finetune", "gradual", "l2sp", "layers"}
    assert all(isinstance(d, str) and d and "\n" not in d for d in STRATEGIES.values())


# ----------------------------------------------------------- layer groups
def test_lenet_layer_groups_and_freeze_to():
    m = LeNet()
    assert layer_groups(m) == ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]
    assert freeze_to(m, -1) == names(["features.0", "features.3", "classifier.0", "classifier.2"])
    assert [n for n, p in m.named_parameters() if p.requires_grad] == names(["classifier.4"])
    assert freeze_to(m, 2) == names(["features.0", "features.3"])
    assert freeze_to(m, 0) == [] and all(p.requires_grad for p in m.parameters())
    assert freeze_to(m, -99) == [] and len(freeze_to(m, 99)) == 10


# ------------------------------------------- every strategy, audited
EXPECT = {  # spec -> (frozen groups, groups copied from the pretrained weights)
    "scratch": ([], []),
    "structure": ([], []),
    "features": (GROUPS[:2], GROUPS[:2]),
    "finetune": ([], GROUPS[:2]),
    "finetune:lr_mult=0.1": ([], GROUPS[:2]),
    "l2sp:alpha=0.1,beta=0.01": ([], GROUPS[:2]),
    "layers:1:frozen": (GROUPS[:1], GROUPS[:1]),
    "layers:1:finetune": ([], GROUPS[:1]),
    "layers:2:finetune:lr_mult=0.5": ([], GROUPS[:2]),
}


@pytest.mark.parametrize("spec", sorted(EXPECT))
def test_strategy_freezes_and_trains_exactly_what_it_claims(spec):
    frozen_groups, copied_groups = EXPECT[spec]
    source = pretrained()
    fresh = snapshot(mlp(num_classes=3, seed=1))
    setup = prepare(spec, mlp(num_classes=4, seed=1), source, num_classes=3, lr=0.1)
    m = setup.model
    assert m.head.out_features == 3 and setup.groups == GROUPS
    assert setup.frozen == names(frozen_groups) and list(setup.frozen_at_start) == setup.frozen
    assert setup.transferred == names(copied_groups)
    for n, value in setup.initial_state.items():
        if n in setup.transferred:
            np.testing.assert_array_equal(value, source[n])
        elif not n.startswith("layers.4"):  # not copied: the model's own fresh initialisation
            np.testing.assert_array_equal(value, fresh[n])
    held = [id(p) for g in setup.optimizer.param_groups for p in g["params"]]
    assert sorted(held) == sorted(id(p) for p in m.parameters())  # frozen ones too

    setup.fit(loader(), steps=6, progress=False)
    report = setup.audit()
    assert report.frozen == names(frozen_groups)
    assert report.unchanged == []  # everything that should train did move
    assert set(report.trainable) == set(setup.initial_state) - set(report.frozen)
    assert all(report.layers[g] == 0 for g in frozen_groups) and report.layers["layers.4"] > 0
    assert audit(m, setup.initial_state, spec).frozen == report.frozen  # from the spec alone, too


def test_scratch_and_structure_need_no_copy_but_structure_checks_the_architecture():
    setup = prepare("scratch", mlp(), None, num_classes=3, lr=0.1)
    assert setup.transferred == [] and setup.penalty is None and setup.callbacks == []
    with pytest.raises(ValueError, match="has shape"):
        prepare("structure", mlp(), pretrained(hidden=(7, 5)), num_classes=3, lr=0.1)
    with pytest.raises(ValueError, match="needs pretrained weights"):
        prepare("finetune", mlp(), None, num_classes=3, lr=0.1)
    with pytest.raises(ValueError, match="does not have"):
        prepare("finetune", mlp(), pretrained(hidden=(6, 5, 4)), num_classes=3, lr=0.1)
    with pytest.raises(ValueError, match="n must be smaller"):
        prepare("layers:3:frozen", mlp(), pretrained(), num_classes=3, lr=0.1)


def test_same_seed_same_head_for_every_strategy():
    heads = [snapshot(prepare(s, mlp(seed=2), pretrained(), num_classes=3, lr=0.1).model.head)
             for s in ("scratch", "features", "finetune", "layers:1:frozen")]
    for h in heads[1:]:
        np.testing.assert_array_equal(h["weight"], heads[0]["weight"])


def test_audit_fails_loudly():
    setup = prepare("features", mlp(), pretrained(), num_classes=3, lr=0.1)
    setup.fit(loader(), steps=2, progress=False)
    frozen = dict(setup.model.named_parameters())["layers.0.weight"]
    frozen.data[0, 0] = np.nextafter(frozen.data[0, 0], np.float32(np.inf))  # one ulp
    with pytest.raises(RuntimeError, match="frozen parameter.*moved: layers.0.weight"):
        setup.audit()

    setup = prepare("features", mlp(), pretrained(), num_classes=3, lr=0.1)
    setup.model.unfreeze("layers.2")
    with pytest.raises(RuntimeError, match="requires_grad is True: layers.2.weight"):
        setup.audit()

    setup = prepare("finetune", mlp(), pretrained(), num_classes=3, lr=0.1)
    setup.model.freeze("layers.0.bias")
    with pytest.raises(RuntimeError, match="trains these but they are frozen: layers.0.bias"):
        setup.audit()

    # a head-only model: "features" has no backbone to freeze
    setup = prepare("features", mlp(hidden=()), pretrained(hidden=()), num_classes=3, lr=0.1)
    with pytest.raises(RuntimeError, match="claims to freeze layers but froze nothing"):
        setup.audit()


# ------------------------------------------------- discriminative rates
def test_discriminative_learning_rates_land_in_the_param_groups_and_the_updates():
    setup = prepare("finetune:lr_mult=0.1", mlp(), pretrained(), num_classes=3, lr=0.5, momentum=0.0)
    groups = setup.optimizer.param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.05, 0.05, 0.5]) and setup.lrs == [g["lr"] for g in groups]
    named = dict(setup.model.named_parameters())
    assert [[id(p) for p in g["params"]] for g in groups] == [[id(named[n]) for n in names([g])] for g in GROUPS]
    before = snapshot(setup.model)
    x, y = next(iter(loader()))
    loss = minitl.nn.functional.cross_entropy(setup.model(x), y)
    setup.optimizer.zero_grad()
    loss.backward()
    grads = {n: p.grad.numpy().copy() for n, p in named.items()}
    setup.optimizer.step()
    for n, p in named.items():
        lr = 0.5 if n.startswith("layers.4") else 0.05
        np.testing.assert_allclose(before[n] - p.numpy(), lr * grads[n], rtol=1e-5, atol=1e-7)


def test_adam_and_custom_optimizers():
    setup = prepare("finetune:lr_mult=0.1", mlp(), pretrained(), num_classes=3, lr=0.01, optimizer="adam")
    assert isinstance(setup.optimizer, optim.Adam) and setup.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    made = prepare("finetune", mlp(), pretrained(), num_classes=3, lr=0.01,
                   optimizer=lambda groups, lr: optim.SGD(groups, lr=lr, nesterov=True, momentum=0.5))
    assert made.optimizer.param_groups[0]["nesterov"]
    with pytest.raises(ValueError, match="optimizer must be"):
        prepare("finetune", mlp(), pretrained(), num_classes=3, lr=0.01, optimizer="lbfgs")


# --------------------------------------------------------- gradual unfreezing
def test_gradual_unfreezing_updates_newly_unfrozen_parameters():
    setup = prepare("gradual:every=2", mlp(), pretrained(), num_classes=3, lr=0.1, optimizer="adam")
    assert setup.frozen == names(GROUPS[:2])
    history = []

    class Record:
        def on_step_end(self, state):
            history.append(snapshot(state.model))

    setup.fit(loader(), steps=6, callbacks=[Record()], progress=False)
    start = setup.initial_state

    def moved(step, group):  # did `group` change during step `step` (1-based)?
        prev = start if step == 1 else history[step - 2]
        return any(not np.array_equal(prev[n], history[step - 1][n]) for n in names([group]))

    assert [moved(s, "layers.4") for s in range(1, 7)] == [True] * 6
    assert [moved(s, "layers.2") for s in range(1, 7)] == [False, False, True, True, True, True]
    assert [moved(s, "layers.0") for s in range(1, 7)] == [False] * 4 + [True] * 2
    assert setup.frozen == [] and setup.callbacks[0].unfrozen_at == {"layers.2": 2, "layers.0": 4}
    assert setup.audit().frozen == []

    m = mlp()
    with pytest.raises(ValueError, match="optimizer lacks layers.0.weight"):
        GradualUnfreeze(m, 2, optimizer=optim.SGD(m.head.parameters(), lr=0.1))


def test_gradual_audit_when_stopped_early():
    setup = prepare("gradual:every=4", mlp(), pretrained(), num_classes=3, lr=0.1)
    setup.fit(loader(), steps=5, progress=False)
    assert setup.audit().frozen == names(GROUPS[:1])  # layers.0 never unfroze and is bit-identical


# ---------------------------------------------------------------- L2-SP
def test_l2sp_penalty_value_and_gradient_by_hand():
    alpha, beta = 0.3, 0.07
    source = pretrained()
    setup = prepare(f"l2sp:alpha={alpha},beta={beta}", mlp(), source, num_classes=3, lr=0.1)
    named = dict(setup.model.named_parameters())
    rng = np.random.default_rng(0)
    for p in named.values():  # move away from w0 so the anchor term is not zero
        p.data = p.data + rng.normal(0, 0.1, p.shape).astype(np.float32)
    pen = setup.penalty(setup.model)
    w = {n: p.numpy().astype(np.float64) for n, p in named.items()}
    backbone = names(GROUPS[:2])
    want = (alpha / 2 * sum(((w[n] - source[n]) ** 2).sum() for n in backbone)
            + beta / 2 * sum((w[n] ** 2).sum() for n in names(GROUPS[2:])))
    assert pen.item() == pytest.approx(want, rel=1e-5)
    setup.optimizer.zero_grad()
    pen.backward()
    for n, p in named.items():
        expected = alpha * (w[n] - source[n]) if n in backbone else beta * w[n]
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-5, atol=1e-7)
    hist = setup.fit(loader(), steps=2, progress=False)
    assert hist[0]["penalty"] > 0


# --------------------------------------------------------- feature cache
def _counting(model):
    calls = {"n": 0}
    original = model.forward_features

    def counted(x):
        calls["n"] += 1
        return original(x)

    model.forward_features = counted
    return calls


@pytest.mark.parametrize("transform", [None, Normalize(0.5, 0.25)])
def test_feature_cache_matches_uncached_training(transform):
    runs = []
    for cache in (True, False):
        setup = prepare("features", mlp(), pretrained(), num_classes=3, lr=0.1)
        assert setup.cache_features
        calls = _counting(setup.model)
        train, test = loader(images=True, transform=transform), loader(n=20, images=True, transform=transform)
        hist = setup.fit(train, steps=7, eval_loader=test, eval_every=3, cache=cache, progress=False)
        setup.audit()
        runs.append((snapshot(setup.model), hist, calls["n"], train.epoch))
    (cached, h1, calls1, epoch1), (plain, h2, calls2, epoch2) = runs
    for n in cached:
        np.testing.assert_allclose(cached[n], plain[n], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r["loss"] for r in h1], [r["loss"] for r in h2], rtol=1e-5)
    assert h1.series("eval_acc") == h2.series("eval_acc")
    assert epoch1 == epoch2 == 3  # the caller's loader advanced as if it had been used
    assert calls1 == 2 and calls2 > 7  # once per data set, against once per batch


def test_no_cache_with_augmentation_or_dropout():
    setup = prepare("features", mlp(), pretrained(), num_classes=3, lr=0.1)
    flip = loader(images=True, transform=RandomHorizontalFlip(seed=0))
    with pytest.raises(ValueError, match="random transform"):
        setup.fit(flip, steps=1, cache=True, progress=False)
    calls = _counting(setup.model)
    setup.fit(flip, steps=2, progress=False)  # auto: falls back to the uncached path
    assert calls["n"] == 2
    assert not prepare("finetune", mlp(), pretrained(), num_classes=3, lr=0.1).cache_features
    list_batches = [(x, y) for x, y in loader()]
    feats = transfer.feature_loader(setup.model, list_batches)
    assert [f.shape for f, _ in feats] == [(len(y), 5) for _, y in list_batches]


# ----------------------------------------------------------------- drift
def test_weight_and_layer_drift_by_hand():
    m = mlp(hidden=(6,))
    ref = snapshot(m)
    named = dict(m.named_parameters())
    named["layers.0.weight"].data = ref["layers.0.weight"] * 1.5
    named["layers.0.bias"].data = ref["layers.0.bias"] + 1.0
    drift = weight_drift(m, ref)
    assert drift["layers.0.weight"] == pytest.approx(0.5, rel=1e-6) and drift["layers.2.weight"] == 0
    w, b = ref["layers.0.weight"].astype(np.float64), ref["layers.0.bias"].astype(np.float64)
    want = np.sqrt(((0.5 * w) ** 2).sum() + b.size) / np.sqrt((w ** 2).sum() + (b ** 2).sum())
    assert layer_drift(m, ref) == pytest.approx({"layers.0": want, "layers.2": 0.0}, rel=1e-6)
    zero = dict(ref, **{"layers.2.bias": np.zeros_like(ref["layers.2.bias"])})
    assert weight_drift(m, zero)["layers.2.bias"] == np.inf
    other_head = dict(ref, **{"layers.2.weight": np.zeros((9, 6), np.float32)})
    assert "layers.2.weight" not in weight_drift(m, other_head)  # a replaced head of another size


# ------------------------------------------------------------ LeNet, resume
def test_lenet_strategies_end_to_end():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 1, 28, 28), dtype=np.uint8)
    data = DataLoader((x, rng.integers(0, 2, 12)), batch_size=6, shuffle=True, seed=1, transform=Normalize(0.3, 0.3))
    minitl.manual_seed(0)
    source = snapshot(LeNet())
    for spec, frozen in (("layers:2:frozen", ["features.0", "features.3"]),
                         ("features", ["features.0", "features.3", "classifier.0", "classifier.2"])):
        minitl.manual_seed(1)
        setup = prepare(spec, LeNet(), source, num_classes=2, lr=0.05)
        setup.fit(data, steps=3, eval_loader=data, progress=False)
        report = setup.audit()
        assert report.frozen == names(frozen) and report.unchanged == []
        assert set(report.layers) == {"features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"}


def test_gradual_adam_resume_is_bit_identical(tmp_path):
    def run(steps, seed=1, **kw):
        setup = prepare("gradual:every=2,lr_mult=0.5", mlp(seed=seed), pretrained(), num_classes=3, lr=0.05,
                        optimizer="adam")
        setup.fit(loader(), steps=steps, progress=False, **kw)
        return setup

    straight = run(7)
    path = tmp_path / "gradual.safetensors"
    run(3, checkpoint=path, checkpoint_every=3)
    resumed = run(7, seed=9, checkpoint=path, resume=True)
    for n, value in snapshot(straight.model).items():
        np.testing.assert_array_equal(value, snapshot(resumed.model)[n])
    assert resumed.frozen == straight.frozen == [] and resumed.callbacks[0].unfrozen_at == {"layers.2": 2,
                                                                                          "layers.0": 4}


def test_audit_from_a_spec_after_gradual_unfreezing_finished():
    setup = prepare("gradual:every=1", mlp(), pretrained(), num_classes=3, lr=0.1)
    setup.fit(loader(), steps=4, progress=False)
    assert audit(setup.model, setup.initial_state, "gradual:every=1").frozen == []
