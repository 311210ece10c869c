#!/usr/bin/env bash
# Fine-tuning end to end (docs/finetune.md): pretrain a tiny model into a snapshot, build a JSONL of
# prompt / response pairs, fine-tune recipes/finetune.yaml from the snapshot (finetune.init_from, the
# router frozen, attention at half rate), and check: the loss falls, the run starts at step 0, the
# frozen router (weights and aux-loss-free bias) is bitwise identical to the pretrained one while
# experts and attention moved, and bad inputs fail naming file:line and the field.
# With MPIEXEC and COMPARE_PARAMS it also fine-tunes on 2 ranks (ZeRO-2, ep = 2): the router stays
# frozen there too and the final parameters match the single-rank run.
# Usage: finetune_e2e_test.sh MOETRAIN_BINARY SOURCE_DIR [MPIEXEC COMPARE_PARAMS]
set -uo pipefail
BIN=$1
SRC=$2
MPIEXEC=${3:-}
COMPARE=${4:-}
. "$(dirname "$0")/lib.sh"
mt_workdir ft

words_corpus 300 > corpus.txt
nw=${#words[@]}  # lib.sh's word list
# SFT pairs: "Q: w1 w2 w3" -> "A: w3 w2 w1" (a learnable rule, reversal).
for i in $(seq 1 240); do
  a=${words[$(( (i * 7) % nw ))]}; b=${words[$(( (i * 13 + 3) % nw ))]}; c=${words[$(( (i * 5 + 11) % nw ))]}
  echo "{\"prompt\": \"Q: $a $b $c\", \"response\": \" A: $c $b $a.\"}"
done > sft.jsonl

mt_prepare_data "$BIN" corpus.txt 300 || mt_finish

# Both runs: the same small model (the recipes' model section, shrunk) and the bias balancing, so
# the frozen router has a buffer that pretraining moves.
MODEL=(--set 'model={hidden_size: 32, intermediate_size: 64, moe_intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4, num_experts_per_tok: 2, num_shared_experts: 1, max_position_embeddings: 64, balancing: bias}'
       --set batch.seq_len=32 --set batch.micro_batch=8 --set threads=2 --set sample.prompts=[])

"$BIN" train "$SRC/recipes/tiny.yaml" "${MODEL[@]}" --set data.tokenizer=tok.model --set data.shards=shards \
  --set schedule.total_steps=30 --set schedule.warmup_steps=5 --set eval.every_steps=0 --set eval.batches=2 \
  --set logging.metrics_file=pre.jsonl --set checkpoint.dir=pre-ckpt --set checkpoint.every_steps=30 \
  --dump-params pre >log.pre 2>&1 && [ -d pre-ckpt/step-00000030 ] && pass "pretrain snapshot" \
  || { fail "pretrain"; tail -20 log.pre; }

FT=("$SRC/recipes/finetune.yaml" "${MODEL[@]}" --set data.tokenizer=tok.model --set finetune.train_file=sft.jsonl
    --set finetune.val_fraction=0.1 --set eval.batches=2 --set logging.every_steps=1
    --set logging.metrics_file=ft.jsonl --set checkpoint.dir=ft-ckpt --set checkpoint.every_steps=20
    --set schedule.total_steps=40 --set optim.lr=3.0e-3)

# --- the recipe parses as the example is written; bad inputs fail before any training
"$BIN" train "$SRC/recipes/finetune.yaml" --dry-run --set data.tokenizer=tok.model --set finetune.train_file=sft.jsonl \
  --set finetune.val_fraction=0.1 >log.dry 2>&1 && grep -q "memory plan" log.dry && pass "recipes/finetune.yaml dry run" \
  || { fail "finetune.yaml dry run"; tail -5 log.dry; }
sed '7s/"response"/"answer"/' sft.jsonl > bad.jsonl
expect_fail_with "missing field names file:line" 'bad.jsonl:7: no field "response"' \
  "$BIN" train "${FT[@]}" --set finetune.train_file=bad.jsonl
expect_fail_with "finetune.train_file required" "finetune.train_file: must not be empty" \
  "$BIN" train "${FT[@]}" --set finetune.train_file=
expect_fail_with "distill needs a teacher" "distill.teacher: must name the teacher" "$BIN" train "${FT[@]}" --set mode=distill
[ ! -e ft.jsonl ] && pass "no metrics from failed runs" || fail "metrics written by a failed run"

# --- fine-tune from the snapshot named in the recipe
"$BIN" train "${FT[@]}" --set finetune.init_from=pre-ckpt/step-00000030 --dump-params ft >log.ft 2>&1; rc=$?
[ $rc -eq 0 ] && pass "finetune exit 0" || { fail "finetune rc=$rc"; tail -20 log.ft; }
grep -q "initial weights from pre-ckpt/step-00000030 (step 30" log.ft && pass "weights from the snapshot" \
  || fail "no 'initial weights from' line"
grep -q "router 0 (frozen)" log.ft && grep -q "attention 0.5" log.ft && pass "multipliers logged" || fail "multipliers line"
grep -q "fine-tuning examples from sft.jsonl" log.ft && pass "data summary" || fail "data summary"
first_step=$(grep '"event":"step"' ft.jsonl | head -1 | grep -o '"step":[0-9]*' | sed 's/.*://')
[ "$first_step" = 1 ] && pass "fine-tuning starts at step 1 (fresh position and schedule)" || fail "first step $first_step"
first=$(grep '"event":"step"' ft.jsonl | head -3 | grep -o '"loss":[0-9.]*' | sed 's/.*://' | awk '{s+=$1} END {print s/NR}')
last=$(grep '"event":"step"' ft.jsonl | tail -3 | grep -o '"loss":[0-9.]*' | sed 's/.*://' | awk '{s+=$1} END {print s/NR}')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a - b > 0.5) }' && pass "loss fell from $first to $last" \
  || fail "loss did not fall by > 0.5 nat ($first -> $last)"
