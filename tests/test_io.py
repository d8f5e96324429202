"""Weight files: byte-exact safetensors, round trips, malformed files, atomic writes."""
import json
import os
import re
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minitl
from minitl import io as mio


def _st_file(header: bytes, data: bytes = b"", pad: bytes = b" ") -> bytes:
    """A safetensors file from a literal JSON header, padded to 8 bytes as the spec allows."""
    header += pad * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def _f32(*xs) -> bytes:
    return struct.pack(f"<{len(xs)}f", *xs)


# ---------------------------------------------------------------- byte-exact writing

def test_reference_vectors(tmp_path):
    """The safetensors crate's own test vectors (tensor.rs) come out byte for byte."""
    p = tmp_path / "a.safetensors"
    mio.save({"attn.0": np.arange(6, dtype=np.float32).reshape(1, 2, 3)}, p)
    assert p.read_bytes() == bytes(
        [64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
         116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
         58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
         101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
         0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64])
    mio.save({}, p)
    assert p.read_bytes() == bytes([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32])
    mio.save({}, p, metadata={"framework": "pt"})
    assert p.read_bytes() == bytes(
        [40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
         95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
         116, 34, 125, 125, 32, 32, 32, 32, 32])


def test_layout_matches_spec_by_hand(tmp_path):
    """Order: dtype rank (U64 > I64 > F64 > F32 > ... > U8) then name; metadata first, sorted."""
    sd = {
        "w": np.array([[1.0, 2.0]], dtype=np.float32),
        "b": np.array([0.5], dtype=np.float32),
        "mask": np.array([1, 0, 255], dtype=np.uint8),
        "steps": np.array(7, dtype=np.int64),  # a scalar: shape []
        "scale": np.array([2.0], dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    p = tmp_path / "m.safetensors"
    mio.save(sd, p, metadata={"seed": "0", "dataset": "fashion-mnist"})
    header = (
        b'{"__metadata__":{"dataset":"fashion-mnist","seed":"0"},'
        b'"steps":{"dtype":"I64","shape":[],"data_offsets":[0,8]},'
        b'"scale":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},'
        b'"b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},'
        b'"empty":{"dtype":"F32","shape":[0,3],"data_offsets":[20,20]},'
        b'"w":{"dtype":"F32","shape":[1,2],"data_offsets":[20,28]},'
        b'"mask":{"dtype":"U8","shape":[3],"data_offsets":[28,31]}}'
    )
    data = struct.pack("<q", 7) + struct.pack("<d", 2.0) + _f32(0.5) + _f32(1.0, 2.0) + b"\x01\x00\xff"
    assert p.read_bytes() == _st_file(header, data)
    assert len(p.read_bytes()[8:]) - len(data) == struct.unpack("<Q", p.read_bytes()[:8])[0]


def test_writes_c_order_little_endian(tmp_path):
    """Fortran-ordered, strided and big-endian inputs are stored as C-order little-endian."""
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    wide = np.zeros((2, 6), dtype=np.float32)
    wide[:, ::2] = base
    variants = {"f": np.asfortranarray(base), "big": base.astype(">f4"), "strided": wide[:, ::2]}
    for name, a in variants.items():
        p = tmp_path / f"{name}.safetensors"
        mio.save({"x": a}, p)
        assert p.read_bytes().endswith(_f32(0, 1, 2, 3, 4, 5))
        assert mio.load(p)["x"].dtype == np.float32


def test_metadata_none_vs_empty_and_unicode(tmp_path):
    p = tmp_path / "m.safetensors"
    mio.save({}, p, metadata={})
    assert p.read_bytes()[8:].rstrip() == b'{"__metadata__":{}}'
    # Non-ASCII stays UTF-8 (as serde_json writes it); control characters are escaped.
    mio.save({}, p, metadata={"classes": "T-shirt/top,Ankle boot", "note": "été\n\"ok\""})
    assert p.read_bytes()[8:].rstrip() == (
        '{"__metadata__":{"classes":"T-shirt/top,Ankle boot","note":"été\\n\\"ok\\""}}'
    ).encode("utf-8")


# ---------------------------------------------------------------- round trips

_DTYPES = [np.float32, np.float64, np.int64, np.uint8, np.int32, np.int8, np.uint16,
           np.uint32, np.uint64, np.int16, np.float16, np.bool_]
_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z0-9_]{1,6}){0,3}", fullmatch=True)
_ARRAYS = st.sampled_from(_DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)))


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@given(sd=st.dictionaries(_NAMES, _ARRAYS, max_size=6),
       meta=st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4))
