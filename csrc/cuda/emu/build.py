"""Build ``_C_cuda_emu``: minitl's CUDA kernels compiled for the CPU.

Usage: ``python csrc/cuda/emu/build.py OUT_DIR [--asan]``. Each ``.cu`` file is
copied with its ``kernel<<<grid, block, smem, stream>>>(args)`` launches
rewritten as ``emu::launch(grid, block, [=] { kernel(args); })`` and compiled
by g++ against the stand-in ``cuda_runtime.h`` beside this file, then linked
with the unchanged binding. The kernels' own source is what runs, so their
indexing, barriers and reductions can be checked against the reference on a
machine without a GPU. Prints the module's path.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
LAUNCH = re.compile(r"([A-Za-z_]\w*(?:<[^<>;]*>)?)\s*<<<")


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def rewrite_launches(src: str) -> str:
    out, pos = [], 0
    for m in LAUNCH.finditer(src):
        if m.start() < pos:
            continue
        end_cfg = src.index(">>>", m.end())
        cfg = _split_top(src[m.end():end_cfg])
        i = src.index("(", end_cfg)
        depth, j = 0, i
        while True:  # find the argument list's closing parenthesis
            depth += {"(": 1, ")": -1}.get(src[j], 0)
            if depth == 0:
                break
            j += 1
        args = src[i + 1:j]
        out.append(src[pos:m.start()])
        out.append(f"emu::launch(dim3({cfg[0]}), dim3({cfg[1]}), [=]() {{ {m.group(1)}({args}); }})")
        pos = j + 1
    out.append(src[pos:])
    return "".join(out)


def build(out_dir: str, asan: bool = False) -> str:
    import pybind11

    work = os.path.join(out_dir, "emu_src")
    os.makedirs(work, exist_ok=True)
    for h in glob.glob(os.path.join(SRC, "*.h")) + glob.glob(os.path.join(SRC, "*.cuh")):
        shutil.copy(h, work)
    sources = []
    for cu in sorted(glob.glob(os.path.join(SRC, "*.cu"))):
        dst = os.path.join(work, os.path.basename(cu)[:-3] + ".cpp")
        with open(cu) as f:
            text = rewrite_launches(f.read())
        with open(dst, "w") as f:
            f.write(text)
        sources.append(dst)
    with open(os.path.join(SRC, "bind.cpp")) as f:
        bind = f.read().replace("PYBIND11_MODULE(_C_cuda,", "PYBIND11_MODULE(_C_cuda_emu,")
    with open(os.path.join(work, "bind.cpp"), "w") as f:
        f.write(bind)
    sources += [os.path.join(work, "bind.cpp"), os.path.join(HERE, "emu.cpp")]
    target = os.path.join(out_dir, "_C_cuda_emu" + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = ["g++", "-std=c++20", "-O1", "-g0", "-fPIC", "-shared", "-pthread",
           "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-function", "-Wno-unused-variable",
           "-DMINITL_CUDA_ARCHS=\"emu\"", f"-I{HERE}", f"-I{work}",
           f"-I{pybind11.get_include()}", f"-I{sysconfig.get_paths()['include']}",
           *sources, "-o", target]
    if asan:
        cmd[1:1] = ["-fsanitize=address", "-fno-omit-frame-pointer"]
    subprocess.run(cmd, check=True)
    return target


if __name__ == "__main__":
    print(build(sys.argv[1], asan="--asan" in sys.argv))
