#!/usr/bin/env bash
# Builds bench/checkpoint_io and runs it N times; prints each run's result line and the medians.
#
#   bench/run-checkpoint-io.sh [N=3] [extra checkpoint_io args...]
#   BUILD_DIR=build-perf bench/run-checkpoint-io.sh 3 --reps 5 --dir /scratch/ckpt
#
# BUILD_DIR (default build/, relative to the repository root) is configured Release if it has no
# CMakeCache.txt yet. Only the checkpoint_io target is built. Snapshots go to a fresh directory
# under /tmp unless --dir names one (put it on the file system you want to measure).
# Runs where other processes used more than 5% of the cores ("other_cpu") are marked disturbed;
# medians are printed over all runs and over the undisturbed ones.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
runs="${1:-3}"
shift || true
bench_build checkpoint_io
bench_repeat "$runs" checkpoint_io "$@"

printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [dict(kv.split("=") for kv in line.split()[1:]) for line in sys.stdin if line.strip()]
def report(label, rs):
    if not rs:
        print("%s: no runs" % label)
        return
    m = {k: statistics.median(float(r[k]) for r in rs) for k in rs[0]}
    print("%s (%d runs): state %.1f MB | save %.0f ms (%.0f MB/s) | load warm %.0f ms (%.0f MB/s) | "
          "load cold %.0f ms (%.0f MB/s) | verify %.0f ms | step %.0f ms | save-step cost sync %.0f ms, "
          "async %.0f ms | other processes %.1f%% CPU"
          % (label, len(rs), m["bytes"] / 1e6, m["save_ms"], m["save_mb_s"], m["load_warm_ms"],
             m["load_warm_mb_s"], m["load_cold_ms"], m["load_cold_mb_s"], m["verify_ms"], m["step_ms"],
             m["cost_sync_ms"], m["cost_async_ms"], 100 * m["other_cpu"]))
report("median, all runs", rows)
report("median, undisturbed runs (other_cpu <= 5%)", [r for r in rows if float(r["other_cpu"]) <= 0.05])
'
