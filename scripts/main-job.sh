#!/usr/bin/env bash
# The main job from a fresh clone: install dependencies, build, train a tokenizer on the embedded
# default corpus (Debian's fortunes), prepare token shards, train the embedded default recipe
# (recipes/tiny.yaml) and print sampled continuations. Outputs go to out/. Extra arguments go to
# `moetrain train` (e.g. --set schedule.total_steps=400).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target moetrain
BIN=build/apps/moetrain
mkdir -p out
CORPUS=/usr/share/games/fortunes
[ -s out/tokenizer.model ] || $BIN data tokenizer --input "$CORPUS" --vocab-size 2048 --out out/tokenizer.model
[ -s out/fortunes-shards/meta.json ] || \
  $BIN data prepare --input "$CORPUS" --tokenizer out/tokenizer.model --out out/fortunes-shards
# RANKS=N runs N MPI ranks (data parallel) instead of one process with all cores.
RANKS=${RANKS:-1}
if [ "$RANKS" -gt 1 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  exec mpirun --oversubscribe -np "$RANKS" $BIN train --set threads=1 "$@"
fi
exec $BIN train "$@"
