"""Hypothesis fuzzing of every reader: IDX, CIFAR, safetensors, npz, checkpoints.

Each reader gets a small valid file, then hypothesis-drawn mutations of it
(flipped bits, overwritten, inserted and deleted bytes, truncation; for the
gzip formats also mutations of the inflated bytes, recompressed; for
checkpoints also hand-edits of the JSON document). Only a ``ValueError`` or
an ``OSError`` may come out, and a refused checkpoint must leave the model,
the optimizer and the RNG as they were.

The fuzzing runs in one child process under a 2 GiB address-space limit
(``RLIMIT_AS``), so a reader that allocates what a hostile header declares
fails with ``MemoryError`` instead of exhausting the machine; the child
reports, per reader, how many inputs it tried and what they raised.
"""
from __future__ import annotations

import collections
import gzip
import io as pyio
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLES = int(os.environ.get("MINITL_FUZZ_EXAMPLES", "150"))  # per reader
MEMORY_CAP = 2 << 30


def test_readers_survive_mutated_files(tmp_path):
    out = tmp_path / "stats.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, __file__, str(out), str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    stats = json.loads(out.read_text())
    print("\nfuzzed inputs per reader and what they raised:")
    for reader, counts in stats.items():
        print(f"  {reader:<12} {sum(counts.values()):>4} inputs: {dict(sorted(counts.items()))}")
    assert set(stats) == set(READERS)
    for reader, counts in stats.items():
        assert sum(counts.values()) >= min(EXAMPLES, 20), (reader, counts)
        assert "ValueError" in counts, f"{reader}: no mutation was refused: {counts}"


# ------------------------------------------------------------ the child
def _seed_idx(d):
    from minitl.data import write_idx

    write_idx(os.path.join(d, "s-idx3-ubyte"), np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    return open(os.path.join(d, "s-idx3-ubyte"), "rb").read()


def _seed_cifar(d):
    from minitl.data.cifar import RECORD

    rec = np.random.default_rng(0).integers(0, 256, (2, RECORD), dtype=np.uint8)
    rec[:, 0] = [3, 7]
    buf = pyio.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.size = rec.nbytes
        tar.addfile(info, pyio.BytesIO(rec.tobytes()))
    return buf.getvalue()


def _seed_weights(d, suffix):
    from minitl import io

    path = os.path.join(d, "seed" + suffix)
    io.save({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], np.int64),
             "m": np.array([True, False])}, path, metadata={"seed": "0", "note": "é"})
    return open(path, "rb").read()


def _model():
    import minitl
    from minitl.models import MLP
    from minitl.optim import SGD

    minitl.manual_seed(5)
    model = MLP(4, (3,), 2)
    return model, SGD(model.parameters(), lr=0.1, momentum=0.9)


def _seed_checkpoint(d):
    import minitl
    from minitl.train import save_checkpoint

    model, opt = _model()
    x = minitl.tensor(np.ones((2, 4), np.float32))
    loss = minitl.nn.functional.cross_entropy(model(x), minitl.tensor(np.array([0, 1])))
    loss.backward()
    opt.step()
    path = os.path.join(d, "seed.safetensors")
    save_checkpoint(path, model, opt, step=1, epoch=0, extra={"history": [1.5, (2, 3)]})
    return open(path, "rb").read()


def _read_idx(path):
    from minitl.data import read_idx

    read_idx(path)


def _read_cifar(path):
    from minitl.data.cifar import read_cifar_archive

    read_cifar_archive(path, ["test_batch.bin"])


def _read_weights(path):
    from minitl import io

    io.load_with_metadata(path)


def _read_checkpoint(path):
    import minitl
    from minitl.train import load_checkpoint

    model, opt = _model()
    before = ([p.data.copy() for p in model.parameters()], json.dumps(minitl.core.random.get_state()),
              repr(opt.param_groups[0]["lr"]))
    try:
        load_checkpoint(path, model, opt)
    except (ValueError, OSError):
        after = ([p.data for p in model.parameters()], json.dumps(minitl.core.random.get_state()),
                 repr(opt.param_groups[0]["lr"]))
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before[0], after[0])), \
            "a refused checkpoint changed the model"
        assert before[1:] == after[1:] and not opt.state, "a refused checkpoint changed the RNG or optimizer"
        raise


