"""The experiment runner: summaries and their intervals, the negative-transfer flag,
the grid on a tiny synthetic task, pretraining cache, files and plots."""
import csv
import json
import math

import numpy as np
import pytest

from minitl import io
from minitl.experiments import plots
from minitl.experiments import Grid, Source, run
from minitl.experiments.report import Results, markdown_table, summarize
from minitl.data.tasks import parse_classes, split_task
from minitl.models import build_model, spec_from_state
from tiny_tasks import synthetic_dataset

T_975_DF2 = 4.302652729749464  # Student's t, 97.5% quantile, 2 degrees of freedom (tables: 4.303)


def _runs(strategy, accs, k=5, source="src", target="tgt"):
    return [dict(source=None if strategy == "scratch" else source, target=target, strategy=strategy,
                 k=k, seed=seed, acc=a) for seed, a in enumerate(accs)]


# ------------------------------------------------------------- the arithmetic
def test_cell_mean_std_and_interval_known_values():
    (cell,) = summarize(_runs("scratch", [0.5, 0.6, 0.7]))
    half = T_975_DF2 * 0.1 / math.sqrt(3)
    assert cell["n"] == 3 and cell["seeds"] == [0, 1, 2]
    assert cell["mean"] == pytest.approx(0.6, abs=1e-12)
    assert cell["std"] == pytest.approx(0.1, abs=1e-12)
    assert cell["lo"] == pytest.approx(0.6 - half, abs=1e-12)
    assert cell["hi"] == pytest.approx(0.6 + half, abs=1e-12)
    assert cell["diff"] is None and not cell["negative_transfer"]


def test_paired_difference_and_negative_transfer_flag():
    runs = _runs("scratch", [0.60, 0.65, 0.70]) + _runs("features", [0.45, 0.52, 0.58])
    cells = {c["strategy"]: c for c in summarize(runs)}
    d = cells["features"]["diff"]
    # differences -0.15, -0.13, -0.12: mean -0.13333, std 0.0152753
    half = T_975_DF2 * 0.015275252316519449 / math.sqrt(3)
    assert d["n"] == 3
    assert d["mean"] == pytest.approx(-0.4 / 3, abs=1e-12)
    assert d["std"] == pytest.approx(0.015275252316519449, rel=1e-9)
    assert d["hi"] == pytest.approx(-0.4 / 3 + half, abs=1e-12)
    assert d["hi"] < 0 and d["p"] < 0.01
    assert cells["features"]["negative_transfer"] and not cells["features"]["positive_transfer"]
    assert "NEGATIVE TRANSFER" in markdown_table(list(cells.values()))


def test_pairing_is_by_seed_not_by_position():
    # Runs listed in another seed order: the pairs follow the seeds (differences
    # 0.15, 0.05, -0.05: std 0.1), not the positions (0.05 three times: std 0).
    scratch = _runs("scratch", [0.60, 0.65, 0.70])
    transfer = _runs("finetune", [0.75, 0.70, 0.65])[::-1]
    (_, cell) = summarize(scratch + transfer)
    assert cell["diff"]["mean"] == pytest.approx(0.05, abs=1e-12)
    assert cell["diff"]["std"] == pytest.approx(0.1, abs=1e-12)


def test_no_flag_when_interval_straddles_zero_or_is_undefined():
    wide = _runs("scratch", [0.6, 0.6, 0.6]) + _runs("finetune", [0.4, 0.7, 0.55])
    assert not summarize(wide)[1]["negative_transfer"]
    single = _runs("scratch", [0.9]) + _runs("finetune", [0.1])
    cell = summarize(single)[1]
    assert cell["diff"]["lo"] is None and not cell["negative_transfer"]  # one pair: no interval, no claim
    better = _runs("scratch", [0.5, 0.55, 0.6]) + _runs("finetune", [0.7, 0.76, 0.8])
    assert summarize(better)[1]["positive_transfer"]


def test_transfer_without_scratch_has_no_difference():
    (cell,) = summarize(_runs("finetune", [0.5, 0.6]))
    assert cell["diff"] is None and not cell["negative_transfer"]


