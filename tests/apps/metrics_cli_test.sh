#!/usr/bin/env bash
# End-to-end metrics: a short real training run writes the JSON-lines file and the Prometheus
# textfile; python3 (independent of the C++ writer) checks every line, the expert loads (each MoE
# layer routes exactly tokens x top-k rows per step: dropless) and that the Prometheus samples equal
# the last JSON step event; `moetrain plot` writes PNGs (skipped with a message without matplotlib);
# `moetrain experts` on the run, on a hand-made file with a dead expert and on a snapshot; and
# `--dry-run` of the small recipes in recipes/.
# Usage: metrics_cli_test.sh MOETRAIN_BINARY SOURCE_DIR
set -uo pipefail
BIN=$1
SRC=$2
. "$(dirname "$0")/lib.sh"
mt_workdir metrics

words_corpus 1500 > corpus.txt
mt_prepare_data "$BIN" corpus.txt 300 --val-fraction 0.5 || mt_finish

cat > recipe.yaml <<'YAML'
model:
  hidden_size: 32
  intermediate_size: 64
  num_hidden_layers: 3
  first_k_dense_replace: 1
  num_attention_heads: 4
  num_key_value_heads: 2
  num_local_experts: 4
  num_experts_per_tok: 2
  moe_intermediate_size: 32
  balancing: bias
  max_position_embeddings: 64
data:
  tokenizer: tok.model
  shards: shards
schedule:
  warmup_steps: 2
  total_steps: 8
batch:
  micro_batch: 4
  grad_accum: 2
  seq_len: 32
logging:
  every_steps: 2
  metrics_file: metrics.jsonl
  prometheus_file: prom/moetrain.prom
eval:
  every_steps: 4
  batches: 1
checkpoint:
  dir: ckpt
  every_steps: 4
  async: false
threads: 2
YAML
mkdir -p prom
"$BIN" train recipe.yaml >log.train 2>&1 && pass "train" || { fail "train"; tail -20 log.train; }

python3 - <<'PY' && pass "metrics.jsonl and the Prometheus file agree" || fail "metrics files"
import json, math, os, re, sys
ev = [json.loads(l) for l in open("metrics.jsonl") if l.strip()]
assert ev[0]["event"] == "start", ev[0]
assert ev[0]["moe_layers"] == [1, 2], ev[0]
steps = [e for e in ev if e["event"] == "step"]
assert [e["step"] for e in steps] == [1, 2, 4, 6, 8], [e["step"] for e in steps]
for e in steps:
    for k in ("loss", "aux_loss", "lr", "grad_norm", "tokens_per_s", "mfu", "load_imbalance", "loss_scale"):
        assert isinstance(e[k], (int, float)) and math.isfinite(e[k]), (k, e)
    load = e["expert_load"]
    assert len(load) == 2 and all(len(r) == 4 for r in load), load
    # dropless: every token goes to top-k = 2 experts; micro 4 x seq 32 x grad_accum 2 tokens.
    assert all(sum(r) == 4 * 32 * 2 * 2 for r in load), load
    mean = [sum(r) / len(r) for r in load]
    assert abs(e["load_imbalance"] - max(max(r) / m for r, m in zip(load, mean))) < 1e-12
last, final = steps[-1], [e for e in ev if e["event"] == "final"][-1]
samples, types, helps = {}, {}, set()
for line in open("prom/moetrain.prom").read().splitlines():
    m = re.fullmatch(r"# HELP (\w+) .+", line)
    if m: helps.add(m[1]); continue
    m = re.fullmatch(r"# TYPE (\w+) (gauge|counter)", line)
    if m: types[m[1]] = m[2]; continue
    m = re.fullmatch(r'(\w+)(\{layer="\d+",expert="\d+"\})? (\S+)', line)
    assert m, "bad sample line: " + line
    assert m[1] in types and m[1] in helps, "no HELP/TYPE before " + line
    samples[m[1] + (m[2] or "")] = float(m[3])
