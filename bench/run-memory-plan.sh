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
    # Rank 0 prints every rank's plan; with dp only all ranks plan the same sizes ("every rank").
    tomib='{ v = $1; if ($2 == "GiB") v *= 1024; if ($2 == "KiB") v /= 1024; print v }'
    state=$(grep -E 'memory plan: (params|gathered_params|grads|gathered_grads|master|optimizer|grad_shards) ' "$log" \
            | sed -E 's/.*memory plan: [a-z_]+ ([0-9.]+) ([GMK]iB).*/\1 \2/' | awk "$tomib" | awk '{ s += $1 } END { printf "%.1f", s }')
    plan=$(grep -E 'memory plan: total ' "$log" | sed -E 's/.*total (rank 0: )?([0-9.]+) ([GMK]iB).*/\2 \3/' | awk "$tomib" | awk '{ printf "%.1f", $1 }')
    peak=$(grep 'measured peak RSS' "$log" | sed -E 's/.*peak RSS ([0-9.]+) ([GMK]iB).*/\1 \2/' | awk "$tomib" \
           | awk '{ if ($1 > m) m = $1 } END { printf "%.1f", m }')
    ratio=$(awk -v a="$peak" -v b="$plan" 'BEGIN { printf "%.3f", a / b }')
    echo "| $stage | $n | $state | $plan | $peak | $ratio |"
    rm -f "$log"
  done
done
