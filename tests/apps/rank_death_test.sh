#!/usr/bin/env bash
# A rank that dies (kill -9) while the others are in the middle of expert-parallel all-to-alls must
# take the whole job down with a non-zero exit within a bounded time, never hang.
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
# ep=4: every step of every layer exchanges tokens between all 4 ranks.
"$MPIEXEC" --oversubscribe -np 4 "$BIN" train --set data.tokenizer=tok.model --set data.shards=shards \
  --set parallel.ep=4 --set batch.micro_batch=4 --set batch.seq_len=32 --set schedule.total_steps=1000000 \
  --set schedule.warmup_steps=1 --set logging.every_steps=1 --set logging.metrics_file= \
  --set model.hidden_size=32 --set model.moe_intermediate_size=32 --set model.num_hidden_layers=2 \
  --set model.max_position_embeddings=64 --set threads=1 >log 2>&1 &
job=$!
for _ in $(seq 1 300); do grep -q "step 5/" log && break; sleep 0.1; done
grep -q "step 5/" log || { echo "FAIL: job did not start training"; tail log; kill -9 $job; exit 1; }
victim=$(pgrep -f "moetrain train" | grep -v "^$job\$" | tail -1)
start=$(date +%s.%N)
kill -9 "$victim"
for _ in $(seq 1 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
if kill -0 $job 2>/dev/null; then
  echo "FAIL: job still running 30 s after a rank was killed"; pkill -9 -f "moetrain train"; exit 1
fi
wait $job; rc=$?
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
left=$(pgrep -f "moetrain train" | wc -l)
echo "job exited with $rc ${took}s after kill -9 of rank pid $victim; $left moetrain processes left"
[ $rc -ne 0 ] && [ "$left" -eq 0 ] && echo PASS || { echo FAIL; exit 1; }
