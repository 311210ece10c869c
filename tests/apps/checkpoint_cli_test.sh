#!/usr/bin/env bash
# End-to-end tests of the checkpoint-facing commands on a tiny trained run: `inspect`, `--ckpt` for
# eval / generate, `export`, `import`, `train --init-from` of an import, and their error messages.
# Independent references: eval through the exported HF folder (a second loader), a re-export of the
# import (bitwise), the snapshots' param fields compared by compare_snapshots, training metrics.
# Usage: checkpoint_cli_test.sh MOETRAIN_BINARY COMPARE_SNAPSHOTS_BINARY FIXTURE_DIR
set -uo pipefail
BIN=$1
CMP=$2
FIX=$3/mixtral-tiny
. "$(dirname "$0")/lib.sh"
mt_workdir ckcli
# The raw bytes of tensor $2 in safetensors file $1, hex (python3 stdlib only).
tensor_hex() {
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
with open(sys.argv[1], 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); e = h[sys.argv[2]]
    a, b = e['data_offsets']; f.seek(8 + n + a); print(f.read(b - a).hex())
PY
}
# step-1 loss (full precision) from a metrics file.
first_loss() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j.get("event") == "step" and j["step"] == 1: print(repr(j["loss"]))' "$1"; }

words_corpus 300 > corpus.txt
mt_prepare_data "$BIN" corpus.txt 300 || mt_finish

TINY=(--set data.tokenizer=tok.model --set data.shards=shards --set model.hidden_size=32
      --set model.intermediate_size=64 --set model.moe_intermediate_size=32
      --set model.num_hidden_layers=2 --set model.num_local_experts=4
      --set model.max_position_embeddings=64 --set batch.seq_len=32 --set batch.micro_batch=4
      --set schedule.warmup_steps=2 --set logging.every_steps=1 --set eval.batches=1
      --set sample.prompts=[] --set threads=2)
"$BIN" train "${TINY[@]}" --set schedule.total_steps=6 --set checkpoint.every_steps=3 \
  --set checkpoint.dir=ck --set logging.metrics_file=m.jsonl >log.train 2>&1 \
  && [ -d ck/step-00000006 ] && pass "tiny training wrote snapshots" || { fail "training"; tail log.train; }

# --- inspect: a root means its latest; every dataset verified.
out=$("$BIN" inspect ck 2>&1)
grep -q "step: *6$" <<<"$out" && grep -q "datasets verified" <<<"$out" && pass "inspect root -> latest" \
  || { fail "inspect root"; echo "$out"; }
out=$("$BIN" inspect ck/step-00000003 2>&1)
grep -q "step: *3$" <<<"$out" && pass "inspect a snapshot dir" || { fail "inspect step 3"; echo "$out"; }

# --- eval --ckpt == eval --hf of the f32 export (bitwise logits).
seq 3 60 | tr '\n' ' ' > ids.txt
la=$("$BIN" eval --ckpt ck --input ids.txt --tokens --dump-logits a.safetensors 2>&1)
"$BIN" export --ckpt ck --out hfA >log.exp 2>&1 && [ -s hfA/model.safetensors ] && [ -s hfA/tokenizer.model ] \
  && pass "export f32" || { fail "export"; cat log.exp; }
