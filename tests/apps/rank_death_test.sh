#!/usr/bin/env bash
# A rank that dies (kill -9) while the others are in the middle of expert-parallel all-to-alls must
# take the whole job down with a non-zero exit within a bounded time, never hang. Snapshots are on
# (every 5 steps): relaunching the same command with `--resume auto` must continue from the newest
# complete snapshot (losing at most the steps since it) and finish the run.
# Usage: rank_death_test.sh MOETRAIN MPIEXEC
set -uo pipefail
BIN=$1 MPIEXEC=$2
WORK=$(mktemp -d /tmp/moetrain-death.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
words=(alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho)
for i in $(seq 1 300); do
  line=""; for j in $(seq 1 12); do line+="${words[$(( (i * 13 + j * 7) % ${#words[@]} ))]} "; done
  echo "$line"; echo "%"
done > corpus.txt
"$BIN" data tokenizer --input corpus.txt --vocab-size 300 --out tok.model >/dev/null 2>&1 || exit 1
"$BIN" data prepare --input corpus.txt --tokenizer tok.model --out shards >/dev/null 2>&1 || exit 1
# ep=4: every step of every layer exchanges tokens between all 4 ranks. Sizes make a step take tens
# of ms, so the kill lands mid-run.
TOTAL=60 EVERY=5
train() {
  "$MPIEXEC" --oversubscribe -np 4 "$BIN" train --set data.tokenizer="$WORK/tok.model" --set data.shards="$WORK/shards" \
    --set parallel.ep=4 --set batch.micro_batch=8 --set batch.seq_len=64 --set schedule.total_steps=$TOTAL \
    --set schedule.warmup_steps=1 --set logging.every_steps=1 --set logging.metrics_file= \
    --set model.hidden_size=64 --set model.moe_intermediate_size=64 --set model.num_hidden_layers=2 \
    --set model.max_position_embeddings=64 --set threads=1 --set 'sample.prompts=[]' \
    --set checkpoint.dir=ckpt --set checkpoint.every_steps=$EVERY --set parallel.collective_timeout_s=20 \
    --resume auto "$@"
}
train >log 2>&1 &
job=$!
for _ in $(seq 1 600); do grep -q "step 12/" log && break; sleep 0.05; done
grep -q "step 12/" log || { echo "FAIL: job did not start training"; tail log; kill -9 $job; exit 1; }
# Our ranks only (their arguments name $WORK; other jobs may run on this machine).
ours() { pgrep -f "moetrain train --set data.tokenizer=$WORK/" | grep -v "^$job\$"; }
victim=$(ours | tail -1)
start=$(date +%s.%N)
kill -9 "$victim"
for _ in $(seq 1 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
if kill -0 $job 2>/dev/null; then
  echo "FAIL: job still running 30 s after a rank was killed"; kill -9 $job $(ours); exit 1
fi
wait $job; rc=$?
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
left=$(ours | wc -l)
echo "job exited with $rc ${took}s after kill -9 of rank pid $victim; $left moetrain processes left"
[ $rc -ne 0 ] && [ "$left" -eq 0 ] || { echo FAIL; exit 1; }
grep -q "step $TOTAL/$TOTAL" log && { echo "FAIL: the run finished before the kill"; exit 1; }

# Relaunch: continue from the newest snapshot the killed run completed.
last_logged=$(grep -o "step [0-9]*/$TOTAL" log | tail -1 | grep -o '^step [0-9]*' | cut -d' ' -f2)
newest=$(grep -o "snapshot ckpt/step-[0-9]* complete" log | tail -1 | grep -o 'step-[0-9]*')
[ -n "$newest" ] || { echo "FAIL: no snapshot completed before the kill"; tail log; exit 1; }
snap=$((10#${newest#step-}))
train >log2 2>&1; rc=$?
grep -q "resumed from ckpt/$newest (step $snap," log2 \
  || { echo "FAIL: did not resume from ckpt/$newest"; grep -E "resume|error" log2; exit 1; }
first=$(grep -o "step [0-9]*/$TOTAL" log2 | head -1 | grep -o '^step [0-9]*' | cut -d' ' -f2)
lost=$((last_logged - snap))
echo "killed after step $last_logged; resumed from $newest; first step of the rerun $first; lost $lost steps"
[ $rc -eq 0 ] && grep -q "step $TOTAL/$TOTAL" log2 && [ "$first" -eq $((snap + 1)) ] && [ $lost -le $((EVERY + 1)) ] \
  && echo "PASS: resumed after kill -9 and finished" || { echo "FAIL: rerun rc=$rc"; tail log2; exit 1; }
