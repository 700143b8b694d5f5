#!/usr/bin/env python3
"""LoRA and DoRA adapter files exchanged between Plies and HF PEFT, both directions.

For LoRA and then DoRA:
  (a) `cargo run --example peft_check -- init` builds a small char GPT, trains a Plies
      adapter 3 steps and saves it in PEFT's layout; PyTorch loads the base into the twin of
      `plies_nn::layers::Gpt` (bench/torch_load_checkpoint.py) and the adapter with
      `peft.PeftModel.from_pretrained`, and must get Plies' loss within --tol relative.
  (b) `peft.get_peft_model` makes a fresh adapter on the same base, PyTorch trains it a few
      AdamW steps and saves it with `save_pretrained`; `peft_check eval` loads it into Plies,
      which must get PyTorch's loss within --tol relative.

  python3 bench/peft_round_trip.py [--dir runs/peft_round_trip] [--release]

With --adapter, it checks one adapter a Plies run saved instead (the lora_finetune example
prints this command): HF PEFT loads the base checkpoint and the adapter and must get the loss
Plies reported on the same windows (I32 `tokens` [windows, context + 1]):

  python3 bench/peft_round_trip.py --base B.safetensors --tokens T.safetensors \
      --adapter DIR --expect LOSS

Optional to run; needs the pip packages torch, safetensors and peft (it installs nothing).
Exits non-zero on any mismatch.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_load_checkpoint import load_plies_gpt  # noqa: E402

TARGETS = ["qkv", "proj", "fc1", "fc2"]


def plies(args, *cmd):
    line = ["cargo", "run", "-q", "--example", "peft_check"] + (["--release"] if args.release else [])
    out = subprocess.run(line + ["--", *cmd], cwd=os.path.dirname(HERE), capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"peft_check {' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["loss"]


def loss_of(model, tokens):
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def check(name, ours, theirs, tol):
    rel = abs(ours - theirs) / abs(theirs)
    ok = rel <= tol
    print(f"{name:<44} plies {ours:.7f}  pytorch {theirs:.7f}  rel {rel:.1e}  {'ok' if ok else 'MISMATCH'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="runs/peft_round_trip")
    ap.add_argument("--release", action="store_true", help="build peft_check in release mode")
    ap.add_argument("--steps", type=int, default=5, help="PyTorch training steps in (b)")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--adapter", help="check this adapter folder alone (with --base, --tokens, --expect)")
    ap.add_argument("--base", help="the base checkpoint the adapter was trained on")
    ap.add_argument("--tokens", help="safetensors file with the I32 windows `tokens`")
    ap.add_argument("--expect", type=float, help="the loss Plies reported on those windows")
    args = ap.parse_args()
    import peft
    from safetensors.torch import load_file

    if args.adapter:
        if not (args.base and args.tokens and args.expect is not None):
            ap.error("--adapter needs --base, --tokens and --expect")
        tokens = load_file(args.tokens)["tokens"].long()
        base, _, _ = load_plies_gpt(args.base)
        model = peft.PeftModel.from_pretrained(base, args.adapter)
        model.eval()
        with torch.no_grad():
            theirs = loss_of(model, tokens).item()
        print(f"torch {torch.__version__}, peft {peft.__version__}, {tokens.shape[0]} windows")
        ok = check(f"{os.path.basename(os.path.normpath(args.adapter))} in PEFT", args.expect, theirs, args.tol)
        sys.exit(0 if ok else 1)

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, peft {peft.__version__}")
    ok = True
    for dora in (False, True):
        kind = "DoRA" if dora else "LoRA"
        d = os.path.abspath(os.path.join(args.dir, kind.lower()))
        # (a) Plies -> PEFT
        ours = plies(args, "init", "--dir", d, *(["--dora"] if dora else []))
        tokens = load_file(os.path.join(d, "tokens.safetensors"))["tokens"].long()
        base, _, _ = load_plies_gpt(os.path.join(d, "base.safetensors"))
        model = peft.PeftModel.from_pretrained(base, os.path.join(d, "plies_adapter"))
        model.eval()
        with torch.no_grad():
            theirs = loss_of(model, tokens).item()
        ok &= check(f"{kind} (a) Plies adapter in PEFT", ours, theirs, args.tol)

        # (b) PEFT -> Plies
        base, _, _ = load_plies_gpt(os.path.join(d, "base.safetensors"))
        cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, use_dora=dora)
        model = peft.get_peft_model(base, cfg)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
        model.train()
        for _ in range(args.steps):
            loss_of(model, tokens).backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        with torch.no_grad():
            theirs = loss_of(model, tokens).item()
        out = os.path.join(d, "torch_adapter")
        model.save_pretrained(out)
        ours = plies(args, "eval", "--dir", d, "--adapter", out)
        ok &= check(f"{kind} (b) PEFT adapter ({args.steps} steps) in Plies", ours, theirs, args.tol)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
