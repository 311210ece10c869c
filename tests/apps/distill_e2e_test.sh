#!/usr/bin/env bash
# End-to-end test of `mode: distill` with the shipped recipes at tiny sizes: a teacher trained by
# recipes/tiny.yaml (snapshot on), then students from recipes/distill.yaml.
#   - alpha = 0 gives bitwise the loss curve (loss, grad norm, batch hash per step) of mode pretrain;
#   - with alpha = 0.7 the KL to the teacher falls and ends below the alpha = 0 student's KL;
#   - the teacher is unchanged (in memory: the run checks its fingerprint; on disk: checksums);
#   - a teacher from another tokenizer, or a missing one, is refused with its directory named;
#   - with MPIEXEC: 2 ranks (ep 2, ZeRO 3) give the single-rank KL curve (float reassociation only).
# Usage: distill_e2e_test.sh MOETRAIN_BINARY SOURCE_DIR [MPIEXEC]
set -uo pipefail
BIN=$1
SRC=$2
MPIEXEC=${3:-}
. "$(dirname "$0")/lib.sh"
mt_workdir distill
field() { grep "\"event\":\"$1\"" "$2" | grep -o "\"$3\":[^,}]*" | sed 's/.*://'; }  # event file key

words_corpus 400 > corpus.txt
mt_prepare_data "$BIN" corpus.txt 400 || mt_finish

TINY=(--set data.tokenizer=tok.model --set data.shards=shards --set batch.micro_batch=8
      --set batch.seq_len=32 --set eval.batches=2 --set eval.every_steps=0 --set sample.prompts=[]
      --set threads=2 --set schedule.warmup_steps=5)
# 1. The teacher: recipes/tiny.yaml, smaller, with a snapshot at the end.
"$BIN" train "$SRC/recipes/tiny.yaml" "${TINY[@]}" --set model.hidden_size=48 \
  --set model.num_hidden_layers=2 --set model.moe_intermediate_size=48 --set model.max_position_embeddings=64 \
  --set optim.lr=1e-2 --set schedule.total_steps=60 --set logging.metrics_file=teacher.jsonl \
  --set checkpoint.dir=teacher-ckpt --set checkpoint.every_steps=60 --set checkpoint.async=false \
  >log.teacher 2>&1 && [ -d teacher-ckpt/step-00000060 ] && pass "teacher trained" ||
  { fail "teacher"; tail -5 log.teacher; exit 1; }
TEACHER=teacher-ckpt/step-00000060
sums_before=$(cd "$TEACHER" && sha256sum * | sort)

# 2. Students: recipes/distill.yaml at tiny sizes, 30 steps, a line per step.
STUDENT=("${TINY[@]}" --set model.hidden_size=16 --set model.num_hidden_layers=1
         --set model.moe_intermediate_size=16 --set model.intermediate_size=32
         --set model.max_position_embeddings=64 --set optim.lr=1e-2 --set schedule.total_steps=30
         --set logging.every_steps=1 --set distill.teacher=$TEACHER)
student() { "$BIN" train "$SRC/recipes/distill.yaml" "${STUDENT[@]}" "$@"; }
student --set mode=pretrain --set logging.metrics_file=pretrain.jsonl >log.pretrain 2>&1 ||
  { fail "pretrain student"; tail -5 log.pretrain; }
student --set distill.alpha=0 --set logging.metrics_file=a0.jsonl >log.a0 2>&1 ||
  { fail "alpha 0 student"; tail -5 log.a0; }
student --set logging.metrics_file=a7.jsonl >log.a7 2>&1 || { fail "alpha 0.7 student"; tail -5 log.a7; }

# alpha = 0 is plain training, bit for bit (JSON doubles are printed in round-trip form).
for key in loss grad_norm batch_hash aux_loss; do
  a=$(field step pretrain.jsonl $key); b=$(field step a0.jsonl $key)
  [ -n "$a" ] && [ "$(wc -l <<<"$a")" -eq 30 ] && [ "$a" = "$b" ] && pass "alpha 0 == pretrain: $key (30 steps)" ||
    { fail "alpha 0 != pretrain: $key"; diff <(echo "$a") <(echo "$b") | head -4; }
done
[ "$(field final pretrain.jsonl val_loss)" = "$(field final a0.jsonl val_loss)" ] &&
  pass "alpha 0 == pretrain: final val loss" || fail "alpha 0 final val loss differs"

# Distillation pulls the student toward the teacher.
kl_first=$(field distill a7.jsonl kl | head -1); kl_last=$(field distill a7.jsonl kl | tail -1)
kl_ce=$(field distill a0.jsonl kl | tail -1)
awk -v a="$kl_first" -v b="$kl_last" 'BEGIN { exit !(b < 0.5 * a) }' &&
  pass "KL to the teacher fell from $kl_first to $kl_last" || fail "KL did not halve ($kl_first -> $kl_last)"
awk -v d="$kl_last" -v c="$kl_ce" 'BEGIN { exit !(d < c) }' &&
  pass "distilled student's KL $kl_last below the CE-only student's $kl_ce" ||
  fail "distilled KL $kl_last not below CE-only $kl_ce"

# The teacher was never written: in memory (checked by the run) and on disk.
grep -q "distill: teacher weights unchanged" log.a7 && pass "teacher unchanged in memory" ||
  fail "no teacher-unchanged line"
[ "$(cd "$TEACHER" && sha256sum * | sort)" = "$sums_before" ] && pass "teacher files unchanged" ||
  fail "teacher files changed"

# Layout independence: the teacher is sharded like the student (experts over ep).
if [ -n "$MPIEXEC" ] && command -v "$MPIEXEC" >/dev/null; then
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$MPIEXEC" --oversubscribe -np 2 \
    "$BIN" train "$SRC/recipes/distill.yaml" "${STUDENT[@]}" --set threads=1 --set parallel.ep=2 \
    --set parallel.zero_stage=3 --set logging.metrics_file=np2.jsonl >log.np2 2>&1 ||
    { fail "2-rank student"; tail -5 log.np2; }
  paste <(field distill a7.jsonl kl) <(field distill np2.jsonl kl) | awk '
    { n++; d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 * $1) bad++ }
    END { exit !(n == 30 && bad == 0) }' && pass "2 ranks (ep 2, ZeRO 3) match 1 rank's KL curve" ||
    { fail "2-rank KL curve differs"; paste <(field distill a7.jsonl kl) <(field distill np2.jsonl kl) | tail -3; }
else
  echo "SKIP: 2-rank distillation (no MPIEXEC given)"
fi

# Refusals name the teacher directory.
"$BIN" data tokenizer --input corpus.txt --vocab-size 300 --out tok2.model >/dev/null 2>&1 &&
  "$BIN" data prepare --input corpus.txt --tokenizer tok2.model --out shards2 >/dev/null 2>&1
out=$(student --set data.tokenizer=tok2.model --set data.shards=shards2 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "$TEACHER: distill.teacher was trained with another tokenizer" <<<"$out" &&
  pass "other tokenizer refused" || { fail "other tokenizer (rc=$rc)"; tail -3 <<<"$out"; }
out=$(student --set distill.teacher=nowhere 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "nowhere" <<<"$out" && pass "missing teacher refused" ||
  { fail "missing teacher (rc=$rc)"; tail -3 <<<"$out"; }

mt_finish
