#!/usr/bin/env bash
# Compile every csrc/cuda/*.cu with nvcc (one architecture: full C++ front
# end, PTX generation and ptxas), so a CUDA compile error fails CI even on a
# machine without a GPU. Also syntax-checks the pybind11 binding with the host
# compiler. Exits 0 with a message when nvcc is absent.
#   MINITL_CUDA_CHECK_ARCH=sm_90 picks another architecture (default sm_75,
#   the oldest this project builds for).
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC="${CUDA_HOME:+$CUDA_HOME/bin/nvcc}"
[ -x "${NVCC:-}" ] || NVCC="$(command -v nvcc || true)"
[ -x "${NVCC:-}" ] || NVCC=/usr/local/cuda/bin/nvcc
if [ ! -x "$NVCC" ]; then
  echo "check_cuda: nvcc not found; CUDA sources not compiled (skipped)"
  exit 0
fi

ARCH="${MINITL_CUDA_CHECK_ARCH:-sm_75}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
echo "check_cuda: $("$NVCC" --version | tail -n 2 | head -n 1), -arch=$ARCH"

compile() {  # one .cu -> object; prints the file, its time and any diagnostics
  local src="$1" out="$2/$(basename "$1" .cu).o" start=$SECONDS
  if "$NVCC" -c "$src" -o "$out" -std=c++17 -O3 -arch="$3" -Icsrc/cuda \
      -Xcompiler -fPIC,-Wall,-Wextra >"$out.log" 2>&1; then
    echo "  ok   $src ($((SECONDS - start))s)"
    grep -i "warning" "$out.log" | sed 's/^/       /' || true
  else
    echo "  FAIL $src"
    sed 's/^/       /' "$out.log"
    return 1
  fi
}
export -f compile
export NVCC

status=0
ls csrc/cuda/*.cu | xargs -P 2 -I{} bash -c 'compile "$@"' _ {} "$OUT" "$ARCH" || status=1

# The binding is compiled by the host compiler in setup.py: check its syntax.
if python -c "import pybind11" 2>/dev/null; then
  if g++ -std=c++17 -fsyntax-only -Wall -Wextra -Icsrc/cuda \
      "-I$(python -c 'import pybind11; print(pybind11.get_include())')" \
      "-I$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
      csrc/cuda/bind.cpp; then
    echo "  ok   csrc/cuda/bind.cpp (host syntax check)"
  else
    echo "  FAIL csrc/cuda/bind.cpp"; status=1
  fi
fi

if [ "$status" -ne 0 ]; then
  echo "check_cuda: CUDA compilation FAILED"
  exit 1
fi
echo "check_cuda: every CUDA source compiled"
