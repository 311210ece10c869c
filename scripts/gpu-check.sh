#!/usr/bin/env bash
# Run on a GPU machine: device facts, every CUDA test (ctest label "cuda"), then a table of the
# per-op parity results (op, dtype, max error, tolerance, PASS/FAIL/SKIP) collected from the
# "MT_PARITY ..." lines the tests print (tests/kernels/cuda/cuda_parity.h).
#
# Usage: scripts/gpu-check.sh [BUILD_DIR]
#   no BUILD_DIR: configures build-gpu with -DMOETRAIN_CUDA=ON (sm_80;sm_90) and builds only the CUDA
#                 test targets (needs nvcc and the project's dependencies on this machine);
#   BUILD_DIR:    uses an existing CUDA build (e.g. one built elsewhere and carried here; set
#                 LD_LIBRARY_PATH to the folder of carried runtime libraries first, see docs/GPU.md).
# Exit status: non-zero when any CUDA test failed (or nothing could be run).
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${1:-}
if [[ -z "$BUILD_DIR" ]]; then
  BUILD_DIR=build-gpu
  echo "== building $BUILD_DIR (MOETRAIN_CUDA=ON, sm_80;sm_90)"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DMOETRAIN_CUDA=ON \
        "-DCMAKE_CUDA_ARCHITECTURES=80;90" >"$BUILD_DIR.configure.log" 2>&1 \
    || { echo "configure failed, see $BUILD_DIR.configure.log"; tail -20 "$BUILD_DIR.configure.log"; exit 1; }
  targets=$(cmake --build "$BUILD_DIR" --target help | grep -oE 'cuda_[a-z0-9_]*_test|parallel_nccl_test' | sort -u)
  [[ -n "$targets" ]] || { echo "no cuda_* test targets: was nvcc found? see $BUILD_DIR.configure.log"; exit 1; }
  # shellcheck disable=SC2086
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target $targets || { echo "build failed"; exit 1; }
fi

echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== host: $(hostname)"
echo "== nvidia-smi"
nvidia-smi --query-gpu=index,name,compute_cap,driver_version,memory.total,clocks.max.sm,power.limit \
  --format=csv 2>&1 || echo "(nvidia-smi failed: no driver?)"
nvidia-smi 2>/dev/null | grep -m1 "CUDA Version" || true

LOG=$(mktemp /tmp/gpu-check.XXXXXX.log)
echo "== CUDA tests (full log: $LOG)"
rc=0
if command -v ctest >/dev/null && [[ -f "$BUILD_DIR/CTestTestfile.cmake" ]]; then
  # -V so the MT_PARITY lines of passing tests reach the log too.
  ctest --test-dir "$BUILD_DIR" -L cuda -V >"$LOG" 2>&1 || rc=$?
  grep -E "^ *[0-9]+/[0-9]+ Test|tests passed|tests failed" "$LOG" | sed 's/^[0-9]*: //' | tail -n 200
else
  ran=0
  for t in "$BUILD_DIR"/tests/cuda_*_test; do
    [[ -x "$t" ]] || continue
    ran=1
    echo "-- $t"
    "$t" >>"$LOG" 2>&1 || { rc=1; echo "   FAILED"; }
  done
  [[ $ran == 1 ]] || { echo "no CUDA test binaries in $BUILD_DIR/tests"; rc=1; }
fi
if grep -q "^\[  FAILED  \]\|Failure" "$LOG"; then
  echo "== failures (first 60 lines)"; grep -A8 "Failure" "$LOG" | head -60
fi

echo "== not yet covered: 200-step training run vs the CPU loss curve, GPU benchmark (docs/GPU.md)"
echo
echo "== parity table"
grep -o 'MT_PARITY .*' "$LOG" | sort -u | awk '
  BEGIN { printf "%-26s %-5s %-10s %-19s %s\n", "op", "dtype", "max_err", "tol(rtol/atol)", "result" }
  { for (i = 2; i <= NF; ++i) { split($i, kv, "="); f[kv[1]] = kv[2] }
    printf "%-26s %-5s %-10s %-19s %s\n", f["op"], f["dtype"], f["max_err"], f["tol"], f["result"]
    n[f["result"]]++ }
  END { printf "PASS %d  FAIL %d  SKIP %d\n", n["PASS"], n["FAIL"], n["SKIP"] }'
if grep -q 'MT_PARITY .*result=SKIP' "$LOG"; then
  echo "NOTE: SKIP means the test binary saw no usable CUDA device: nothing above ran on a GPU."
fi
exit $rc