def test_round_trip(tmp_path_factory, suffix, sd, meta):
    p = tmp_path_factory.mktemp("rt") / f"w{suffix}"
    mio.save(sd, p, metadata=meta)
    out, got_meta = mio.load_with_metadata(p)
    assert set(out) == set(sd)
    for k, a in sd.items():
        # Bit-exact (NaN payloads and -0.0 included), same dtype and shape.
        assert out[k].dtype == a.dtype and out[k].shape == a.shape
        assert out[k].tobytes() == np.ascontiguousarray(a).tobytes()
        assert out[k].flags.writeable and out[k].flags.c_contiguous
    assert got_meta == (meta or {})
    assert mio.load_metadata(p) == (meta or {})


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip_names_np_savez_would_reject(tmp_path, suffix):
    """Keys such as ``file`` collide with np.savez's own arguments; ours are written anyway."""
    sd = {"file": np.ones(2, np.float32), "allow_pickle": np.zeros(1), "a/b": np.arange(3)}
    mio.save(sd, tmp_path / f"w{suffix}")
    out = mio.load(tmp_path / f"w{suffix}")
    assert {k: v.tolist() for k, v in out.items()} == {k: v.tolist() for k, v in sd.items()}


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_accepts_tensors_modules_and_device_arrays(tmp_path, suffix):
    class FakeCupy:  # stands in for a cupy.ndarray: moved to host with .get()
        __module__ = "cupy._core.core"

        def get(self):
            return np.full(3, 2.0, np.float32)

    class Model:
        def state_dict(self):
            return {"t": minitl.tensor(np.eye(2, dtype=np.float32)), "g": FakeCupy()}

    p = tmp_path / f"w{suffix}"
    mio.save(Model(), p)
    out = mio.load(p)
    assert out["t"].tolist() == [[1, 0], [0, 1]] and out["g"].tolist() == [2, 2, 2]


@pytest.mark.gpu
def test_cupy_arrays_are_saved_from_host(tmp_path):
    cupy = pytest.importorskip("cupy")
    mio.save({"x": cupy.arange(4, dtype=cupy.float32)}, tmp_path / "g.safetensors")
    assert mio.load(tmp_path / "g.safetensors")["x"].tolist() == [0, 1, 2, 3]


def test_reads_foreign_layouts(tmp_path):
    """Header order != offset order, other JSON whitespace as padding, no padding at all."""
    header = (b'{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},'
              b'"a":{"dtype":"I32","shape":[],"data_offsets":[0,4]},'
              b'"__metadata__":{"k":"v"}}')
    data = struct.pack("<i", -3) + _f32(1.5)
    for pad in (b" ", b"\n", b"\t", b""):
        p = tmp_path / "f.safetensors"
        p.write_bytes(_st_file(header, data, pad))
        out, meta = mio.load_with_metadata(p)
        assert list(out) == ["a", "b"]  # file (offset) order
        assert out["a"].shape == () and out["a"] == -3 and out["b"].tolist() == [1.5]
        assert meta == {"k": "v"}


# ---------------------------------------------------------------- malformed safetensors

_GOOD = b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'