# ------------------------------------------------------------------- the grid
@pytest.fixture(scope="module")
def tiny():
    train, test = synthetic_dataset(30), synthetic_dataset(12, seed=1)
    return split_task(train, test, "0-2", "synth"), split_task(train, test, "3-5", "synth")


def _grid(tiny, **kw):
    source, target = tiny
    opts = dict(sources=[Source(source.name, task=source)], targets=[target],
                strategies=["scratch", "features", "finetune"], k_shots=[2, 4], seeds=[0, 1],
                model="mlp:16", steps=12, batch_size=8, lr=0.05, pretrain_epochs=3, pretrain_lr=0.05,
                curve_points=3, curve_per_class=4)
    opts.update(kw)
    return Grid(**opts)


@pytest.fixture(scope="module")
def grid_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    return out, run(_grid(tiny), out_dir=out, log=None, plots=False)


def test_grid_runs_every_cell_with_one_budget(grid_run):
    _, res = grid_run
    assert len(res.runs) == 3 * 2 * 2 and len(res.cells) == 3 * 2
    assert {r["steps"] for r in res.runs} == {12}
    assert {r["n_test"] for r in res.runs} == {36}  # the full target test set, every time
    assert {r["train_size"] for r in res.runs if r["k"] == 4} == {12}
    for c in res.cells:
        assert (c["diff"] is None) == (c["strategy"] == "scratch")
        assert c["n"] == 2 and c["source"] == (None if c["strategy"] == "scratch" else "synth[0-2]")


def test_strategies_share_the_k_shot_sample_of_their_seed(grid_run):
    _, res = grid_run
    samples = {(r["k"], r["seed"], r["strategy"]): r["sample"] for r in res.runs}
    for k in (2, 4):
        for seed in (0, 1):
            assert len({samples[(k, seed, s)] for s in ("scratch", "features", "finetune")}) == 1
        assert samples[(k, 0, "scratch")] != samples[(k, 1, "scratch")]


def test_runs_record_curves_and_drift(grid_run):
    _, res = grid_run
    for r in res.runs:
        assert r["curve"]["eval_step"][-1] == 12 and len(r["curve"]["eval_acc"]) == 3
        assert len(r["curve"]["train_loss"]) == 12
    features = next(r for r in res.runs if r["strategy"] == "features")
    assert features["drift"]["layers.0"] == 0.0 and features["drift"]["layers.2"] > 0
    assert features["frozen"] == 2
    finetune = next(r for r in res.runs if r["strategy"] == "finetune")
    assert finetune["drift"]["layers.0"] > 0 and finetune["frozen"] == 0