lb=$("$BIN" eval --hf hfA --input ids.txt --tokens --dump-logits b.safetensors 2>&1)
[ -n "$la" ] && [ "$la" = "$lb" ] && pass "eval --ckpt == eval --hf export: $la" || fail "eval: '$la' vs '$lb'"
ha=$(tensor_hex a.safetensors logits); hb=$(tensor_hex b.safetensors logits)
[ ${#ha} -gt 1000 ] && [ "$ha" = "$hb" ] && pass "logits bitwise equal" || fail "logits differ"
grep -q '"bos_token_id": 1' hfA/generation_config.json && grep -q '"eos_token_id": 2' hfA/generation_config.json \
  && pass "generation_config from the tokenizer" || fail "generation_config"

# --- text eval / generate with the snapshot's own tokenizer (recipe data.tokenizer).
head -20 corpus.txt > text.txt
out=$("$BIN" eval --ckpt ck --input text.txt 2>&1) && grep -q "perplexity" <<<"$out" \
  && pass "eval --ckpt text with the recorded tokenizer" || { fail "eval text"; echo "$out"; }
g1=$("$BIN" generate --ckpt ck --prompt-tokens "3 4 5" --max-new-tokens 10 --seed 4 --temperature 1 2>&1)
g2=$("$BIN" generate --ckpt ck/step-00000006 --prompt-tokens "3 4 5" --max-new-tokens 10 --seed 4 --temperature 1 2>&1)
g3=$("$BIN" generate --hf hfA --prompt-tokens "3 4 5" --max-new-tokens 10 --seed 4 --temperature 1 2>&1)
[ "$(wc -w <<<"$g1")" -eq 10 ] && [ "$g1" = "$g2" ] && [ "$g1" = "$g3" ] \
  && pass "generate --ckpt deterministic, = --hf export: $g1" || fail "generate: '$g1' '$g2' '$g3'"
"$BIN" generate --ckpt ck --prompt "the cat" --max-new-tokens 5 >/dev/null 2>&1 \
  && pass "generate --ckpt --prompt" || fail "generate --prompt"

# --- export -> import -> export is bitwise (f32), and the param fields are bitwise equal.
"$BIN" import --hf hfA --out B >log.imp 2>&1 && [ -s B/recipe.yaml ] && [ "$(cat B/latest)" = step-00000000 ] \
  && pass "import" || { fail "import"; cat log.imp; }
grep -q "step: *0$" <<<"$("$BIN" inspect B 2>&1)" && pass "imported snapshot at step 0" || fail "inspect import"
"$BIN" export --ckpt B --out hfB >/dev/null 2>&1 || fail "export of the import"
python3 - hfA/model.safetensors hfB/model.safetensors <<'PY' && pass "re-export bitwise equal" || fail "re-export differs"
import json, struct, sys
def load(p):
    with open(p, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); d = f.read()
    h.pop('__metadata__', None)
    return {k: (v['dtype'], v['shape'], d[v['data_offsets'][0]:v['data_offsets'][1]]) for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
sys.exit(0 if a == b and len(a) > 10 else 1)
PY
"$CMP" param ck/step-00000006 B/step-00000000 && pass "param fields bitwise equal" || fail "param fields"

# --- a Mixtral folder without a tokenizer (the golden fixture): same loss through the import.
"$BIN" import --hf "$FIX/model" --out fx >/dev/null 2>&1 || fail "import of the mixtral fixture"
lh=$("$BIN" eval --hf "$FIX/model" --input "$FIX/tokens.txt" --tokens 2>&1)
lc=$("$BIN" eval --ckpt fx --input "$FIX/tokens.txt" --tokens 2>&1)
[ -n "$lh" ] && [ "$lh" = "$lc" ] && pass "mixtral import: eval --ckpt == eval --hf: $lc" || fail "fixture: '$lh' vs '$lc'"
expect_fail_with "import without a tokenizer needs --tokenizer" "records no tokenizer checksum; pass --tokenizer" \
  "$BIN" export --ckpt fx --out fxhf
"$BIN" export --ckpt fx --out fxhf --no-tokenizer >/dev/null 2>&1 && grep -q '"model_type": "mixtral"' fxhf/config.json \
  && [ ! -e fxhf/tokenizer.model ] && pass "export --no-tokenizer" || fail "export --no-tokenizer"

# --- fine-tuning: --init-from the import == --init-from the trained snapshot, and both start
# where training ended (closer to its last loss than a fresh start is).
for src in ck/step-00000006 B/step-00000000; do
  "$BIN" train "${TINY[@]}" --set schedule.total_steps=2 --set logging.metrics_file=init-$(dirname $src).jsonl \
    --init-from $src >log.init 2>&1 || { fail "train --init-from $src"; tail -3 log.init; }
done
fresh=$(first_loss m.jsonl); ia=$(first_loss init-ck.jsonl); ib=$(first_loss init-B.jsonl)
last=$(python3 -c 'import json,sys
print([json.loads(l)["loss"] for l in open("m.jsonl") if "\"step\"" in l and json.loads(l).get("event")=="step"][-1])')
[ -n "$ia" ] && [ "$ia" = "$ib" ] && pass "init-from import == init-from snapshot (step-1 loss $ia)" \
  || fail "init-from losses '$ia' vs '$ib'"
python3 -c "import sys; f,i,l=map(float,sys.argv[1:]); sys.exit(0 if abs(i-l) < abs(f-l) else 1)" "$fresh" "$ia" "$last" \
  && pass "init-from starts near the last loss $last (fresh $fresh, init $ia)" || fail "init-from loss $ia (fresh $fresh, last $last)"

# --- bf16 export: BF16 tensors; loads and evaluates.
"$BIN" export --ckpt ck --out hf16 --dtype bf16 >/dev/null 2>&1 && head -c 300 hf16/model.safetensors | grep -q BF16 \
  && "$BIN" eval --hf hf16 --input ids.txt --tokens >/dev/null 2>&1 && pass "bf16 export" || fail "bf16 export"

# --- errors name what is wrong.
mkdir -p empty
expect_fail_with "inspect missing dir" "nope: no such snapshot directory" "$BIN" inspect nope
expect_fail_with "inspect not a snapshot" "empty: not a snapshot" "$BIN" inspect empty
expect_fail_with "eval --ckpt not a snapshot" "--ckpt: empty: not a snapshot" "$BIN" eval --ckpt empty --input ids.txt --tokens
expect_fail_with "--hf and --ckpt" "only one of --hf and --ckpt" "$BIN" eval --ckpt ck --hf hfA --input ids.txt --tokens
mkdir -p badroot && echo step-00000042 > badroot/latest
expect_fail_with "latest points nowhere" "points at step-00000042" "$BIN" inspect badroot
"$BIN" data tokenizer --input corpus.txt --vocab-size 296 --out other.model >/dev/null 2>&1 || fail "second tokenizer"
expect_fail_with "tokenizer mismatch" "is not the one" "$BIN" eval --ckpt ck --input text.txt --tokenizer other.model
expect_fail_with "export tokenizer mismatch" "tokenizer other.model (checksum" "$BIN" export --ckpt ck --out hfX --tokenizer other.model
mkdir -p elsewhere
expect_fail_with "recorded tokenizer gone" "(data.tokenizer: 'tok.model') does not exist; pass --tokenizer" \
  bash -c "cd elsewhere && '$BIN' generate --ckpt ../ck --prompt hi"
(cd elsewhere && "$BIN" generate --ckpt ../ck --prompt hi --tokenizer ../tok.model --max-new-tokens 3 >/dev/null 2>&1) \
  && pass "--tokenizer overrides the recorded one" || fail "--tokenizer override"
expect_fail_with "export into a non-empty folder" "hfA" "$BIN" export --ckpt ck --out hfA
expect_fail_with "export bad dtype" "--dtype" "$BIN" export --ckpt ck --out hfY --dtype f64
expect_fail_with "import into a non-empty root" "--out B: exists and is not empty" "$BIN" import --hf hfA --out B
expect_fail_with "import missing folder" "nohf/config.json" "$BIN" import --hf nohf --out C
expect_fail_with "import recipe missing" "nope.yaml" "$BIN" import --hf hfA --out C --recipe nope.yaml
[ ! -e C ] && pass "failed imports leave nothing" || fail "C created"
# One flipped byte in a param chunk (located by its values, taken from the f32 export).
cp -r ck/step-00000006 corrupt
python3 - hfA/model.safetensors corrupt/shard-00000.h5 <<'PY'
import json, struct, sys
with open(sys.argv[1], 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n))
    a, _ = h['model.embed_tokens.weight']['data_offsets']; f.seek(8 + n + a + 160); needle = f.read(64)
data = bytearray(open(sys.argv[2], 'rb').read())
i = data.find(needle); assert i > 0 and data.find(needle, i + 1) < 0, 'needle not unique'
data[i + 10] ^= 0x40
open(sys.argv[2], 'wb').write(data)
PY
expect_fail_with "inspect corrupt shard names file and dataset" "param/model.embed_tokens.weight" "$BIN" inspect corrupt
expect_fail_with "inspect corrupt names the file" "corrupt/shard-00000.h5" "$BIN" inspect corrupt
expect_fail_with "eval --ckpt corrupt" "model.embed_tokens.weight" "$BIN" eval --ckpt corrupt --input ids.txt --tokens

mt_finish