@pytest.mark.parametrize("content, problem", [
    (b"\x01\x00", "shorter than the 8-byte header length"),
    (struct.pack("<Q", 2**40) + b"{}", "bad header length .* limit"),
    (struct.pack("<Q", 64) + b"{}      ", "bad header length 64: longer than the 8 bytes"),
    (_st_file(b'{"x":\xff}'), "not valid UTF-8"),
    (_st_file(b'{"x":{"dtype":"F32",'), "invalid JSON"),
    (_st_file(b"[1,2]"), "not a JSON object"),
    (_st_file(b' {"x":1}'), "not a JSON object"),
    (_st_file(b'{"x":1,"x":2}'), "invalid JSON: duplicate key 'x'"),
    (_st_file(b'{"x":[1]}'), "entry for tensor 'x' is not an object"),
    (_st_file(b'{"x":{"dtype":"F32","shape":[2]}}', _f32(1, 2)), "exactly dtype, shape"),
    (_st_file(b'{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', _f32(1, 2)),
     "shape \\[-2\\], not a list of sizes"),
    (_st_file(b'{"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', _f32(1, 2)),
     "not a list of sizes"),
    (_st_file(b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}}', _f32(1, 2)),
     "not \\[begin, end\\]"),
    (_st_file(b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}', _f32(1, 2)),
     "'x' data_offsets \\[0, 16\\] out of range: the data section holds 8 bytes"),
    (_st_file(b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}', _f32(1, 2)),
     "begin > end"),
    (_st_file(b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
              b'"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', _f32(1, 2)),
     "tensor 'y' data_offsets \\[4, 8\\] overlap tensor 'x'"),
    (_st_file(b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', _f32(1, 2)),
     "hole in the data section: bytes \\[0, 4\\)"),
    (_st_file(_GOOD, _f32(1, 2) + b"junk"), "hole in the data section: bytes \\[8, 12\\)"),
    (_st_file(b'{"x":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}', _f32(1, 2)),
     "unknown dtype 'Q7'"),
    (_st_file(b'{"x":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}', _f32(1, 2)),
     "dtype BF16, which NumPy cannot represent"),
    (_st_file(b'{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', _f32(1, 2)),
     "'x' size mismatch: shape \\[3\\] of 4-byte elements needs 12 bytes, data_offsets give 8"),
    (_st_file(b'{"__metadata__":{"seed":0}}'), "value for 'seed' is int, not a string"),
    (_st_file(b'{"__metadata__":["a"]}'), "__metadata__ is not a map of strings"),
    (_st_file(b'{"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}}', b"\x01\x07"),
     "BOOL tensor 'm' holds bytes other than 0 and 1"),
])
def test_malformed_safetensors(tmp_path, content, problem):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(content)
    for read in (mio.load, mio.load_with_metadata):
        with pytest.raises(ValueError, match=re.escape(str(p)) + ": malformed safetensors file: .*"
                           + problem):
            read(p)


def test_deeply_nested_header_is_a_value_error(tmp_path):
    p = tmp_path / "deep.safetensors"
    p.write_bytes(_st_file(b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"))
    with pytest.raises(ValueError, match="invalid JSON"):
        mio.load(p)


# ---------------------------------------------------------------- npz specifics

class _Tripwire:
    """Unpickling this calls _tripped; loading must never get that far."""

    def __reduce__(self):
        return (_tripped, ())


_TRIPPED = []


def _tripped():
    _TRIPPED.append(True)
    return None


def test_npz_refuses_object_arrays_without_unpickling(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, w=np.ones(2), payload=np.array([_Tripwire()], dtype=object))
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*array 'payload' cannot be read"):
        mio.load(p)
    assert _TRIPPED == []


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.write_bytes(b"not a zip at all"), "not a zip archive"),
    (lambda p: np.save(open(p, "wb"), np.ones(3)), "not a zip archive"),
    (lambda p: zipfile.ZipFile(p, "w").writestr("notes.txt", "hi"), "member 'notes.txt' is not"),
    (lambda p: np.savez(p, __metadata__=np.ones(2)), "__metadata__ is not a 1-D uint8"),
    (lambda p: np.savez(p, __metadata__=np.frombuffer(b"{nope", np.uint8)), "not UTF-8 JSON"),
    (lambda p: np.savez(p, __metadata__=np.frombuffer(b'{"a":1}', np.uint8)), "map of strings"),
])
def test_malformed_npz(tmp_path, make, problem):
    p = tmp_path / "bad.npz"
    make(p)
    with pytest.raises(ValueError, match=re.escape(str(p)) + ": malformed .npz file: .*" + problem):
        mio.load_with_metadata(p)


def test_truncated_npz(tmp_path):
    p = tmp_path / "t.npz"
    mio.save({"w": np.arange(1000.0)}, p)
    p.write_bytes(p.read_bytes()[:-40])  # cut into the zip directory
    with pytest.raises(ValueError, match=re.escape(str(p))):
        mio.load(p)


