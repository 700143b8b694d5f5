#!/usr/bin/env python3
"""PyTorch side of the W2, W3 and W4 benchmarks (BENCHMARKS.md), run by `cargo bench --bench nn`.

W2: MLP 64-256-256-10, ReLU, batch 128, cross-entropy, AdamW: one training step.
W3: char GPT (vocab 65, d 128, 4 layers, 4 heads, context 128, batch 16, pre-LayerNorm,
    GELU MLP 4d, learned positions, naive attention), AdamW: one training step.
W4: W3's model with LoRA r=8 (alpha 16, dropout 0) on qkv, proj, fc1 and fc2, base frozen,
    AdamW over the 65,536 adapter parameters: one training step. Built with `peft` when it
    is importable, else with the plain LoRA module below (the same math: A kaiming-uniform,
    B zero, scaling alpha / r); `--lora plain` forces the latter.
MoLA 2468 / 8888: W3's model with MoLA experts (r=4, alpha 8, dropout 0, top-2; experts per
    block 2,4,6,8 or 8,8,8,8) on qkv, proj, fc1 and fc2, base frozen; each expert runs on its
    routed tokens only (torch.where, index, index_add_, as HF's Mixtral block does); the loss
    adds 0.001 times each block's balance loss E sum f_e P_e. One training step.
W3 and W4 steps are taken in turn, so that their ratio compares the same minutes; so are
MoLA 2468 and 8888.
Prints one JSON line: median milliseconds per step for each workload asked for.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_load_checkpoint import GPT, char_small_config  # noqa: E402


def time_steps(step, warmup, steps):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def w2(warmup, steps):
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    x, y = torch.randn(128, 64), torch.randint(0, 10, (128,))

    def step():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return time_steps(step, warmup, steps)


def gpt_step(model):
    """One AdamW step of `model`'s trainable parameters on a fixed random batch."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)
    ids = torch.randint(0, 65, (16, 129))
    x, y = ids[:, :-1], ids[:, 1:]

    def step():
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, 65), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def w3_model():
    model = GPT(char_small_config())
    params = sum(p.numel() for p in model.parameters())
    assert params == 826_433, params
    return model


class PlainLora(nn.Module):
    """base(x) + (x A^T) B^T * alpha / r around a frozen nn.Linear, as PEFT's lora.Linear."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


TARGETS = ["qkv", "proj", "fc1", "fc2"]


def lora_gpt(kind, r=8, alpha=16.0):
    """W3's GPT with LoRA on TARGETS and its base frozen; `kind` is "peft" or "plain"."""
    model = GPT(char_small_config())
    if kind == "peft":
        import peft

        cfg = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGETS, bias="none")
        return peft.get_peft_model(model, cfg)
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.blocks:
        for parent, name in [(block.attn, "qkv"), (block.attn, "proj"), (block.mlp, "fc1"), (block.mlp, "fc2")]:
            setattr(parent, name, PlainLora(getattr(parent, name), r, alpha))
    return model


def w4_model(kind):
    model = lora_gpt(kind)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 65_536, trainable
    return model


class MolaLinear(nn.Module):
    """base(x) + sum over the top-k experts of w_e (alpha / r) B_e A_e x, renormalised w."""

    def __init__(self, base, experts, r, alpha, top_k):
        super().__init__()
        self.base = base
        self.router = nn.Linear(base.in_features, experts, bias=False)
        self.lora_A = nn.ModuleList(nn.Linear(base.in_features, r, bias=False) for _ in range(experts))
        self.lora_B = nn.ModuleList(nn.Linear(r, base.out_features, bias=False) for _ in range(experts))
        for a, b in zip(self.lora_A, self.lora_B):
            nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
            nn.init.zeros_(b.weight)
        self.scaling = alpha / r
        self.top_k = top_k
        self.last = None

    def forward(self, x):
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        probs = F.softmax(self.router(x), dim=-1)
        w, idx = torch.topk(probs, self.top_k, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        self.last = (probs, idx)
        added = torch.zeros(x.shape[0], self.base.out_features, dtype=x.dtype)
        for e in range(len(self.lora_A)):
            tok, slot = torch.where(idx == e)
            if tok.numel() == 0:
                continue
            after_a = self.lora_A[e](x.index_select(0, tok)) * (w[tok, slot] * self.scaling).unsqueeze(1)
            added.index_add_(0, tok, self.lora_B[e](after_a))
        return (self.base(x) + added).reshape(*lead, -1)


def mola_gpt(experts, r=4, alpha=8.0, top_k=2):
    model = GPT(char_small_config())
    for p in model.parameters():
        p.requires_grad_(False)
    for block, e in zip(model.blocks, experts):
        for parent, name in [(block.attn, "qkv"), (block.attn, "proj"), (block.mlp, "fc1"), (block.mlp, "fc2")]:
            setattr(parent, name, MolaLinear(getattr(parent, name), e, r, alpha, top_k))
    return model


def balance_loss(model):
    """Sum over blocks of E sum_e f_e P_e over the routing of the block's four modules."""
    total = 0.0
    for block in model.blocks:
        mods = [block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2]
        probs = torch.cat([m.last[0] for m in mods])
        idx = torch.cat([m.last[1] for m in mods])
        e = probs.shape[1]
        f = torch.bincount(idx.reshape(-1), minlength=e).to(probs.dtype) / idx.numel()
        total = total + e * (f * probs.mean(dim=0)).sum()
    return total


def mola_step(experts):
    model = mola_gpt(experts)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)
    ids = torch.randint(0, 65, (16, 129))
    x, y = ids[:, :-1], ids[:, 1:]

    def step():
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, 65), y.reshape(-1)) + 0.001 * balance_loss(model)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def w3_w4(warmup, steps, steps_of):
    """Medians of the steps in `steps_of` (name -> step) taken in turn, as the Rust side does."""
    times = {k: [] for k in steps_of}
    for i in range(warmup + steps):
        for k, step in steps_of.items():
            t0 = time.perf_counter()
            step()
            if i >= warmup:
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(t) for k, t in times.items()}


def peft_importable():
    try:
        import peft  # noqa: F401
    except ImportError:
        return False
    return True


def workloads(text):
    names = text.split(",")
    bad = [n for n in names if n not in ("w2", "w3", "w4", "mola")]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown workload(s) {bad}: choose from w2, w3, w4")
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", type=workloads, help="comma-separated: w2, w3, w4, mola")
    ap.add_argument("--lora", choices=["peft", "plain"], help="how W4 builds its adapters (default: peft if importable)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.only is None or "w2" in args.only:
        out["w2_ms"] = w2(args.warmup, args.steps * 10)
    steps_of = {}
    if args.only is None or "w3" in args.only:
        steps_of["w3_ms"] = gpt_step(w3_model())
    if args.only is None or "w4" in args.only:
        kind = args.lora or ("peft" if peft_importable() else "plain")
        out["w4_lora"] = kind
        steps_of["w4_ms"] = gpt_step(w4_model(kind))
    out.update(w3_w4(args.warmup, args.steps, steps_of))
    if args.only is None or "mola" in args.only:
        pair = {"mola2468_ms": mola_step([2, 4, 6, 8]), "mola8888_ms": mola_step([8, 8, 8, 8])}
        out.update(w3_w4(args.warmup, args.steps, pair))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
