#!/usr/bin/env bash
# One command on a GPU machine without internet: build the CUDA kernels, run
# the GPU tests and the training benchmark, count kernel launches per step,
# and print a short table.
#
#   bash benchmarks/gpu_check.sh            # build for this GPU's architecture
#   MINITL_CUDA_ARCHS="80;90" bash benchmarks/gpu_check.sh
#
# Needs, already installed: numpy, cupy, pytest, hypothesis, setuptools,
# wheel, pybind11 (the install runs with --no-build-isolation --no-deps).
# Writes its logs under runs/gpu_check/.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=runs/gpu_check
mkdir -p "$LOG"

# Build only for the GPU at hand (minutes saved); fall back to sm_90.
if [ -z "${MINITL_CUDA_ARCHS:-}" ]; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
  export MINITL_CUDA_ARCHS="${cc:-90}"
fi
export MINITL_CUDA=1

echo "== install (MINITL_CUDA_ARCHS=$MINITL_CUDA_ARCHS)"
start=$SECONDS
if pip install --no-build-isolation --no-deps -e . >"$LOG/install.log" 2>&1; then
  install="ok ($((SECONDS - start)) s)"
else
  install="FAILED (see $LOG/install.log)"
  tail -n 30 "$LOG/install.log"
fi
echo "   $install"

echo "== CUDA status"
status=$(python -c 'import minitl.cuda as c; print(c.is_available(), "|", c.why_unavailable() or "", "|", c.device_name())' 2>&1)
echo "   $status"
kernels=$(python -c 'from minitl.kernels import cuda_kernels_status as s; print(s()[1])' 2>&1)
echo "   $kernels"

echo "== pytest -m gpu"
python -m pytest -m gpu -q -p no:cacheprovider tests >"$LOG/pytest.log" 2>&1
tests=$(tail -n 1 "$LOG/pytest.log")
tail -n 15 "$LOG/pytest.log"

echo "== kernel launches per training step (batch 256)"
# Method: one training step (forward, cross-entropy, backward, SGD momentum)
# runs under a relaxed CUDA stream capture (minitl.kernels.cuda_launches.count_kernels)
# and the captured graph's kernel nodes are counted: every launch, ours and
# CuPy's, and nothing else; the graph is discarded. The step calls the fused
# CrossEntropy Function directly, since F.cross_entropy range-checks targets
# with a device->host copy, which a capture forbids. If capture fails, only
# the launches made through minitl._C_cuda are counted.
python - <<'PY' 2>&1 | tee "$LOG/launches.txt"
import numpy as np, cupy as cp, minitl
from minitl import kernels, optim
from minitl.kernels import cuda_launches as ck
from minitl.models import LeNet, MLP
from minitl.ops import fused

def make_step(name, batch=256):
    minitl.manual_seed(0)
    model = LeNet() if name == "lenet" else MLP()
    model.to("cuda")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = minitl.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32), device="cuda")
    t = cp.asarray(rng.integers(0, 10, batch))
    def step():
        opt.zero_grad()
        fused.CrossEntropy.apply(model(x), t, label_smoothing=0.0).mean().backward()
        opt.step()
    return step

for path in ("native", "reference"):
    kernels.use(path)
    for name in ("lenet", "mlp"):
        step = make_step(name)
        step(); step()  # warm CuPy's pool and the momentum buffers
        try:
            c = ck.count_kernels(step)
            print(f"{name:6s} {'cuda' if path == 'native' else 'reference':9s} "
                  f"kernels={c['kernels']:4d} (through _C_cuda: {c['minitl']}) "
                  f"memcpy={c['memcpy']} memset={c['memset']} other={c['other']}")
        except Exception as exc:
            before = ck.launch_count()
            step(); cp.cuda.Stream.null.synchronize()
            print(f"{name:6s} {path:9s} capture failed ({type(exc).__name__}: {exc}); "
                  f"_C_cuda launches per step: {ck.launch_count() - before}")
kernels.use("native")
PY

echo "== bench_train.py --device cuda"
python benchmarks/bench_train.py --device cuda --batch 64 256 1024 --modes train \
  2>&1 | tee "$LOG/bench.txt"

echo
echo "================================ summary ================================"
printf '%-10s %s\n' "install" "$install"
printf '%-10s %s\n' "cuda" "$status"
printf '%-10s %s\n' "kernels" "$kernels"
printf '%-10s %s\n' "gpu tests" "$tests"
sed 's/^/launches   /' "$LOG/launches.txt"
echo "benchmark  (samples/s: CUDA kernels vs CuPy reference path)"
grep -vE "^\s*$" "$LOG/bench.txt" | tail -n 20 | sed 's/^/           /'