pairs = {"moetrain_step": "step", "moetrain_loss": "loss", "moetrain_lr": "lr", "moetrain_grad_norm": "grad_norm",
         "moetrain_tokens_per_second": "tokens_per_s", "moetrain_mfu": "mfu", "moetrain_loss_scale": "loss_scale"}
for g, k in pairs.items():
    assert samples[g] == last[k], (g, samples[g], last[k])
assert samples["moetrain_val_loss"] == final["val_loss"]
assert samples["moetrain_skipped_steps_total"] == 0 and types["moetrain_skipped_steps_total"] == "counter"
for l, row in enumerate(last["expert_load"]):
    for x, c in enumerate(row):
        assert samples[f'moetrain_expert_load{{layer="{l}",expert="{x}"}}'] == c
assert os.listdir("prom") == ["moetrain.prom"], os.listdir("prom")
PY

# --- plot
if python3 -c "import matplotlib" 2>/dev/null || /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  "$BIN" plot metrics.jsonl --out plots >log.plot 2>&1 || { fail "plot"; cat log.plot; }
  for p in loss lr grad_norm tokens_per_s expert_load; do
    if [ -s "plots/$p.png" ] && [ "$(head -c 8 "plots/$p.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
      pass "plot $p.png"; else fail "plot $p.png missing or not a PNG"; fi
  done
else
  echo "SKIP: moetrain plot (python3 has no matplotlib: pip install matplotlib, or scripts/install-deps.sh)"
fi
out=$(MOETRAIN_PYTHON=/nonexistent/python3 "$BIN" plot metrics.jsonl --out plots2 2>&1)
[ $? -ne 0 ] && grep -q "pip install matplotlib" <<<"$out" && pass "plot without python names the fix" \
  || { fail "plot without python"; echo "$out"; }

# --- experts
out=$("$BIN" experts metrics.jsonl --last 3 2>&1) && grep -q "3 logged step(s) 4..8" <<<"$out" \
  && pass "experts on the run" || { fail "experts on the run"; echo "$out"; }
{
  echo '{"event":"start","moe_layers":[0,1]}'
  echo '{"event":"step","step":1,"expert_load":[[5,5,5,5],[7,0,6,7]]}'
  echo '{"event":"step","step":2,"expert_load":[[4,6,5,5],[9,0,5,6]]}'
} > dead.jsonl
out=$("$BIN" experts dead.jsonl 2>&1)
grep -Eq "^ +1 +40 +.* 1$" <<<"$out" && grep -q "1 dead expert(s)" <<<"$out" \
  && pass "experts lists the dead expert" || { fail "dead expert"; echo "$out"; }
echo '{"event":"step","step":3,"expert_load":[[1]' >> dead.jsonl
out=$("$BIN" experts dead.jsonl 2>&1)
[ $? -ne 0 ] && grep -q "dead.jsonl:4" <<<"$out" && pass "experts names a bad line" || { fail "bad line"; echo "$out"; }
snap=$(ls -d ckpt/step-* 2>/dev/null | tail -1)
out=$("$BIN" experts "$snap" 2>&1)
[ $? -eq 0 ] && grep -q "router selection bias" <<<"$out" && grep -q "metrics.jsonl" <<<"$out" \
  && pass "experts on a snapshot reports the router bias" || { fail "experts on snapshot $snap"; echo "$out"; }

# --- the small recipes in recipes/ dry-run against this data
for r in tiny bench-small; do
  "$BIN" train "$SRC/recipes/$r.yaml" --dry-run --set data.tokenizer=tok.model --set data.shards=shards \
    --set logging.metrics_file= >log.dry 2>&1 && grep -q "memory plan" log.dry && pass "dry run recipes/$r.yaml" \
    || { fail "dry run recipes/$r.yaml"; tail -5 log.dry; }
done

mt_finish
