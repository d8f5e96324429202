#!/usr/bin/env bash
# One command on a GPU machine without internet: check the GPU, driver and
# toolkit, build the CUDA kernels, run the GPU tests (plain, under
# compute-sanitizer when it is installed, and with CuPy's per-thread default
# stream), count kernel launches per step, run the training benchmark, and
# print a short table.
#
#   bash benchmarks/gpu_check.sh            # build for this GPU's architecture
#   MINITL_CUDA_ARCHS="80;90" bash benchmarks/gpu_check.sh
#
# Exits 0 only when the extension built, runs on this GPU, and every GPU
# test ran and passed (no skip). Without a GPU it prints one line and exits 2;
# a missing requirement (toolkit part, Python package) is named, exit 1.
# Needs, already installed: numpy, cupy, pytest, hypothesis, setuptools,
# wheel, pybind11 (the install runs with --no-build-isolation --no-deps).
# Writes its logs under runs/gpu_check/. PYTHON picks the interpreter.
#
# Not -e: after the build, every step runs and reports; the exit status
# collects their failures.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"

# ------------------------------------------------------------ a GPU at all?
# First, and quietly: without a GPU nothing below can mean anything.
gpu=""
if command -v nvidia-smi >/dev/null 2>&1 \
    && out=$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null); then
  gpu=$(echo "$out" | grep ',' | head -n 1)  # a failing nvidia-smi explains itself on stdout
fi
if [ -z "$gpu" ]; then  # nvidia-smi can be missing in a container that has a GPU
  cupy_says=$("$PY" -c '
import cupy
try:
    print(cupy.cuda.runtime.getDeviceCount(), "devices")
except Exception:
    print("0 devices (no driver answered)")' 2>/dev/null) || cupy_says="not importable"
  n=${cupy_says%% *}
  case "$n" in ''|*[!0-9]*) n=0 ;; esac
  if [ "$n" -lt 1 ]; then
    smi=$(command -v nvidia-smi >/dev/null 2>&1 && echo "no GPU listed" || echo "not found")
    echo "gpu_check: FAILED: no GPU on this machine (nvidia-smi: $smi; CuPy: $cupy_says); nothing was tested"
    exit 2
  fi
  gpu=$("$PY" -c 'import cupy; d = cupy.cuda.runtime.getDeviceProperties(0); print(d["name"].decode(), str(d["major"]) + "." + str(d["minor"]), sep=", ")' 2>/dev/null)
fi

LOG=runs/gpu_check
mkdir -p "$LOG"
failures=()
fail_now() { echo "gpu_check: FAILED: $*"; exit 1; }

# ------------------------------------------------------------------ versions
nvcc=""
for c in "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc; do
  if [ -n "$c" ] && [ -x "$c" ]; then nvcc="$c"; break; fi
done
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
driver_cuda=$("$PY" -c 'import cupy; v = cupy.cuda.runtime.driverGetVersion(); print(f"{v // 1000}.{v % 1000 // 10}")' 2>/dev/null)
[ -n "$driver_cuda" ] || driver_cuda=$(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | awk '{print $3}')
toolkit=""
[ -n "$nvcc" ] && toolkit=$("$nvcc" --version 2>/dev/null | grep -o 'release [0-9.]*' | awk '{print $2}')
cupy_v=$("$PY" -c 'import cupy; v = cupy.cuda.runtime.runtimeGetVersion(); print(cupy.__version__, f"(CUDA runtime {v // 1000}.{v % 1000 // 10})")' 2>&1 | tail -n 1)
echo "== versions"
echo "   GPU       ${gpu}"
echo "   driver    ${driver:-?} (supports CUDA ${driver_cuda:-?})"
echo "   toolkit   ${toolkit:+CUDA $toolkit, }${nvcc:-nvcc not found}"
echo "   CuPy      ${cupy_v}"
sanitizer=$(command -v compute-sanitizer 2>/dev/null)
if [ -z "$sanitizer" ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" ]; then
  sanitizer="${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer"
fi
echo "   sanitizer ${sanitizer:-compute-sanitizer not found (its steps are skipped)}"

# -------------------------------------------------------------- requirements
# The build needs the full toolkit, not only a driver or CuPy's wheels.
missing=()
[ -n "$nvcc" ] || missing+=("nvcc")
if [ -n "$nvcc" ]; then
  home="${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$nvcc")")")}"
  ls "$home"/include/cuda_runtime.h "$home"/targets/*/include/cuda_runtime.h >/dev/null 2>&1 \
    || missing+=("the CUDA headers (cuda_runtime.h under $home)")
  ls "$home"/lib64/libcudart_static.a "$home"/lib/libcudart_static.a \
     "$home"/targets/*/lib/libcudart_static.a >/dev/null 2>&1 \
    || missing+=("libcudart_static.a (under $home)")