# name -> (seed maker, reader, file suffix, gzip the seed?)
READERS = {
    "idx": (_seed_idx, _read_idx, "-idx3-ubyte", False),
    "idx.gz": (_seed_idx, _read_idx, "-idx3-ubyte.gz", True),
    "cifar": (_seed_cifar, _read_cifar, ".tar.gz", True),
    "safetensors": (lambda d: _seed_weights(d, ".safetensors"), _read_weights, ".safetensors", False),
    "npz": (lambda d: _seed_weights(d, ".npz"), _read_weights, ".npz", False),
    "checkpoint": (_seed_checkpoint, _read_checkpoint, ".safetensors", False),
}


def _mutations():
    from hypothesis import strategies as st

    pos = st.floats(0, 1, exclude_max=True)
    return st.lists(st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(0, 7)),
        st.tuples(st.just("set"), pos, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("truncate"), pos, st.just(0)),
        st.tuples(st.just("number"), pos, st.sampled_from([b"0", b"-1", b"4294967295", b"1099511627776",
                                                           b"1e308", b"NaN", b"[]", b"{}", b'"x"', b"\xff"])),
    ), min_size=1, max_size=4)


def _apply(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for kind, where, arg in edits:
        i = int(where * max(len(b), 1))
        if kind == "flip" and b:
            b[min(i, len(b) - 1)] ^= 1 << arg
        elif kind in ("set", "number"):
            b[i:i + len(arg)] = arg
        elif kind == "insert":
            b[i:i] = arg
        elif kind == "delete":
            del b[i:i + arg]
        elif kind == "truncate":
            del b[i:]
    return bytes(b)


def _doc_edit():
    """A hand-edit of a checkpoint's JSON document: some value somewhere replaced."""
    from hypothesis import strategies as st

    leaf = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**64), st.floats(allow_nan=True),
                     st.text(max_size=4), st.just("\ud800"))
    value = st.recursive(leaf, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                      st.dictionaries(st.text(max_size=8), kids, max_size=3)),
                         max_leaves=6)
    return st.tuples(st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=6), value)


def _edit_doc(data: bytes, edit, d) -> bytes:
    from minitl import io
    from minitl.train.checkpoint import META_KEY

    src = os.path.join(d, "edit-src.safetensors")
    open(src, "wb").write(data)
    arrays, meta = io.load_with_metadata(src)
    doc = json.loads(meta[META_KEY])
    path, value = edit
    node = doc
    for where in path[:-1]:  # walk down to a container
        kids = list(node.values()) if isinstance(node, dict) else node
        kids = [k for k in kids if isinstance(k, (dict, list)) and k]
        if not kids:
            break
        node = kids[int(where * len(kids))]
    if isinstance(node, dict) and node:
        node[list(node)[int(path[-1] * len(node))]] = value
    elif isinstance(node, list) and node:
        node[int(path[-1] * len(node))] = value
    meta[META_KEY] = json.dumps(doc)
    out = os.path.join(d, "edit-out.safetensors")
    io.save(arrays, out, metadata=meta)
    return open(out, "rb").read()


def child(stats_path: str, workdir: str) -> None:
    """Fuzz every reader; write ``{reader: {outcome: count}}`` to ``stats_path``."""
    import resource

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import minitl  # noqa: F401 - import (and load the kernels) before the cap

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    stats = {}
    for name, (make_seed, read, suffix, gz) in READERS.items():
        d = os.path.join(workdir, name.replace(".", "_"))
        os.makedirs(d, exist_ok=True)
        seed = make_seed(d)
        counts = collections.Counter()
        path = os.path.join(d, "fuzz" + suffix)
        layers = ["outer", "inner"] if gz else ["outer"]
        if name == "checkpoint":
            layers.append("doc")

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(layers), _mutations(), _doc_edit())
        def fuzz(layer, edits, doc_edit):
            if layer == "doc":
                data = _edit_doc(seed, doc_edit, d)
            elif layer == "inner":  # mutate the inflated bytes, then compress them properly
                data = gzip.compress(_apply(seed, edits), mtime=0)
            else:
                data = _apply(gzip.compress(seed, mtime=0) if gz else seed, edits)
            with open(path, "wb") as f:
                f.write(data)
            try:
                read(path)
            except (ValueError, OSError) as e:
                counts[type(e).__name__] += 1
                assert path in str(e) or "fuzz" in str(e), f"error does not name the file: {e}"
            else:
                counts["accepted"] += 1

        fuzz()
        stats[name] = dict(counts)
    with open(stats_path, "w") as f:
        json.dump(stats, f)


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
