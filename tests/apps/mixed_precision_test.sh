#!/usr/bin/env bash
# Mixed precision end to end: a small MoE trained for 200 steps on the fortunes corpus in fp32, bf16
# and fp16 (dynamic loss scaling). The 16-bit runs must track the fp32 loss curve: every 10-step mean
# of the training loss within 2% of fp32's, and the final validation loss within 2%; they must not be
# bitwise fp32 (the rounding really happens). Usage: mixed_precision_test.sh MOETRAIN
set -uo pipefail
BIN=$1
CORPUS=/usr/share/games/fortunes
[ -d "$CORPUS" ] || { echo "SKIP: $CORPUS missing (scripts/install-deps.sh installs fortunes)"; exit 77; }
WORK=$(mktemp -d /tmp/moetrain-precision.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
fails=0
"$BIN" data tokenizer --input "$CORPUS" --vocab-size 512 --out tok.model >/dev/null 2>&1 \
  && "$BIN" data prepare --input "$CORPUS" --tokenizer tok.model --out shards >/dev/null 2>&1 \
  || { echo "FAIL: tokenizer/prepare"; exit 1; }
COMMON=(--set data.tokenizer=tok.model --set data.shards=shards --set model.hidden_size=64
        --set model.num_hidden_layers=2 --set model.num_local_experts=4 --set model.moe_intermediate_size=64
        --set model.intermediate_size=128 --set model.num_attention_heads=4 --set model.num_key_value_heads=2
        --set batch.seq_len=64 --set batch.micro_batch=8 --set schedule.total_steps=200
        --set schedule.warmup_steps=20 --set eval.batches=4 --set 'sample.prompts=[]'
        --set logging.every_steps=1 --set threads=1)
for p in fp32 bf16 fp16; do
  "$BIN" train "${COMMON[@]}" --set precision=$p --set logging.metrics_file=$p.jsonl >$p.log 2>&1 \
    || { echo "FAIL: $p run"; tail -5 $p.log; fails=$((fails + 1)); }
done
losses() { grep '"event":"step"' "$1.jsonl" | grep -o '"loss":[-0-9.e+]*' | sed 's/.*://'; }
val() { grep '"event":"final"' "$1.jsonl" | grep -o '"val_loss":[-0-9.e+]*' | sed 's/.*://'; }
losses fp32 > fp32.loss
[ "$(wc -l < fp32.loss)" -eq 200 ] || { echo "FAIL: fp32 has $(wc -l < fp32.loss) steps"; fails=$((fails + 1)); }
for p in bf16 fp16; do
  losses $p > $p.loss
  if paste fp32.loss $p.loss | awk 'NF != 2 { bad = 1 }
      { a[NR] = $1; b[NR] = $2; if ($1 != $2) differ = 1 }
      END { for (i = 1; i + 9 <= NR; ++i) { sa = 0; sb = 0; for (j = i; j < i + 10; ++j) { sa += a[j]; sb += b[j] }
              d = (sb - sa) / sa; if (d < 0) d = -d; if (d > worst) worst = d }
            printf "  worst 10-step mean difference %.4f\n", worst; exit (bad || worst > 0.02 || !differ || NR != 200) }'; then
    echo "PASS: $p tracks the fp32 loss curve within 2%"
  else echo "FAIL: $p loss curve"; fails=$((fails + 1)); fi
  if awk -v a="$(val fp32)" -v b="$(val $p)" 'BEGIN { d = (b - a) / a; if (d < 0) d = -d; printf "  val %s vs %s\n", b, a; exit !(d <= 0.02) }'; then
    echo "PASS: $p final validation loss within 2% of fp32"
  else echo "FAIL: $p final validation loss"; fails=$((fails + 1)); fi
done
# fp16 logs its loss scale every step; it must have stayed finite and positive.
grep '"event":"step"' fp16.jsonl | grep -o '"loss_scale":[-0-9.e+]*' | sed 's/.*://' | awk '$1 <= 0 { bad = 1 } END { exit bad || NR != 200 }' \
  && echo "PASS: fp16 loss scale recorded every step" || { echo "FAIL: fp16 loss scale"; fails=$((fails + 1)); }
echo "$fails failure(s)"
exit $((fails > 0))