def test_npz_is_readable_by_plain_numpy(tmp_path):
    p = tmp_path / "w.npz"
    mio.save({"w": np.arange(3.0)}, p, metadata={"seed": "1"})
    with np.load(p, allow_pickle=False) as npz:
        assert npz["w"].tolist() == [0, 1, 2]
        assert json.loads(npz["__metadata__"].tobytes()) == {"seed": "1"}


# ---------------------------------------------------------------- arguments

@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_bad_arguments(tmp_path, suffix):
    p = tmp_path / f"w{suffix}"
    with pytest.raises(ValueError, match="'__metadata__' is reserved"):
        mio.save({"__metadata__": np.ones(1)}, p)
    with pytest.raises(ValueError, match=r"state_dict\['o'\] has dtype object"):
        mio.save({"o": np.array([None], dtype=object)}, p)
    with pytest.raises(ValueError, match="complex"):
        mio.save({"c": np.ones(2, np.complex64)}, p)
    with pytest.raises(ValueError, match="metadata must map strings to strings"):
        mio.save({}, p, metadata={"seed": 0})
    assert os.listdir(tmp_path) == []  # nothing was written for any of them


def test_unknown_suffix(tmp_path):
    for f in (lambda p: mio.save({}, p), mio.load, mio.load_metadata):
        with pytest.raises(ValueError, match=r"w\.pt: unknown weight-file suffix '\.pt'"):
            f(tmp_path / "w.pt")


# ---------------------------------------------------------------- atomic writes

def _fail_midway(f, *args):
    f.write(b"partial bytes")
    raise RuntimeError("disk on fire")


@pytest.mark.parametrize("suffix, target, attr", [
    (".safetensors", "minitl.io.safetensors", "write"),
    (".npz", "minitl.io.weights", "_write_npz"),
    (".npz", "numpy.lib.format", "write_array"),
    (".safetensors", "os", "fsync"),
    (".safetensors", "os", "replace"),
])
def test_failed_write_keeps_old_file(tmp_path, monkeypatch, suffix, target, attr):
    p = tmp_path / f"w{suffix}"
    mio.save({"w": np.arange(4.0)}, p, metadata={"v": "old"})
    before = p.read_bytes()

    def boom(*args, **kwargs):
        if args and hasattr(args[0], "write"):
            args[0].write(b"partial bytes")
        raise OSError("simulated failure")
    monkeypatch.setattr(f"{target}.{attr}", boom)
    with pytest.raises(OSError, match="simulated failure"):
        mio.save({"w": np.zeros(4), "v": np.ones(9)}, p, metadata={"v": "new"})
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == [p.name]  # no temporary file left behind
    assert mio.load_metadata(p) == {"v": "old"}


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr("minitl.io.safetensors.write", _fail_midway)
    with pytest.raises(RuntimeError, match="disk on fire"):
        mio.save({"w": np.ones(2)}, tmp_path / "new.safetensors")
    assert os.listdir(tmp_path) == []


def test_overwrite_keeps_permissions(tmp_path):
    p = tmp_path / "w.safetensors"
    mio.save({"w": np.ones(1)}, p)
    os.chmod(p, 0o640)
    mio.save({"w": np.zeros(1)}, p)
    assert os.stat(p).st_mode & 0o777 == 0o640
    assert mio.load(p)["w"].tolist() == [0.0]


# ---------------------------------------------------------------- provenance

def test_provenance():
    meta = mio.provenance(dataset="fashion-mnist", classes=[0, 1, 2], seed=np.int64(3), steps=500)
    assert meta["minitl_version"] == minitl.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["created_utc"])
    assert meta["dataset"] == "fashion-mnist"
    assert json.loads(meta["classes"]) == [0, 1, 2]
    assert (meta["seed"], meta["steps"]) == ("3", "500")
    assert all(isinstance(v, str) for v in meta.values())
    assert mio.provenance(created_utc="fixed")["created_utc"] == "fixed"
    assert mio.provenance(root=__import__("pathlib").Path("/data"))["root"] == '"/data"'
