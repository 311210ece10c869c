#!/usr/bin/env bash
# A real one-node SLURM cluster (munge + slurmctld + slurmd, slurm/local-cluster.sh) runs
# slurm/train.sbatch with 2 tasks (expert parallel, ep=2): the job must finish and its per-step losses
# must equal a single-process run of the same recipe. Skips (77) when not root or SLURM is missing.
# Usage: slurm_test.sh MOETRAIN SOURCE_DIR
set -uo pipefail
BIN=$1 SRC=$2
if [ "$(id -u)" -ne 0 ] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "SKIP: needs root, slurm-wlm and munge"; exit 77
fi
WORK=$(mktemp -d /tmp/moetrain-slurm.XXXXXX)
started=0
if ! sinfo -h >/dev/null 2>&1; then
  "$SRC/slurm/local-cluster.sh" start "$WORK/run" || { echo "FAIL: cluster did not start"; exit 1; }
  started=1
fi
cleanup() { [ $started -eq 1 ] && "$SRC/slurm/local-cluster.sh" stop "$WORK/run"; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
words=(red green blue cyan magenta yellow black white orange purple brown pink grey olive navy teal)
for i in $(seq 1 300); do
  line=""; for j in $(seq 1 10); do line+="${words[$(( (i * 11 + j * 5 + i * j) % ${#words[@]} ))]} "; done
  echo "$line"; echo "%"
done > corpus.txt
"$BIN" data tokenizer --input corpus.txt --vocab-size 300 --out tok.model >/dev/null 2>&1 || exit 1
"$BIN" data prepare --input corpus.txt --tokenizer tok.model --out shards >/dev/null 2>&1 || exit 1
ARGS=(--set data.tokenizer="$WORK/tok.model" --set data.shards="$WORK/shards" --set parallel.ep=2
      --set batch.micro_batch=4 --set batch.seq_len=32 --set schedule.total_steps=8
      --set schedule.warmup_steps=2 --set optim.lr=3e-4 --set logging.every_steps=1
      --set model.hidden_size=32 --set model.moe_intermediate_size=32 --set model.num_hidden_layers=2
      --set model.max_position_embeddings=64 --set 'sample.prompts=[]' --set threads=1)
"$BIN" train "${ARGS[@]}" --set parallel.ep=1 --set logging.metrics_file="$WORK/single.jsonl" >single.log 2>&1 \
  || { echo "FAIL: single run"; tail single.log; exit 1; }
MOETRAIN="$BIN" timeout 300 sbatch --wait --ntasks=2 --output="$WORK/job.out" \
  "$SRC/slurm/train.sbatch" "${ARGS[@]}" --set logging.metrics_file="$WORK/slurm.jsonl" >/dev/null
rc=$?
grep -q "layout: world=2" job.out && [ $rc -eq 0 ] || { echo "FAIL: job rc=$rc"; tail -20 job.out; exit 1; }
series() { grep '"event":"step"' "$1" | grep -o '"loss":[-0-9.e+]*' | sed 's/.*://'; }
series single.jsonl > a; series slurm.jsonl > b
[ "$(wc -l < b)" -eq 8 ] || { echo "FAIL: $(wc -l < b) step lines from the SLURM job"; exit 1; }
paste a b | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $1) bad = 1 } END { exit bad }' \
  && echo "PASS: SLURM job (2 tasks, ep=2) matches the single-process loss curve" \
  || { echo "FAIL: losses differ"; paste a b; exit 1; }
