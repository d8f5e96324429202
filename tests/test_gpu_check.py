"""benchmarks/gpu_check.sh on a machine without a GPU: it must fail, in one line.

Before, it built the extension, skipped every GPU test and exited 0, which
read as a pass. On a GPU machine this test skips (the script would build and
run everything there: that is its job, not a unit test's).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_fails_in_one_line_without_a_gpu():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not found")
    if shutil.which("nvidia-smi"):
        pytest.skip("nvidia-smi present: this may be a GPU machine; run gpu_check.sh itself")
    import minitl.cuda

    if minitl.cuda.is_available():
        pytest.skip("a GPU is usable here; run gpu_check.sh itself")
    runs = os.path.join(ROOT, "runs", "gpu_check")
    existed = os.path.exists(runs)
    out = subprocess.run([bash, os.path.join(ROOT, "benchmarks", "gpu_check.sh")],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHON": sys.executable})
    lines = (out.stdout + out.stderr).splitlines()
    assert out.returncode != 0, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("gpu_check: FAILED: no GPU"), lines
    assert "nothing was tested" in lines[0]
    assert os.path.exists(runs) == existed, "it started work (logs) before finding no GPU"