[ -d ft-ckpt/step-00000040 ] && pass "final fine-tuning snapshot" || fail "no ft-ckpt/step-00000040"
"$BIN" train "${FT[@]}" --set finetune.init_from=pre-ckpt/step-00000030 --init-from ft-ckpt/step-00000020 \
  --set schedule.total_steps=1 --set schedule.warmup_steps=0 --set checkpoint.every_steps=0 \
  --set logging.metrics_file= >log.cli 2>&1 && grep -q "initial weights from ft-ckpt/step-00000020 (step 20" log.cli \
  && pass "--init-from wins over finetune.init_from" || { fail "--init-from precedence"; tail -5 log.cli; }

# --- frozen router bitwise unchanged; trained parts moved (raw bytes of the dumped safetensors)
check_frozen() {  # check_frozen PRE.safetensors FT.safetensors
python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return {k: data[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]
            for k, v in header.items() if k != "__metadata__"}
pre, ft = load(sys.argv[1]), load(sys.argv[2])
assert set(ft) <= set(pre), "tensors missing from the pretrained dump"
router = [k for k in ft if ".block_sparse_moe.gate." in k]
assert any(k.endswith("e_score_correction_bias") for k in router), router
ok = True
for k in router:
    if pre[k] != ft[k]: print("frozen tensor changed:", k); ok = False
for part in (".experts.", "self_attn.q_proj", "shared_experts.", "embed_tokens"):
    moved = [k for k in ft if part in k and pre[k] != ft[k]]
    if not moved: print("nothing moved in", part); ok = False
if ok: print(len(router), "router tensors unchanged")
sys.exit(0 if ok else 1)
PY
}
check_frozen pre/rank0.safetensors ft/rank0.safetensors && pass "router frozen bitwise; experts and attention moved" \
  || fail "frozen / trained check"

# --- the same fine-tuning on 2 ranks (dp = 2, ZeRO-2, ep = 2): same result, router still frozen
if [ -n "$MPIEXEC" ] && [ -n "$COMPARE" ]; then
  "$MPIEXEC" --oversubscribe -np 2 "$BIN" train "${FT[@]}" --set finetune.init_from=pre-ckpt/step-00000030 \
    --set threads=1 --set parallel.zero_stage=2 --set parallel.ep=2 --set checkpoint.every_steps=0 \
    --set logging.metrics_file=ft2.jsonl --dump-params ft2 >log.ft2 2>&1 && pass "2-rank fine-tune" \
    || { fail "2-rank fine-tune"; tail -20 log.ft2; }
  check_frozen pre/rank0.safetensors ft2/rank1.safetensors && pass "router frozen on rank 1" || fail "rank 1 frozen check"
  # Resuming the fine-tuning run at step 20 (data position and schedule from the snapshot) ends
  # bitwise where the uninterrupted run ended.
  "$BIN" train "${FT[@]}" --resume ft-ckpt/step-00000020 --set checkpoint.every_steps=0 \
    --set logging.metrics_file=ft-res.jsonl --dump-params ft-res >log.res 2>&1 \
    && "$COMPARE" 0 ft/rank0.safetensors ft-res >log.cmp-res 2>&1 && pass "resume at step 20 is bitwise exact" \
    || { fail "resume"; tail -5 log.res log.cmp-res; }
  "$COMPARE" 1e-4 ft/rank0.safetensors ft2 >log.cmp 2>&1 && pass "2-rank parameters match 1 rank ($(tail -1 log.cmp))" \
    || { fail "2-rank parameters differ"; cat log.cmp; }
fi

mt_finish
