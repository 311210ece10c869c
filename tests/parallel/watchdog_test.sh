#!/usr/bin/env bash
# The collective watchdog with real MPI ranks: the last rank sleeps 30 s before a collective on the
# ep group. With parallel.collective_timeout_s-style timeout 2 s the job must end non-zero within
# a few seconds and the log must name the waiting rank, the collective and the group; the same
# program with the watchdog off (and a short sleep) completes, so it is the watchdog that ended it.
# Usage: watchdog_test.sh WATCHDOG_STALL MPIEXEC
set -uo pipefail
BIN=$1 MPIEXEC=$2
run() {  # MODE TIMEOUT SLEEP -> sets rc, took; output in $log
  log=$(mktemp)
  local start; start=$(date +%s.%N)
  timeout 60 "$MPIEXEC" --oversubscribe -np 3 "$BIN" "$@" >"$log" 2>&1
  rc=$?
  took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}
fail=0
for mode in blocking nonblocking; do
  want=AllReduce; [ $mode = nonblocking ] && want=IAllReduce
  run $mode 2 30
  # Non-zero, well before the sleeper would have arrived (30 s) or `timeout` fired (60 s).
  if [ $rc -ne 0 ] && awk -v t="$took" 'BEGIN { exit !(t < 15) }' \
     && grep -Eq "rank [01]: $want on group ep did not complete within 2s" "$log"; then
    echo "PASS: $mode: exit $rc after ${took}s: $(grep -m1 -o "rank [01]: $want.*within 2s" "$log")"
  else
    echo "FAIL: $mode: exit $rc after ${took}s"; cat "$log"; fail=1
  fi
  rm -f "$log"
  run $mode 0 1
  if [ $rc -eq 0 ] && [ "$(grep -c 'collective done' "$log")" -eq 3 ]; then
    echo "PASS: $mode: watchdog off, the late rank arrives and the collective completes"
  else
    echo "FAIL: $mode with the watchdog off: exit $rc"; cat "$log"; fail=1
  fi
  rm -f "$log"
done
exit $fail
