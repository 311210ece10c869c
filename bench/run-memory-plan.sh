#!/usr/bin/env bash
# ZeRO memory: for stages 0-3 and N = 1, 2, 4 data-parallel ranks, trains a mid-size MoE for a few
# steps and prints per rank the planned bytes of parameters + gradients + optimizer state (what ZeRO
# shards), the whole plan (the `--dry-run` figure) and the measured peak RSS, as a markdown table.
# Usage: bench/run-memory-plan.sh [steps]  (from the repository root, after a build in build/ and
# ./scripts/main-job.sh, which makes out/tokenizer.model and out/fortunes-shards)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
STEPS=${1:-3}
MODEL=(--set model.hidden_size=512 --set model.num_hidden_layers=4 --set model.num_local_experts=8
       --set model.moe_intermediate_size=512 --set model.num_shared_experts=0
       --set model.num_attention_heads=8 --set model.num_key_value_heads=8
       --set batch.micro_batch=8 --set batch.seq_len=128 --set batch.grad_accum=1
       --set schedule.total_steps="$STEPS" --set schedule.warmup_steps=1 --set eval.batches=1
       --set 'sample.prompts=[]' --set threads=1 --set logging.every_steps=100
       --set data.tokenizer=out/tokenizer.model --set data.shards=out/fortunes-shards)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "| ZeRO stage | N | params+grads+optimizer (MiB/rank) | plan (MiB/rank) | measured peak RSS (MiB/rank, max) | peak / plan |"
echo "| --- | --- | --- | --- | --- | --- |"
for stage in 0 1 2 3; do
  for n in 1 2 4; do
    log=$(mktemp)
    cmd=(build/apps/moetrain train "${MODEL[@]}" --set parallel.zero_stage="$stage")
    if [ "$n" -gt 1 ]; then cmd=(mpirun --oversubscribe -np "$n" "${cmd[@]}"); fi
    "${cmd[@]}" >"$log" 2>&1 || { echo "stage $stage N=$n failed:"; tail -3 "$log"; exit 1; }
    # Rank 0's plan lines (every rank plans the same sizes here: dp only).
    state=$(grep '^\[rank 0\] I memory plan:' "$log" | grep -E ': (params|gathered_params|grads|gathered_grads|master|optimizer|grad_shards) ' \
            | awk '{ v = $(NF-1); u = $NF; if (u == "GiB") v *= 1024; if (u == "KiB") v /= 1024; s += v } END { printf "%.1f", s }')
    plan=$(grep '^\[rank 0\] I memory plan: total' "$log" | awk '{ v = $(NF-1); if ($NF == "GiB") v *= 1024; if ($NF == "KiB") v /= 1024; printf "%.1f", v }')
    peak=$(grep 'measured peak RSS' "$log" | sed 's/.*peak RSS \([0-9.]*\) \([GMK]i*B\).*/\1 \2/' \
           | awk '{ v = $1; if ($2 == "GiB") v *= 1024; if ($2 == "KiB") v /= 1024; if (v > m) m = v } END { printf "%.1f", m }')
    ratio=$(awk -v a="$peak" -v b="$plan" 'BEGIN { printf "%.3f", a / b }')
    echo "| $stage | $n | $state | $plan | $peak | $ratio |"
    rm -f "$log"
  done
done
