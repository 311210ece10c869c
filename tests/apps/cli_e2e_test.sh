#!/usr/bin/env bash
# End-to-end tests of the moetrain binary: real tokenizer training, shard preparation, training,
# error reporting on bad inputs, Ctrl-C handling. Usage: cli_e2e_test.sh MOETRAIN_BINARY
set -uo pipefail
BIN=$1
. "$(dirname "$0")/lib.sh"
mt_workdir e2e

# A small corpus: 400 generated "fortunes" from a fixed word list, '%'-separated.
words_corpus 400 > corpus.txt

# --- help
"$BIN" --help >/dev/null && "$BIN" train --help >/dev/null && "$BIN" data prepare --help >/dev/null \
  && pass "help" || fail "help"

# --- bad inputs for data commands, nothing left behind
expect_fail_with "missing corpus" "nope.txt" "$BIN" data tokenizer --input nope.txt --vocab-size 100 --out tok.model
[ ! -e tok.model ] && pass "no tokenizer written on error" || fail "tokenizer written on error"
: > empty.txt
expect_fail_with "empty corpus" "empty" "$BIN" data tokenizer --input empty.txt --vocab-size 100 --out tok.model
printf 'good line\n%%\nbad \xff byte\n%%\n' > bad.txt
expect_fail_with "non-UTF-8 corpus" "bad.txt:3" "$BIN" data tokenizer --input bad.txt --vocab-size 100 --out tok.model

# --- the real pipeline
"$BIN" data tokenizer --input corpus.txt --vocab-size 400 --out tok.model >log.tok 2>&1 \
  && [ -s tok.model ] && pass "tokenizer" || { fail "tokenizer"; cat log.tok; }
"$BIN" data prepare --input corpus.txt --tokenizer tok.model --out shards >log.prep 2>&1 \
  && [ -s shards/meta.json ] && pass "prepare" || { fail "prepare"; cat log.prep; }
mkdir -p notshards && echo keep > notshards/file
expect_fail_with "prepare refuses to replace a foreign directory" "notshards" \
  "$BIN" data prepare --input corpus.txt --tokenizer tok.model --out notshards
[ "$(cat notshards/file)" = keep ] && pass "foreign directory intact" || fail "foreign directory changed"

cat > recipe.yaml <<'YAML'
model:
  hidden_size: 32
  intermediate_size: 64
  num_hidden_layers: 2
  num_attention_heads: 4
  num_key_value_heads: 2
  num_local_experts: 4
  num_experts_per_tok: 2
  num_shared_experts: 1
  moe_intermediate_size: 32
  max_position_embeddings: 64
data:
  tokenizer: tok.model
  shards: shards
optim:
  lr: 1.0e-2
schedule:
  warmup_steps: 5
  total_steps: 60
batch:
  micro_batch: 8
  grad_accum: 2
  seq_len: 32
logging:
  every_steps: 10
  metrics_file: metrics.jsonl
eval:
  every_steps: 30
  batches: 2
sample:
  prompts: ["the cat"]
  max_new_tokens: 8
threads: 2
YAML

# --- recipe errors carry file:line:col and the key path, before any work starts
sed 's/  lr: 1.0e-2/  lr: 1.0e-2\n  lrr: 3/' recipe.yaml > bad1.yaml
expect_fail_with "unknown recipe key" "bad1.yaml:17:3: optim.lrr" "$BIN" train bad1.yaml
sed 's/  num_experts_per_tok: 2/  num_experts_per_tok: 9/' recipe.yaml > bad2.yaml
expect_fail_with "conflicting recipe" "bad2.yaml:8:" "$BIN" train bad2.yaml
sed 's/  seq_len: 32/  seq_len: many/' recipe.yaml > bad3.yaml
expect_fail_with "wrong type" "batch.seq_len" "$BIN" train bad3.yaml
expect_fail_with "bad --set" "--set optim.beta" "$BIN" train recipe.yaml --set optim.beta=0.9
printf 'a b\n%%\nc d\n%%\ne f\n%%\n' > small.txt
"$BIN" data prepare --input small.txt --tokenizer tok.model --out smallshards --val-fraction 0.5 >/dev/null 2>&1 \
  || fail "prepare small corpus"
expect_fail_with "corpus too small for one sequence" "too small for one sequence" \
  "$BIN" train recipe.yaml --set data.shards=smallshards
[ ! -e metrics.jsonl ] && pass "no metrics written by failed runs" || fail "metrics written by a failed run"

# --- dry run prints the memory plan and trains nothing
out=$("$BIN" train recipe.yaml --dry-run 2>&1)
grep -q "memory plan: activations" <<<"$out" && ! grep -q "step 1/" <<<"$out" && pass "dry run" || { fail "dry run"; echo "$out" | tail; }

# --- training learns: the final logged train loss is well below the first, val beats unigram
"$BIN" train recipe.yaml >log.train 2>&1; rc=$?
[ $rc -eq 0 ] && pass "train exit 0" || { fail "train rc=$rc"; tail -20 log.train; }
first=$(grep '"event":"step"' metrics.jsonl | head -1 | grep -o '"loss":[0-9.]*' | sed 's/"loss"://')
last=$(grep '"event":"step"' metrics.jsonl | tail -1 | grep -o '"loss":[0-9.]*' | sed 's/"loss"://')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a - b > 1.0) }' && pass "loss fell from $first to $last" \
  || fail "loss did not fall by > 1 nat ($first -> $last)"
final=$(grep '"event":"final"' metrics.jsonl)
val=$(grep -o '"val_loss":[0-9.]*' <<<"$final" | sed 's/.*://')
uni=$(grep -o '"unigram_val_loss":[0-9.]*' <<<"$final" | sed 's/.*://')
awk -v v="$val" -v u="$uni" 'BEGIN { exit !(v < u) }' && pass "val $val below unigram $uni" \
  || fail "val $val not below unigram $uni"
grep -q '"event":"eval","step":30' metrics.jsonl && pass "periodic eval" || fail "no eval at step 30"
grep -q "^--- the cat" log.train && pass "samples printed" || fail "no samples"
[ "$(grep -c '"event":"step"' metrics.jsonl)" -eq 7 ] && pass "log every 10 steps (+ step 1)" || fail "step lines"

# --- Ctrl-C stops cleanly at a step boundary
rm -f metrics.jsonl
"$BIN" train recipe.yaml --set schedule.total_steps=100000 --set logging.every_steps=1 >log.int 2>&1 &
pid=$!
for _ in $(seq 1 200); do grep -q "step 3/" log.int && break; sleep 0.1; done
kill -INT $pid
wait $pid; rc=$?
[ $rc -eq 130 ] && grep -q "interrupted: stopped cleanly" log.int && tail -1 metrics.jsonl | grep -q interrupted \
  && pass "Ctrl-C clean stop" || { fail "Ctrl-C (rc=$rc)"; tail -5 log.int; }

mt_finish
