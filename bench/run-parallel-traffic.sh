#!/usr/bin/env bash
# Communication per step (measured vs analytic) and tokens/s for 1, 2 and 4 ranks on bench-small.
# Usage: bench/run-parallel-traffic.sh [steps]   (from the repository root, after a build in build/)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build -j"$(nproc)" --target parallel_traffic >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
STEPS=${1:-3}
for layout in "1 1" "2 1" "2 2" "4 1" "4 2" "4 4"; do
  set -- $layout
  mpirun --oversubscribe -np "$1" build/bench/parallel_traffic "$2" "$STEPS" 2>/dev/null
done
# Node-crossing traffic of the two dispatch modes, 2 "nodes" of 2 ranks.
for mode in flat hierarchical; do
  mpirun --oversubscribe -np 4 build/bench/parallel_traffic 4 "$STEPS" "$mode" 2 2>/dev/null
done
