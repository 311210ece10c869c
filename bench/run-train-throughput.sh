#!/usr/bin/env bash
# Builds bench/train_throughput and runs it N times; prints each run's result line and the medians.
#
#   bench/run-train-throughput.sh [N=5] [extra train_throughput args...]
#   BUILD_DIR=build-perf bench/run-train-throughput.sh 7 --threads 2
#
# BUILD_DIR (default build/, relative to the repository root) is configured Release if it has no
# CMakeCache.txt yet. Only the train_throughput target is built.
# The machine may be shared: each run reports other_cpu, the share of all cores that OTHER
# processes used during its timed loop. Runs with other_cpu > 5% are marked "disturbed"; the
# medians are printed over all runs and over the undisturbed ones.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
runs="${1:-5}"
shift || true
bench_build train_throughput
bench_repeat "$runs" train_throughput "$@"

printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [dict(kv.split("=") for kv in line.split()[1:]) for line in sys.stdin if line.strip()]
keys = ["tokens_per_s", "mfu", "step_ms", "peak_gflops", "achieved_gflops", "mfu_vs_best_peak",
        "other_cpu"]
def report(label, rs):
    if not rs:
        print("%s: no runs" % label)
        return
    med = {k: statistics.median(float(r[k]) for r in rs) for k in keys}
    print("%s (%d runs): tokens/s %.0f | step %.1f ms | achieved %.2f GFLOP/s | sgemm peak %.2f "
          "GFLOP/s | MFU %.1f%% (vs best peak %.1f%%) | other processes %.1f%% CPU"
          % (label, len(rs), med["tokens_per_s"], med["step_ms"], med["achieved_gflops"],
             med["peak_gflops"], 100 * med["mfu"], 100 * med["mfu_vs_best_peak"],
             med["other_cpu"]))
report("median, all runs", rows)
report("median, undisturbed runs (other_cpu <= 5%)", [r for r in rows if float(r["other_cpu"]) <= 5])
'
