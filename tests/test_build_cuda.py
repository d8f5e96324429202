"""setup.py's rebuild rules for minitl._C_cuda, checked without nvcc or a GPU.

A fake nvcc writes empty objects; "linking" is simulated by ageing every file
and stamping the module newest, and whether setuptools would relink is
decided by its own rule: some source or ``ext.depends`` entry is newer than
the module (build_ext.build_extension's newer_group check).
"""
from __future__ import annotations

import importlib.util
import os
import stat
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup_py():
    pytest.importorskip("pybind11")
    spec = importlib.util.spec_from_file_location("minitl_setup", os.path.join(ROOT, "setup.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # not __main__: defines the helpers, builds nothing
    return mod


@pytest.fixture
def tree(tmp_path):
    """Two .cu files, a header, a fake nvcc logging what it compiles."""
    src = tmp_path / "csrc"
    src.mkdir()
    for name in ("a.cu", "b.cu", "common.cuh"):
        (src / name).write_text(f"// {name}\n")
    log = tmp_path / "nvcc.log"
    nvcc = tmp_path / "nvcc"
    nvcc.write_text(f"#!{sys.executable}\nimport sys\n"
                    "out = sys.argv[sys.argv.index('-o') + 1]\n"
                    "open(out, 'w').close()\n"
                    f"open({str(log)!r}, 'a').write(sys.argv[2] + '\\n')\n")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    return tmp_path, src, nvcc, log


def _compiled(log):
    """Basenames compiled since the last call."""
    names = [os.path.basename(p) for p in log.read_text().split()] if log.exists() else []
    log.write_text("")
    return sorted(names)


def _link(root, so):
    """Pretend to link: every file gets an old mtime, the module a newer one."""
    base = time.time() - 1000
    for dirpath, _, files in os.walk(root):
        for f in files:
            os.utime(os.path.join(dirpath, f), (base, base))
    so.write_text("module")
    os.utime(so, (base + 1, base + 1))


def _relinks(depends, so):
    return any(os.path.getmtime(d) > os.path.getmtime(so) for d in depends)


def _build(setup_py, root, src, nvcc, archs):
    """What BuildExtWithCuda._build_cuda does before build_extension: ext.depends."""
    flags = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    out_dir = root / "build" / "cuda" / ("sm_" + "_".join(archs))
    headers = [str(src / "common.cuh")]
    objects = setup_py._nvcc_compile(str(nvcc), [str(src / "a.cu"), str(src / "b.cu")], headers,
                                     str(out_dir), flags)
    config = "\n".join([str(nvcc), *setup_py.NVCC_FLAGS, *flags])
    return [*headers, *setup_py._cuda_link_depends(objects, str(root / "build" / "cuda" / "link.stamp"),
                                                   config)]


def test_module_is_relinked_after_a_source_or_architecture_change(setup_py, tree):
    root, src, nvcc, log = tree
    so = root / "_C_cuda.so"
    deps = _build(setup_py, root, src, nvcc, ["75", "90"])
    assert _compiled(log) == ["a.cu", "b.cu"]
    _link(root, so)

    deps = _build(setup_py, root, src, nvcc, ["75", "90"])  # nothing changed
    assert _compiled(log) == [] and not _relinks(deps, so)

    (src / "b.cu").write_text("// b.cu, edited\n")
    deps = _build(setup_py, root, src, nvcc, ["75", "90"])
    assert _compiled(log) == ["b.cu"] and _relinks(deps, so)
    _link(root, so)

    (src / "common.cuh").write_text("// common.cuh, edited\n")
    deps = _build(setup_py, root, src, nvcc, ["75", "90"])
    assert _compiled(log) == ["a.cu", "b.cu"] and _relinks(deps, so)
    _link(root, so)

    deps = _build(setup_py, root, src, nvcc, ["90"])  # MINITL_CUDA_ARCHS=90
    assert _compiled(log) == ["a.cu", "b.cu"] and _relinks(deps, so)
    _link(root, so)

    # Back to the first list: its objects are reused (older than the module),
    # yet the module was linked for sm_90 only and must be relinked.
    deps = _build(setup_py, root, src, nvcc, ["75", "90"])
    assert _compiled(log) == [] and _relinks(deps, so)
    _link(root, so)
    deps = _build(setup_py, root, src, nvcc, ["75", "90"])
    assert _compiled(log) == [] and not _relinks(deps, so)


def test_nvcc_builds_with_line_info(setup_py):
    """compute-sanitizer can only name source lines of code built with -lineinfo."""
    assert "-lineinfo" in setup_py.NVCC_FLAGS and "-G" not in setup_py.NVCC_FLAGS
