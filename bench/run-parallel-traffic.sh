#!/usr/bin/env bash
# Communication per step (measured vs analytic, per collective) and tokens/s on bench-small, with the
# training loop's optimizer (optim::ZeroOptimizer): ZeRO stage 0 for 1, 2 and 4 ranks, then ZeRO
# stages 1-3 for dp 2 and dp 4 / ep 2, then the node-crossing traffic of the two dispatch modes.
# Usage: bench/run-parallel-traffic.sh [steps]   (from the repository root; builds in $BUILD_DIR,
# default build/)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake --build "$BUILD_DIR" -j"$(nproc)" --target parallel_traffic >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
STEPS=${1:-3}
BIN="$BUILD_DIR/bench/parallel_traffic"
# Arguments of the bench: ep steps dispatch ranks_per_node zero_stage.
for layout in "1 1" "2 1" "2 2" "4 1" "4 2" "4 4"; do
  set -- $layout
  mpirun --oversubscribe -np "$1" "$BIN" "$2" "$STEPS" flat 0 0 2>/dev/null
done
for stage in 1 2 3; do
  for layout in "2 1" "4 2"; do
    set -- $layout
    mpirun --oversubscribe -np "$1" "$BIN" "$2" "$STEPS" flat 0 "$stage" 2>/dev/null
  done
done
# Node-crossing traffic of the two dispatch modes, 2 "nodes" of 2 ranks.
for mode in flat hierarchical; do
  mpirun --oversubscribe -np 4 "$BIN" 4 "$STEPS" "$mode" 2 0 2>/dev/null
done
