#!/usr/bin/env bash
# End-to-end tests of `moetrain eval` and `moetrain generate` on the golden Mixtral fixture
# (tests/fixtures/mixtral-tiny: float64 reference loss in expected.json). The fixture has no
# tokenizer, so generation runs on token ids. Usage: infer_cli_test.sh MOETRAIN_BINARY FIXTURE_DIR
set -uo pipefail
BIN=$1
FIX=$2/mixtral-tiny
. "$(dirname "$0")/lib.sh"
mt_workdir infer

# --- eval: the loss of the fixture's 48 tokens equals the float64 reference CE (47 targets).
out=$("$BIN" eval --hf "$FIX/model" --input "$FIX/tokens.txt" --tokens --dump-logits logits.safetensors 2>&1)
echo "$out"
want=$(sed -n 's/.*"ce_loss": *\([0-9.eE+-]*\).*/\1/p' "$FIX/expected.json")
got=$(sed -n 's/.*loss \([0-9.]*\),.*/\1/p' <<<"$out")
if [ -n "$got" ] && awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b) }'; then
  pass "eval loss $got == reference $want"; else fail "eval loss '$got' vs reference '$want'"; fi
grep -q "47 targets" <<<"$out" && pass "eval scores 47 targets" || fail "eval target count"
# The dump: logits F32 [47, 256] and tokens I32 [48] in the safetensors JSON header.
header=$(head -c 400 logits.safetensors 2>/dev/null | tr -d '\0')
grep -q '"logits":{"dtype":"F32","shape":\[47,256\]' <<<"$header" && grep -q '"tokens":{"dtype":"I32","shape":\[48\]' <<<"$header" \
  && pass "dump-logits header" || { fail "dump-logits header"; echo "$header"; }

# --- eval with short windows scores the same 47 targets (each window restarts the cache).
out=$("$BIN" eval --hf "$FIX/model" --input "$FIX/tokens.txt" --tokens --window 10 2>&1)
grep -q "47 targets, window 10" <<<"$out" && pass "eval --window 10" || { fail "eval --window 10"; echo "$out"; }

# --- generate: deterministic for a seed; top-k 1 is greedy (= temperature 0).
a=$("$BIN" generate --hf "$FIX/model" --prompt-tokens "1 2 3" --max-new-tokens 12 --seed 5 --temperature 1 2>&1)
b=$("$BIN" generate --hf "$FIX/model" --prompt-tokens "1 2 3" --max-new-tokens 12 --seed 5 --temperature 1 2>&1)
[ "$a" = "$b" ] && [ "$(wc -w <<<"$a")" -eq 12 ] && pass "generate deterministic: $a" || fail "generate: '$a' vs '$b'"
ids_ok=1; for t in $a; do { [[ $t =~ ^[0-9]+$ ]] && [ "$t" -lt 256 ]; } || ids_ok=0; done
[ $ids_ok -eq 1 ] && pass "generated ids in the vocabulary" || fail "generated ids: $a"
k1=$("$BIN" generate --hf "$FIX/model" --prompt-tokens "1 2 3" --max-new-tokens 8 --top-k 1 --temperature 1.3 --seed 9 2>&1)
g=$("$BIN" generate --hf "$FIX/model" --prompt-tokens "1 2 3" --max-new-tokens 8 --temperature 0 2>&1)
[ "$k1" = "$g" ] && pass "top-k 1 == greedy: $g" || fail "top-k 1 '$k1' vs greedy '$g'"

# --- bad flags and files name what is wrong.
echo "1 2 x 4" > bad_tokens.txt
echo "1 2 999" > big_tokens.txt
expect_fail_with "non-integer token file" "bad_tokens.txt: token 2 ('x')" "$BIN" eval --hf "$FIX/model" --input bad_tokens.txt --tokens
expect_fail_with "token outside vocabulary" "big_tokens.txt: token 2 (id 999)" "$BIN" eval --hf "$FIX/model" --input big_tokens.txt --tokens
expect_fail_with "missing input" "--input nope.txt" "$BIN" eval --hf "$FIX/model" --input nope.txt --tokens
expect_fail_with "missing model" "nope/config.json" "$BIN" eval --hf nope --input bad_tokens.txt --tokens
expect_fail_with "no model flag" "--hf" "$BIN" eval --input bad_tokens.txt --tokens
expect_fail_with "tokens and tokenizer" "exactly one of --tokenizer and --tokens" "$BIN" eval --hf "$FIX/model" --input big_tokens.txt
expect_fail_with "bad window" "--window 1" "$BIN" eval --hf "$FIX/model" --input "$FIX/tokens.txt" --tokens --window 1
expect_fail_with "bad prompt ids" "--prompt-tokens: token 1 (id 256)" "$BIN" generate --hf "$FIX/model" --prompt-tokens "0 256"
expect_fail_with "prompt without tokenizer" "--prompt needs --tokenizer" "$BIN" generate --hf "$FIX/model" --prompt "hello"
expect_fail_with "missing tokenizer" "nope.model" "$BIN" generate --hf "$FIX/model" --tokenizer nope.model --prompt "hello"
expect_fail_with "bad top-p" "--top-p" "$BIN" generate --hf "$FIX/model" --prompt-tokens "1" --top-p 0

mt_finish
