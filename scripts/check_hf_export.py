#!/usr/bin/env python3
"""Loads a moetrain HF export in transformers and compares its logits with moetrain's.

    python3 scripts/check_hf_export.py --model DIR --logits FILE.safetensors [--tokens "1 2 3" |
        --tokens-file tokens.txt] [--tol 1e-4]

--logits: a safetensors file with "logits" [positions, vocab] (F32 or F64), as written by moetrain
(e.g. `moetrain eval --dump-logits`, or tests/checkpoint/hf_export_test with MOETRAIN_HF_EXPORT_DUMP)
or the fixture's float64 golden logits (tests/fixtures/mixtral-tiny/logits_ref.safetensors). Token ids
come from --tokens/--tokens-file, else from a "tokens" tensor in the logits file (one more token than
logits rows, as `moetrain eval` writes it, drops the last: it is only a target).
The model class follows config.json: MixtralForCausalLM or Qwen2MoeForCausalLM. Weights are loaded and
run in float32 (bf16/f16 exports are upcast), so the difference measures the export, not HF's
low-precision kernels. Prints the max abs difference; exits 1 above --tol.

--venv DIR creates (if missing) a virtual environment with torch, transformers and safetensors from
PyPI and re-runs itself inside it. CI does not run this script (the gtests never need torch).
"""
import argparse
import json
import os
import subprocess
import sys


def ensure_venv(venv):
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([python, "-m", "pip", "install", "torch", "transformers", "safetensors",
                               "numpy"])
    args = [a for i, a in enumerate(sys.argv[1:]) if a != "--venv" and sys.argv[i] != "--venv"]
    os.execv(python, [python, os.path.abspath(__file__)] + args)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="exported HF folder")
    p.add_argument("--logits", required=True, help="safetensors file with 'logits' [positions, vocab]")
    p.add_argument("--tokens", help="token ids, space separated")
    p.add_argument("--tokens-file", help="file of whitespace-separated token ids")
    p.add_argument("--tol", type=float, default=1e-4, help="max abs difference allowed")
    p.add_argument("--venv", help="create/use this virtual environment")
    a = p.parse_args()
    if a.venv and os.path.realpath(sys.prefix) != os.path.realpath(a.venv):
        ensure_venv(a.venv)

    import torch
    from safetensors import safe_open
    import transformers

    with safe_open(a.logits, framework="pt") as f:
        want = f.get_tensor("logits").to(torch.float64)
        stored_tokens = f.get_tensor("tokens").tolist() if "tokens" in f.keys() else None
    if a.tokens:
        tokens = [int(t) for t in a.tokens.split()]
    elif a.tokens_file:
        with open(a.tokens_file) as fh:
            tokens = [int(t) for t in fh.read().split()]
    elif stored_tokens is not None:
        tokens = [int(t) for t in stored_tokens]
        # `moetrain eval --dump-logits` stores n tokens and n - 1 rows (row r predicts token r + 1):
        # the last token is only a target.
        if len(tokens) == want.shape[0] + 1:
            tokens = tokens[:-1]
    else:
        sys.exit("no token ids: pass --tokens/--tokens-file or store 'tokens' in the logits file")

    with open(os.path.join(a.model, "config.json")) as fh:
        model_type = json.load(fh)["model_type"]
    cls = {"mixtral": transformers.MixtralForCausalLM,
           "qwen2_moe": transformers.Qwen2MoeForCausalLM}.get(model_type)
    if cls is None:
        sys.exit(f"{a.model}/config.json: model_type {model_type!r} is not a moetrain export type")
    model = cls.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        got = model(torch.tensor([tokens])).logits[0].to(torch.float64)
    if tuple(got.shape) != tuple(want.shape):
        sys.exit(f"shape mismatch: transformers {tuple(got.shape)} vs {a.logits} {tuple(want.shape)}")
    diff = (got - want).abs()
    worst = int(diff.argmax())
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {cls.__name__}")
    print(f"positions {got.shape[0]}, vocab {got.shape[1]}, max |logit| {want.abs().max().item():.4f}")
    print(f"max abs diff {diff.max().item():.3e} (at position {worst // got.shape[1]}, "
          f"token {worst % got.shape[1]}), mean abs diff {diff.mean().item():.3e}, tol {a.tol:g}")
    if diff.max().item() > a.tol:
        print("FAIL")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