def test_files_written(grid_run):
    out, res = grid_run
    data = json.loads((out / "results.json").read_text())
    assert len(data["cells"]) == 6 and len(data["runs"]) == 12
    assert data["config"]["steps"] == 12 and data["config"]["strategies"] == ["scratch", "features", "finetune"]
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"mean", "lo", "hi", "diff_mean", "negative_transfer"} <= set(rows[0])
    with open(out / "runs.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 12
    md = (out / "results.md").read_text()
    assert md.startswith("| target | k | strategy") and md.count("\n") == 2 + 6
    back = Results.load(out)
    assert back.cells == json.loads(json.dumps(res.cells)) and back.table() == res.table()


def test_pretrained_weights_cached_with_provenance(grid_run, tiny):
    out, res = grid_run
    record = res.pretrain["synth[0-2]"]
    assert record["per_seed"] is True and [d["seed"] for d in record["draws"]] == [0, 1]
    for draw in record["draws"]:
        assert draw["cached"] is False and draw["path"].endswith(f"-seed{draw['seed']}.safetensors")
        state, meta = io.load_with_metadata(draw["path"])
        assert meta["kind"] == "pretrain" and meta["dataset"] == "synth[0-2]"
        assert json.loads(meta["seed"]) == draw["seed"]  # each backbone pretrained with its own seed
        assert json.loads(meta["classes"]) == ["0", "1", "2"] and "minitl_version" in meta and "test_acc" in meta
        assert spec_from_state(state) == ("mlp:16", 3)
    # The same grid again: the weights are reused and every number repeats exactly.
    again = run(_grid(tiny), out_dir=out, log=None, plots=False)
    assert all(d["cached"] for d in again.pretrain["synth[0-2]"]["draws"])
    assert [r["acc"] for r in again.runs] == [r["acc"] for r in res.runs]
    # Other provenance (a different learning rate): trained again.
    other = run(_grid(tiny, pretrain_lr=0.02, k_shots=[2], seeds=[0], strategies=["finetune"]),
                out_dir=out, log=None, plots=False)
    assert other.pretrain["synth[0-2]"]["draws"][0]["cached"] is False


def test_each_seed_transfers_from_its_own_backbone(grid_run):
    out, res = grid_run
    assert res.config["pretrain_per_seed"] is True and res.per_seed
    for r in res.runs:
        assert r["backbone"] == (None if r["strategy"] == "scratch" else r["seed"])
    first, second = (io.load(d["path"]) for d in res.pretrain["synth[0-2]"]["draws"])
    assert any(not np.array_equal(first[k], second[k]) for k in first)  # two different draws
    # A features run starts from its seed's backbone: its frozen layer is that backbone's, bit for bit.
    cell = res.cell("features", 4)
    assert cell["backbones"] == 2


def test_between_backbone_std_from_swapped_runs(grid_run):
    _, res = grid_run
    # Each transfer run once more on the other seed's backbone, all else equal (same sample and head).
    assert len(res.swaps) == 2 * 2 * 2
    by_key = {(r["strategy"], r["k"], r["seed"]): r for r in res.runs}
    for s in res.swaps:
        twin = by_key[(s["strategy"], s["k"], s["seed"])]
        assert s["backbone"] == 1 - s["seed"] and s["sample"] == twin["sample"]
    for c in res.cells:
        if c["strategy"] == "scratch":
            assert c["backbone_std"] is None and c["backbones"] == 0
            continue
        d = [by_key[(c["strategy"], c["k"], seed)]["acc"] - s["acc"] for seed in (0, 1)
             for s in res.swaps if (s["strategy"], s["k"], s["seed"]) == (c["strategy"], c["k"], seed)]
        assert c["backbone_std"] == pytest.approx(math.sqrt(sum(v * v for v in d) / 2 / 2), abs=1e-12)
    assert "| backbone std |" in res.table()


def test_one_pretraining_draw_when_asked(tiny, tmp_path):
    res = run(_grid(tiny, pretrain_per_seed=False, k_shots=[2]), out_dir=tmp_path, log=None, plots=False)
    record = res.pretrain["synth[0-2]"]
    assert record["per_seed"] is False and len(record["draws"]) == 1
    assert record["draws"][0]["path"].endswith("synth_0-2_-mlp_16.safetensors")
    assert {r["backbone"] for r in res.runs if r["strategy"] != "scratch"} == {0}
    assert res.swaps == [] and all(c["backbone_std"] is None for c in res.cells)
    assert res.config["pretrain_per_seed"] is False


def test_backbone_spread_arithmetic():
    from minitl.experiments.report import backbone_spread

    members = [dict(seed=0, acc=0.80, backbone=0), dict(seed=1, acc=0.70, backbone=1)]
    swaps = [dict(seed=0, acc=0.76, backbone=1), dict(seed=1, acc=0.72, backbone=0)]
    # differences 0.04 and -0.02: var_b = (0.0016 + 0.0004) / 2 / 2 = 0.0005
    assert backbone_spread(members, swaps) == pytest.approx(math.sqrt(0.0005), abs=1e-12)
    assert backbone_spread(members, []) is None
    cells = summarize(_runs("scratch", [0.6, 0.7]) + [dict(m, source="s", target="tgt", strategy="finetune", k=5)
                                                     for m in members],
                      swaps=[dict(s, source="s", target="tgt", strategy="finetune", k=5) for s in swaps])
    cell = cells[1]
    assert cell["backbone_std"] == pytest.approx(math.sqrt(0.0005))
    assert cell["backbone_share"] == pytest.approx(0.0005 / 0.005)  # std of (0.8, 0.7) is 0.0707: var 0.005


def test_runs_record_cka_against_their_backbone(grid_run):
    _, res = grid_run
    for r in res.runs:
        assert list(r["cka"]) == ["layers.0", "layers.2"] and all(0 <= v <= 1 + 1e-9 for v in r["cka"].values())
    features = [r for r in res.runs if r["strategy"] == "features"]
    assert all(r["cka"]["layers.0"] == pytest.approx(1.0, abs=1e-9) for r in features)  # frozen: unchanged
    assert any(r["cka"]["layers.0"] < 1 - 1e-6 for r in res.runs if r["strategy"] == "finetune")
    from minitl.experiments import cka_markdown

    table = cka_markdown(res)
    assert table.splitlines()[0] == "| layer | scratch | features | finetune |"
    assert table.splitlines()[2].startswith("| layers.0 |") and "| 1.000 |" in table.splitlines()[2]


def test_transfer_across_datasets_checks_shapes_and_rebuilds_the_head(tiny):
    from minitl.data import ArrayDataset
    from minitl.data.tasks import Task

    source, target = tiny
    other_train = synthetic_dataset(10, classes=4, size=8, seed=3)
    inverted = ArrayDataset(255 - other_train.images, other_train.labels, name="Inverted")
    other_test = synthetic_dataset(5, classes=4, size=8, seed=4)
    other = Task("inverted", inverted, ArrayDataset(255 - other_test.images, other_test.labels, name="Inverted"))
    res = run(_grid(tiny, targets=[other], k_shots=[2], seeds=[0]), log=None)  # 3 source classes, 4 target
    assert {r["target"] for r in res.runs} == {"inverted"} and len(res.runs) == 3
    wide = Task("wide", synthetic_dataset(4, classes=3, size=10), synthetic_dataset(2, classes=3, size=10))
    lines = []
    with pytest.raises(ValueError, match=r"inputs of shape \(1, 8, 8\), target wide has \(1, 10, 10\)"):
        run(_grid(tiny, targets=[wide]), log=lines.append)
    assert lines == []  # before any training
    state = build_model("mlp:16", 3, (1, 10, 10)).state_dict()
    with pytest.raises(ValueError, match="do not fit mlp:16"):
        run(_grid(tiny, sources=[Source("given", state=state)]), log=None)


def test_cached_features_match_training_through_the_frozen_backbone(tiny):
    from minitl.experiments import run_one
    from minitl.transfer import FeatureCache

    source, target = tiny
    grid = _grid(tiny)
    state = build_model("mlp:16", 3, source.shape).state_dict()
    curve = target.test.k_shot(4, seed=0)
    cached = run_one(grid, "s", state, target, "features", 4, 1, target.test, curve, FeatureCache())
    direct = run_one(grid, "s", state, target, "features", 4, 1, target.test, curve, cache=None)
    assert cached["loss"] == pytest.approx(direct["loss"], rel=1e-4)
    assert cached["curve"]["train_loss"] == pytest.approx(direct["curve"]["train_loss"], rel=1e-4)
    assert cached["drift"] == pytest.approx(direct["drift"], rel=1e-3)


def test_learning_rate_per_strategy(tiny):
    grid = _grid(tiny, lr_by_strategy={"features": 0.5, "finetune:lr_mult=0.1": 0.2})
    assert grid.lr_for("features") == 0.5 and grid.lr_for("scratch") == 0.05
    assert grid.lr_for("finetune:lr_mult=0.1") == 0.2 and grid.lr_for("finetune") == 0.05
    res = run(_grid(tiny, lr_by_strategy={"features": 0.5}, k_shots=[2], seeds=[0]), log=None)
    assert {r["strategy"]: r["lr"] for r in res.runs} == {"scratch": 0.05, "features": 0.5, "finetune": 0.05}
    assert res.config["lr_by_strategy"] == {"features": 0.5}


def test_pretraining_is_deterministic(tiny):
    from minitl.experiments import pretrain

    grid, source = _grid(tiny), Source(tiny[0].name, task=tiny[0])
    first, record = pretrain(grid, source, None, log=None)
    second, _ = pretrain(grid, source, None, log=None)
    assert record["cached"] is False and list(first) == list(second)
    assert all(np.array_equal(first[k], second[k]) for k in first)


def test_ready_weights_skip_pretraining(tiny):
    source, target = tiny
    state = build_model("mlp:16", 3, source.shape).state_dict()
    res = run(_grid(tiny, sources=[Source("given", state=state)], k_shots=[2], seeds=[0]), log=None)
    assert res.pretrain["given"] == dict(per_seed=False, draws=[res.pretrain["given"]["draws"][0]])
    assert res.pretrain["given"]["draws"][0]["cached"] is True and not res.swaps
    assert {r["source"] for r in res.runs} == {None, "given"}


def test_scratch_only_needs_no_source(tiny):
    res = run(_grid(tiny, sources=[], strategies=["scratch"], k_shots=[2], seeds=[0, 1]), log=None)
    assert len(res.runs) == 2 and res.pretrain == {}


def test_bad_strategy_fails_before_any_training(tiny):
    lines = []
    with pytest.raises(ValueError, match="unknown strategy"):
        run(_grid(tiny, strategies=["scratch", "finetuned"]), log=lines.append)
    assert lines == []


def test_parse_classes():
    assert parse_classes("0-4") == [0, 1, 2, 3, 4]
    assert parse_classes("5,7, 9") == [5, 7, 9]
    assert parse_classes([1, 2]) == [1, 2]
    with pytest.raises(ValueError):
        parse_classes("4-0")


# ------------------------------------------------------------------------ plots
@pytest.mark.skipif(not plots.matplotlib_available(),
                    reason='matplotlib not installed (the optional extra: pip install "minitl[plot]")')
def test_plots_written(grid_run, tmp_path):
    _, res = grid_run
    paths = res.write(tmp_path, plots=True)
    for name in ("accuracy_vs_k.png", "learning_curves.png", "weight_drift.png", "cka.png"):
        png = tmp_path / name
        assert str(png) in paths and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_plots_are_skipped_with_one_line(grid_run, tmp_path, monkeypatch, capsys):
    _, res = grid_run
    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    paths = res.write(tmp_path, plots=True)
    assert not any(p.endswith(".png") for p in paths) and (tmp_path / "results.json").exists()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and 'pip install "minitl[plot]"' in out


def test_results_handle_nan_free_json(grid_run):
    _, res = grid_run
    text = json.dumps(res.to_dict(), allow_nan=False, default=lambda v: None)
    assert "NaN" not in text and np.isfinite(json.loads(text)["cells"][0]["mean"])


class _Jitter:
    """A user's own random transform: not one of minitl's Random* classes, but it owns a generator."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def __call__(self, x):
        x = x.astype(np.float32) / 255
        return x + self.rng.normal(0, 0.05, x.shape).astype(np.float32)


def test_grid_and_setup_share_one_rule_for_random_transforms(tiny):
    # Before the one feature cache, the grid knew only RandomCrop/RandomHorizontalFlip as random and
    # cached the features of one augmented draw of a user's own transform (silently wrong), while
    # Setup.fit refused to cache it. Now both ask minitl.data.transforms.is_random.
    from minitl.data.transforms import is_random
    from minitl.experiments import run_one
    from minitl.transfer import FeatureCache

    source, target = tiny
    assert is_random(_Jitter()) and not is_random(None)
    state = build_model("mlp:16", 3, source.shape).state_dict()
    curve = target.test.k_shot(4, seed=0)
    cache = FeatureCache()
    plain = run_one(_grid(tiny), "s", state, target, "features", 4, 1, target.test, curve, cache)
    assert plain["cached_features"] is True and len(cache) == 3  # train sample, curve set, test set
    jitter = run_one(_grid(tiny, transform=_Jitter()), "s", state, target, "features", 4, 1, target.test, curve,
                     FeatureCache())
    assert jitter["cached_features"] is False


def test_one_backbone_computes_the_test_features_once(tiny):
    from minitl.experiments import run_one
    from minitl.transfer import FeatureCache

    source, target = tiny
    grid, curve, cache = _grid(tiny), target.test.k_shot(4, seed=0), FeatureCache()
    state = build_model("mlp:16", 3, source.shape).state_dict()
    for seed in (0, 1):
        run_one(grid, "s", state, target, "features", 4, seed, target.test, curve, cache)
    assert len(cache) == 4  # two k-shot samples, one curve set, one test set
    other = {k: v * 2 for k, v in state.items()}  # another backbone: its own features
    run_one(grid, "s", other, target, "features", 4, 0, target.test, curve, cache)
    assert len(cache) == 7
