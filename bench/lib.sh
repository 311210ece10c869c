# Shared prologue of bench/run-*.sh (sourced, not run; the caller has `set -euo pipefail`).
#   bench_build TARGET      sets root (the repository) and build (BUILD_DIR, default build/, relative
#                           to root), configures Release there when it has no CMakeCache.txt yet and
#                           builds only TARGET.
#   bench_repeat N TARGET [ARGS...]   runs $build/bench/TARGET N times, echoes "run i: ..." with each
#                           run's RESULT line and collects the lines in the array `results`.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bench_build() {
  build="${BUILD_DIR:-build}"
  case "$build" in /*) ;; *) build="$root/$build" ;; esac
  mkdir -p "$build"
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$build" --target "$1" -j2 >/dev/null
}

bench_repeat() {
  local runs=$1 target=$2 i line
  shift 2
  results=()
  for ((i = 1; i <= runs; ++i)); do
    line="$("$build/bench/$target" "$@" | grep '^RESULT')"
    echo "run $i: ${line#RESULT }"
    results+=("$line")
  done
}
