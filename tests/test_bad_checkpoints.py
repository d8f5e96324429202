"""Checkpoints are checked whole before anything is restored; interrupted saves leave no litter.

A bad checkpoint (a flipped bit in its header or its tensors, a zeroed tail,
hand-edited metadata, 100,000-deep JSON) raises one ``ValueError`` naming the
file and the first problem, and the model, the optimizer, minitl's RNG, the
loader and the scheduler are exactly as they were.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minitl
from minitl import io as mio
from minitl.data import ArrayDataset, DataLoader
from minitl.models import MLP
from minitl.optim import SGD, StepLR
from minitl.train import fit, load_checkpoint, save_checkpoint
from minitl.train.checkpoint import META_KEY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make(seed=0):
    minitl.manual_seed(seed)
    model = MLP(6, (5,), 3)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt


def snapshot(model, opt):
    return ({k: v.copy() for k, v in model.state_dict().items()},
            {k: v for k, v in opt.param_groups[0].items() if k != "params"},
            {i: {k: np.array(v) for k, v in s.items()} for i, s in enumerate(opt.state.values())},
            json.dumps(minitl.core.random.get_state()))


def same_snapshot(a, b):
    return (a[0].keys() == b[0].keys() and all(np.array_equal(a[0][k], b[0][k]) for k in a[0])
            and a[1] == b[1] and a[2].keys() == b[2].keys()
            and all(np.array_equal(a[2][i][k], b[2][i][k]) for i in a[2] for k in a[2][i]) and a[3] == b[3])


@pytest.fixture()
def ckpt(tmp_path):
    """A real checkpoint after a few momentum steps."""
    model, opt = make()
    x = minitl.tensor(np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32))
    y = minitl.tensor(np.arange(8) % 3)
    fit(model, [(x, y)], opt, steps=3, progress=False)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, opt, step=3, epoch=1, extra={"note": (1, 2)})
    return path


def refused(path, match):
    """Loading ``path`` raises a ValueError naming it and ``match``, and changes nothing."""
    model, opt = make(seed=7)
    before = snapshot(model, opt)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": .*" + match):
        load_checkpoint(path, model, opt)
    assert same_snapshot(before, snapshot(model, opt)), "a refused checkpoint changed the model/optimizer/RNG"


def edit_doc(path, change):
    arrays, meta = mio.load_with_metadata(path)
    doc = json.loads(meta[META_KEY])
    change(doc, arrays)
    meta[META_KEY] = json.dumps(doc)
    mio.save(arrays, path, metadata=meta)


def test_good_checkpoint_restores(ckpt):
    model, opt = make(seed=7)
    info = load_checkpoint(ckpt, model, opt)
    assert info["step"] == 3 and info["extra"] == {"note": (1, 2)}


@pytest.mark.parametrize("change, problem", [
    (lambda d, a: d.pop("requires_grad"), "lacks \\['requires_grad'\\]"),
    (lambda d, a: d.update(step="3"), "field 'step' is '3'"),
    (lambda d, a: d.update(step=-1), "field 'step' is -1"),
    (lambda d, a: d.update(rng=[1, 2]), "field 'rng'"),
    (lambda d, a: d["rng"].update(state={"state": "x", "inc": 1}), "invalid PCG64 state"),
    (lambda d, a: d.update(version=1), "format version 1"),
    (lambda d, a: d.update(surprise=True), "unknown field"),
    (lambda d, a: d["requires_grad"].update({"layers.0.weight": "yes"}), "field 'requires_grad'"),
    (lambda d, a: d["optimizer"].pop("param_groups"), "optimizer state must be the dict"),
    (lambda d, a: d["optimizer"]["param_groups"][0].update(lr="fast"), "option 'lr' is 'fast'"),
    (lambda d, a: d["optimizer"]["param_groups"].append({"params": []}), "2 parameter groups"),
    (lambda d, a: d["optimizer"]["state"]["__items__"][0][1]["momentum_buffer"].update(__array__="optimizer/99"),
     "refers to tensor 'optimizer/99'"),
    (lambda d, a: d["optimizer"]["state"]["__items__"][0].__setitem__(0, 40), "parameter 40"),
    (lambda d, a: d["optimizer"]["state"].update(__items__=[[{"a": 1}, {}]]), "cannot be a dict key"),
    (lambda d, a: d.update(extra={"__tuple__": 5}), "malformed tuple"),
])
def test_edited_metadata_is_refused_before_anything_changes(ckpt, change, problem):
    edit_doc(ckpt, change)
    refused(ckpt, problem)


def test_deep_json_is_refused(ckpt):
    arrays, meta = mio.load_with_metadata(ckpt)
    doc = json.loads(meta[META_KEY])
    meta[META_KEY] = json.dumps(doc)[:-1] + ',"extra2":' + "[" * 100_000 + "]" * 100_000 + "}"
    mio.save(arrays, ckpt, metadata=meta)
    refused(ckpt, "nests deeper than")


def test_renamed_or_reshaped_tensor_is_refused(ckpt):
    arrays, meta = mio.load_with_metadata(ckpt)
    arrays["model/clas{ifier.4.weight"] = arrays.pop("model/layers.2.weight")
    mio.save(arrays, ckpt, metadata=meta)
    refused(ckpt, "(SHA-256|do not match)")


def test_unknown_tensor_group_is_refused(ckpt):
    arrays, meta = mio.load_with_metadata(ckpt)
    arrays["junk/0"] = np.ones(2)
    mio.save(arrays, ckpt, metadata=meta)
    refused(ckpt, "tensor 'junk/0' belongs to no known group")


def test_flipped_tensor_bytes_and_zeroed_tail_fail_the_digest(ckpt):
    good = ckpt.read_bytes()
    header = 8 + int.from_bytes(good[:8], "little")
    for at in (header + 3, len(good) - 2):
        bad = bytearray(good)
        bad[at] ^= 0x04
        ckpt.write_bytes(bytes(bad))
        refused(ckpt, "tensor bytes are damaged")
    ckpt.write_bytes(good[:-16] + bytes(16))
    refused(ckpt, "tensor bytes are damaged")


def test_flipped_header_bits_never_escape_as_other_errors(ckpt):
    good = ckpt.read_bytes()
    header = 8 + int.from_bytes(good[:8], "little")
    rng = np.random.default_rng(0)
    kinds = set()
    for at in rng.choice(np.arange(8, header), 150, replace=False):
        bad = bytearray(good)
        bad[at] ^= 1 << int(rng.integers(0, 8))
        ckpt.write_bytes(bytes(bad))
        model, opt = make(seed=7)
        before = snapshot(model, opt)
        try:
            load_checkpoint(ckpt, model, opt)
        except ValueError as e:
            assert str(ckpt) in str(e)
            kinds.add("ValueError")
            assert same_snapshot(before, snapshot(model, opt)), f"bit at byte {at}: refused after changing state"
        else:
            kinds.add("loaded")
    assert "ValueError" in kinds


def test_fit_resume_refuses_a_bad_loader_state_without_touching_the_model(tmp_path):
    data = ArrayDataset(np.zeros((12, 1, 2, 3), np.uint8), np.arange(12) % 3)
    model, opt = make()
    loader = DataLoader(data, batch_size=4, shuffle=True, seed=1)
    path = tmp_path / "run.safetensors"
    fit(model, loader, opt, steps=2, checkpoint=path, progress=False, scheduler=StepLR(opt, 5))
    arrays, meta = mio.load_with_metadata(path)
    doc = json.loads(meta[META_KEY])
    doc["extra"]["loader"]["transform_rngs"] = [{"bit_generator": "PCG64"}]
    meta[META_KEY] = json.dumps(doc)
    mio.save(arrays, path, metadata=meta)
    model2, opt2 = make(seed=3)
    scheduler = StepLR(opt2, 5)
    before = snapshot(model2, opt2)
    loader2 = DataLoader(data, batch_size=4, shuffle=True, seed=9)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*transform generator"):
        fit(model2, loader2, opt2, steps=4, checkpoint=path, resume=True, progress=False, scheduler=scheduler)
    assert same_snapshot(before, snapshot(model2, opt2)) and loader2.seed == 9


# ------------------------------------------------------------------ 6. saves
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_save_removes_stale_temporaries_of_dead_writers_only(tmp_path):
    target = tmp_path / "w.safetensors"
    dead = tmp_path / f".w.safetensors.{_dead_pid()}.abc123.tmp"
    alive = tmp_path / f".w.safetensors.{os.getppid()}.def456.tmp"  # a running process
    other = tmp_path / f".v.safetensors.{_dead_pid()}.xyz.tmp"      # another target's
    for p in (dead, alive, other):
        p.write_bytes(b"partial")
        os.utime(p, (time.time() - 60, time.time() - 60))
    mio.save({"w": np.ones(2)}, target)
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, other.name, target.name])


KILLER = """
import os, signal, sys
import numpy as np
from minitl import io
real = os.replace
def die(*a):
    os.kill(os.getpid(), signal.SIGKILL)   # between write and rename
os.replace = die
io.save({"w": np.arange(50000.0)}, sys.argv[1])
"""


def test_kill_between_write_and_rename_leaves_at_most_one_temporary(tmp_path):
    target = tmp_path / "w.safetensors"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for i in range(2):
        proc = subprocess.run([sys.executable, "-c", KILLER, str(target)], env=env, timeout=120)
        assert proc.returncode == -signal.SIGKILL
        leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
        assert len(leftovers) == 1, leftovers
    mio.save({"w": np.ones(2)}, target)
    assert os.listdir(tmp_path) == [target.name]
