#!/usr/bin/env bash
# Fault handling of `moetrain train` in one process (no SLURM needed; docs/faults.md):
#  1. SIGUSR1 mid-run with checkpoint.every_steps 0: a snapshot of the last step is written, exit 75;
#     `--resume auto` continues from it and the final loss equals an uninterrupted run's exactly.
#  2. SIGTERM: the same (exit 75, snapshot).
#  3. A preemption without checkpoint.dir saves nothing and exits 130 (no requeue: nothing to resume).
#  5. (with MPIEXEC) SIGUSR1 to ONE of 2 ranks: both stop after the same step, one snapshot, the
#     job exits 75 (every rank returns it; no MPI_Abort).
#  4. fp16 with the loss scale pinned at its floor overflows every step: the run aborts at step
#     optim.max_consecutive_skips naming a tensor of the model; with 0 it runs to the end.
# Usage: faults_test.sh MOETRAIN [MPIEXEC]
set -uo pipefail
BIN=$1 MPIEXEC=${2:-}
. "$(dirname "$0")/lib.sh"
mt_workdir faults
colour_corpus 300 > corpus.txt
mt_prepare_data "$BIN" corpus.txt 300 || exit 1
ARGS=(--set data.tokenizer=tok.model --set data.shards=shards --set batch.micro_batch=8
      --set batch.seq_len=64 --set schedule.total_steps=60 --set schedule.warmup_steps=2
      --set logging.every_steps=1 --set model.hidden_size=64 --set model.moe_intermediate_size=64
      --set model.num_hidden_layers=2 --set model.max_position_embeddings=64 --set 'sample.prompts=[]'
      --set threads=1 --set checkpoint.every_steps=0)
last_loss() { grep '"event":"step"' "$1" | tail -1 | grep -o '"loss":[-0-9.e+]*'; }

"$BIN" train "${ARGS[@]}" --set checkpoint.dir=ck-ref --set logging.metrics_file=ref.jsonl >ref.log 2>&1 \
  || { echo "FAIL: reference run"; tail ref.log; exit 1; }
ref=$(last_loss ref.jsonl)

# SIG DIR NAME: start a run, signal it at step 15, return its exit code in $rc.
interrupt() {
  "$BIN" train "${ARGS[@]}" --set checkpoint.dir="$2" --set logging.metrics_file="$3.jsonl" \
    --resume auto >"$3.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do grep -q "step 15/" "$3.log" && break; sleep 0.05; done
  kill -s "$1" $pid; wait $pid; rc=$?
}
for sig in USR1 TERM; do
  interrupt $sig ck-$sig run-$sig
  step=$(grep -o 'preempted after step [0-9]*' run-$sig.log | grep -o '[0-9]*$')
  if [ $rc -eq 75 ] && [ -n "$step" ] && [ "$step" -lt 60 ] && [ -d ck-$sig/step-$(printf %08d "$step") ]; then
    "$BIN" train "${ARGS[@]}" --set checkpoint.dir=ck-$sig --set logging.metrics_file=run-$sig.jsonl \
      --resume auto >>run-$sig.log 2>&1
    got=$(last_loss run-$sig.jsonl)
    if grep -q "resumed from ck-$sig/step-" run-$sig.log && [ "$got" = "$ref" ]; then
      echo "PASS: SIG$sig: snapshot at step $step, exit 75, resumed; final $got equals the uninterrupted run"
    else
      fail "SIG$sig resume: final $got vs $ref"; tail run-$sig.log
    fi
  else
    fail "SIG$sig: exit $rc, preempted at step '${step}'"; tail run-$sig.log
  fi
done
interrupt USR1 "" run-nodir
if [ $rc -eq 130 ] && grep -q "NOTHING SAVED" run-nodir.log; then
  echo "PASS: a preemption without checkpoint.dir exits 130 and says nothing was saved"
else
  fail "preemption without checkpoint.dir: exit $rc"; tail run-nodir.log
fi

FP16=(--set precision=fp16 --set loss_scale.initial=1e30 --set loss_scale.min=1e30
      --set schedule.total_steps=10 --set checkpoint.dir=)
"$BIN" train "${ARGS[@]}" "${FP16[@]}" --set optim.max_consecutive_skips=3 \
  --set logging.metrics_file=nan.jsonl >nan.log 2>&1; rc=$?
tensor=$(grep -o 'with a NaN/Inf gradient is [^ .]*[^ ]*' nan.log | sed 's/.* is //; s/\.$//')
skips=$(grep -c '"event":"skipped_step"' nan.jsonl)
if [ $rc -ne 0 ] && grep -q "error: step 3: 3 consecutive steps were skipped" nan.log && [ "$skips" -eq 3 ] \
   && [[ "$tensor" =~ ^(model\.|lm_head\.)[a-z0-9_.]+weight$ ]]; then
  echo "PASS: aborted at step 3 after 3 skipped steps; first non-finite gradient in $tensor"
else
  fail "non-finite abort: exit $rc, $skips skips"; tail -3 nan.log
fi
"$BIN" train "${ARGS[@]}" "${FP16[@]}" --set optim.max_consecutive_skips=0 \
  --set logging.metrics_file=nan0.jsonl >nan0.log 2>&1; rc=$?
skips=$(grep -c '"event":"skipped_step"' nan0.jsonl)
[ $rc -eq 0 ] && [ "$skips" -eq 10 ] && echo "PASS: max_consecutive_skips 0 runs all 10 (skipped) steps" \
  || { fail "max_consecutive_skips 0: exit $rc, $skips skips"; }

if [ -n "$MPIEXEC" ]; then
  "$MPIEXEC" --oversubscribe -np 2 "$BIN" train "${ARGS[@]}" --set data.tokenizer="$WORK/tok.model" \
    --set parallel.ep=2 --set checkpoint.dir=ck-mpi --set logging.metrics_file= >mpi.log 2>&1 &
  job=$!
  for _ in $(seq 1 600); do grep -q "step 10/" mpi.log && break; sleep 0.05; done
  victim=$(pgrep -f "moetrain train .*data.tokenizer=$WORK/" | grep -v "^$job\$" | tail -1)
  kill -USR1 "$victim"; wait $job; rc=$?
  steps=$(grep -o 'preempted after step [0-9]*' mpi.log | grep -o '[0-9]*$' | sort -u)
  if [ $rc -eq 75 ] && [ "$(grep -c 'preempted after step' mpi.log)" -eq 2 ] && [ "$(echo "$steps" | wc -l)" -eq 1 ] \
     && [ "$(ls ck-mpi | grep -c '^step-')" -eq 1 ]; then
    echo "PASS: SIGUSR1 to one of 2 ranks: both stopped after step $steps, one snapshot, exit 75"
  else
    fail "one-rank SIGUSR1 under MPI: exit $rc, steps '$steps'"; tail mpi.log
  fi
fi
mt_finish