fi
for mod in cupy pytest hypothesis pybind11 setuptools; do
  "$PY" -c "import $mod" 2>/dev/null || missing+=("the Python package $mod")
done
if [ ${#missing[@]} -gt 0 ]; then
  fail_now "missing $(IFS=';'; echo "${missing[*]}" | sed 's/;/, /g'): install the full CUDA toolkit (nvcc, headers, libcudart_static.a; set CUDA_HOME) and the Python packages"
fi
hint=""
if [ -n "$toolkit" ] && [ -n "$driver_cuda" ] && [ "${toolkit%%.*}" -gt "${driver_cuda%%.*}" ] 2>/dev/null; then
  hint="the CUDA $toolkit toolkit needs a driver for CUDA ${toolkit%%.*}, this one supports $driver_cuda: build with a CUDA ${driver_cuda%%.*}.x toolkit (CUDA_HOME=...) or update the driver"
  echo "   warning: $hint"
fi

# Build only for the GPU at hand (minutes saved); fall back to sm_90.
if [ -z "${MINITL_CUDA_ARCHS:-}" ]; then
  cc=$(echo "$gpu" | grep -o '[0-9]*\.[0-9]*$' | tr -d '.')
  export MINITL_CUDA_ARCHS="${cc:-90}"
fi
export MINITL_CUDA=1

echo "== install (MINITL_CUDA_ARCHS=$MINITL_CUDA_ARCHS)"
start=$SECONDS
if "$PY" -m pip install --no-build-isolation --no-deps -e . >"$LOG/install.log" 2>&1; then
  install="ok ($((SECONDS - start)) s)"
  echo "   $install"
else
  tail -n 30 "$LOG/install.log"
  fail_now "the build failed (see $LOG/install.log)"
fi

echo "== CUDA status"
status=$("$PY" -c 'import minitl.cuda as c; print(c.is_available(), "|", c.why_unavailable() or "", "|", c.device_name())' 2>&1)
echo "   $status"
kernels=$("$PY" -c 'from minitl.kernels import cuda_kernels_status as s; ok, line = s(); print(line); raise SystemExit(0 if ok else 1)' 2>&1)
kernels_ok=$?
echo "   $kernels"
if [ "$kernels_ok" -ne 0 ]; then
  # Every GPU test would skip: testing nothing is not a pass.
  fail_now "the CUDA kernels built but cannot run here: $kernels${hint:+ (likely: $hint)}"
fi

# pytest's junit report gives exact counts: every GPU test must have run.
# run_pytest NAME [env...] -- [pytest args...]
run_pytest() {
  local name="$1"; shift
  local xml="$LOG/$name.xml"
  rm -f "$xml"
  "$@" --junitxml="$xml" >"$LOG/$name.log" 2>&1
  local rc=$?
  local counts
  counts=$("$PY" - "$xml" <<'PY' 2>/dev/null
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
s = root if root.tag == "testsuite" else root.find("testsuite")
n, f, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(f"{n - f - e - sk} passed, {f} failed, {e} errors, {sk} skipped of {n}")
sys.exit(0 if n > 0 and f == e == sk == 0 else 1)
PY
  )
  local ok=$?
  [ -n "$counts" ] || counts="no report (pytest exit $rc)"
  if [ $rc -ne 0 ] || [ $ok -ne 0 ]; then
    failures+=("$name: $counts (see $LOG/$name.log)")
    tail -n 15 "$LOG/$name.log"
  fi
  echo "   $name: $counts"
  eval "result_$name=\"\$counts\""
}

echo "== pytest -m gpu"
run_pytest gpu_tests "$PY" -m pytest -m gpu -q -p no:cacheprovider -rs tests

# Under the sanitizer every kernel runs 10-100x slower: a small hypothesis
# profile, and without the 200-step LeNet curve.
if [ -n "$sanitizer" ]; then
  for tool in memcheck racecheck synccheck; do
    echo "== compute-sanitizer --tool $tool (pytest -m gpu, HYPOTHESIS_PROFILE=sanitize)"
    HYPOTHESIS_PROFILE=sanitize run_pytest "sanitize_$tool" "$sanitizer" --tool "$tool" \
      --error-exitcode 99 "$PY" -m pytest -m gpu -q -p no:cacheprovider -x \
      -k "not lenet_on_gpu" tests/test_kernels_cuda*.py
  done
else
  echo "== compute-sanitizer not found: memcheck/racecheck/synccheck skipped"
fi

echo "== pytest -m gpu with CUPY_CUDA_PER_THREAD_DEFAULT_STREAM=1"
CUPY_CUDA_PER_THREAD_DEFAULT_STREAM=1 HYPOTHESIS_PROFILE=sanitize run_pytest per_thread_stream \
  "$PY" -m pytest -m gpu -q -p no:cacheprovider -k "not lenet_on_gpu" tests/test_kernels_cuda*.py

echo "== kernel launches per training step (batch 256)"
# Method: one training step (forward, cross-entropy, backward, SGD momentum)
# runs under a relaxed CUDA stream capture (minitl.kernels.cuda_launches.count_kernels)
# and the captured graph's kernel nodes are counted: every launch, ours and
# CuPy's, and nothing else; the graph is discarded. The step calls the fused
# CrossEntropy Function directly, so that the CuPy reference path (which
# range-checks targets with a device->host copy in F.cross_entropy) can be
# captured too. If capture fails, only the launches made through
# minitl._C_cuda are counted.
"$PY" - <<'PY' 2>&1 | tee "$LOG/launches.txt"
import numpy as np, cupy as cp, minitl
from minitl import kernels, nn, optim
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

def make_bn_step(batch=64):
    # One BatchNorm2d forward (train: statistics + running-stat update) and backward.
    bn = nn.BatchNorm2d(16)
    bn.to("cuda")
    x = minitl.tensor(np.random.default_rng(0).standard_normal((batch, 16, 32, 32)).astype(np.float32),
                      device="cuda", requires_grad=True)
    def step():
        bn(x).sum().backward()
    return step

for path in ("native", "reference"):
    kernels.use(path)
    for name in ("lenet", "mlp", "bn"):
        step = make_bn_step() if name == "bn" else make_step(name)
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
[ "${PIPESTATUS[0]}" -eq 0 ] || failures+=("launch count script failed (see $LOG/launches.txt)")

echo "== bench_train.py --device cuda"
"$PY" benchmarks/bench_train.py --device cuda --batch 64 256 1024 --modes train \
  2>&1 | tee "$LOG/bench.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failures+=("bench_train.py failed (see $LOG/bench.txt)")
# The goal: LeNet batch-256 training >= 5x the CuPy reference path.
speedup=$(awk '$1 == "lenet" && $2 == 256 {print $NF}' "$LOG/bench.txt" | tr -d 'x')
goal="LeNet batch 256 train: ${speedup:-?}x the reference path (goal >= 5x: $(
  awk -v s="${speedup:-0}" 'BEGIN {print (s >= 5 ? "met" : "NOT met")}'))"

echo
echo "================================ summary ================================"
printf '%-10s %s\n' "GPU" "$gpu; driver ${driver:-?} (CUDA ${driver_cuda:-?}); toolkit ${toolkit:-?}; CuPy $cupy_v"
printf '%-10s %s\n' "install" "$install"
printf '%-10s %s\n' "cuda" "$status"
printf '%-10s %s\n' "kernels" "$kernels"
printf '%-10s %s\n' "gpu tests" "${result_gpu_tests:-not run}"
for tool in memcheck racecheck synccheck; do
  var="result_sanitize_$tool"
  printf '%-10s %s\n' "$tool" "${!var:-not run (no compute-sanitizer)}"
done
printf '%-10s %s\n' "per-thread" "${result_per_thread_stream:-not run}"
sed 's/^/launches   /' "$LOG/launches.txt"
echo "benchmark  (samples/s: CUDA kernels vs CuPy reference path)"
grep -vE "^\s*$" "$LOG/bench.txt" | tail -n 20 | sed 's/^/           /'
echo "goal       $goal"
if [ ${#failures[@]} -gt 0 ]; then
  echo "gpu_check: FAILED:"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "gpu_check: ok"
