#!/usr/bin/env bash
# Layout independence (DESIGN decision 5): the embedded tiny recipe for 20 steps (smaller micro-batch
# and sequence so the suite stays fast) on 1 rank and on several MPI layouts must give the same
# per-step loss (relative difference < 1e-5), the same global batch at every step (batch_hash) and
# the same final parameters (relative < 1e-5).
# Usage: layout_independence_test.sh MOETRAIN COMPARE_PARAMS MPIEXEC
# Tensor-parallel layouts (tp2_dp2, tp2_dp2_ep2) dump FULL tensors (gathered over tp) on every rank.
# The peak LR is lowered to 3e-4: at the tiny recipe's 3e-3, float reassociation differences (1e-10
# at step 1) grow ~3x per step (Adam's normalisation and router near-ties amplify them) and pass 1e-5
# around step 13 on every layout alike (measured 2026-11-25; see docs/parallelism.md).
set -uo pipefail
BIN=$1 CMP=$2 MPIEXEC=$3
WORK=$(mktemp -d /tmp/moetrain-layout.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
CORPUS=/usr/share/games/fortunes
"$BIN" data tokenizer --input "$CORPUS" --vocab-size 2048 --out tok.model >/dev/null 2>&1 || { echo "tokenizer failed"; exit 1; }
"$BIN" data prepare --input "$CORPUS" --tokenizer tok.model --out shards >/dev/null 2>&1 || { echo "prepare failed"; exit 1; }
COMMON=(--set data.tokenizer=tok.model --set data.shards=shards --set schedule.total_steps=20
        --set schedule.warmup_steps=5 --set batch.micro_batch=8 --set batch.grad_accum=2
        --set batch.seq_len=64 --set eval.batches=1 --set eval.every_steps=0
        --set 'sample.prompts=[]' --set logging.every_steps=1 --set threads=1 --set optim.lr=3e-4)
fails=0
run() {  # run NAME NP [extra --set ...]
  local name=$1 np=$2; shift 2
  local cmd=("$BIN" train "${COMMON[@]}" --set logging.metrics_file="$name.jsonl" --dump-params "$name" "$@")
  if [ "$np" -gt 1 ]; then cmd=("$MPIEXEC" --oversubscribe -np "$np" "${cmd[@]}"); fi
  if ! "${cmd[@]}" >"$name.log" 2>&1; then echo "FAIL: $name did not run"; tail -5 "$name.log"; fails=$((fails + 1)); fi
}
series() { grep '"event":"step"' "$1.jsonl" | grep -o "\"$2\":[-0-9.e+]*" | sed 's/.*://'; }

run single 1
run dp4 4
run dp4_ep4 4 --set parallel.ep=4
run dp2_ep2 2 --set parallel.ep=2
run dp4_ep2_hier 4 --set parallel.ep=2 --set parallel.ep_dispatch=hierarchical --set parallel.ranks_per_node=1
run tp2_dp2 4 --set parallel.tp=2
run tp2_dp2_ep2 4 --set parallel.tp=2 --set parallel.ep=2
# ZeRO and activation checkpointing change where state lives and what is recomputed, not the math.
run dp4_z3 4 --set parallel.zero_stage=3
run dp4_ep2_z3 4 --set parallel.ep=2 --set parallel.zero_stage=3
run tp2_dp2_ep2_z2_ckpt 4 --set parallel.tp=2 --set parallel.ep=2 --set parallel.zero_stage=2 \
    --set activation_checkpointing=full
run dp2_z1_sel 2 --set parallel.zero_stage=1 --set activation_checkpointing=selective

series single loss > single.loss
series single batch_hash > single.hash
[ "$(wc -l < single.loss)" -eq 20 ] || { echo "FAIL: single run has $(wc -l < single.loss) step lines"; fails=$((fails + 1)); }
LAYOUTS="dp4 dp4_ep4 dp2_ep2 dp4_ep2_hier tp2_dp2 tp2_dp2_ep2 dp4_z3 dp4_ep2_z3 tp2_dp2_ep2_z2_ckpt dp2_z1_sel"
for name in $LAYOUTS; do
  series $name loss > $name.loss
  series $name batch_hash > $name.hash
  if paste single.loss $name.loss | awk 'NF != 2 { bad = 1 } { d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $1) bad = 1; if (d > worst) worst = d }
        END { printf "  max |loss diff| %.3g\n", worst; exit bad }' && [ "$(wc -l < $name.loss)" -eq 20 ]; then
    echo "PASS: $name per-step loss equals the single-rank run"
  else echo "FAIL: $name per-step loss differs"; paste single.loss $name.loss | head -5; fails=$((fails + 1)); fi
  if cmp -s single.hash $name.hash; then echo "PASS: $name global batches identical"
  else echo "FAIL: $name global batches differ"; fails=$((fails + 1)); fi
done
"$CMP" 1e-5 single/rank0.safetensors $LAYOUTS && echo "PASS: final parameters match" \
  || { echo "FAIL: final parameters differ"; fails=$((fails + 1)); }
# The check must be able to fail: a different seed gives different parameters.
run other_seed 1 --set seed=99
"$CMP" 1e-5 single/rank0.safetensors other_seed >/dev/null && { echo "FAIL: comparison cannot fail"; fails=$((fails + 1)); } \
  || echo "PASS: a different seed is detected"
echo "$fails failure(s)"
exit $((fails > 0))
