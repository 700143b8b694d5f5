#!/usr/bin/env python3
"""PyTorch side of the W2 and W3 benchmarks (BENCHMARKS.md), run by `cargo bench --bench nn`.

W2: MLP 64-256-256-10, ReLU, batch 128, cross-entropy, AdamW: one training step.
W3: char GPT (vocab 65, d 128, 4 layers, 4 heads, context 128, batch 16, pre-LayerNorm,
    GELU MLP 4d, learned positions, naive attention), AdamW: one training step.
Prints one JSON line: median milliseconds per step for each workload asked for.
"""
import argparse
import json
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


def w3(warmup, steps):
    cfg = char_small_config()
    model = GPT(cfg)
    params = sum(p.numel() for p in model.parameters())
    assert params == 826_433, params
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    ids = torch.randint(0, 65, (16, 129))
    x, y = ids[:, :-1], ids[:, 1:]

    def step():
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, 65), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return time_steps(step, warmup, steps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", choices=["w2", "w3"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.only in (None, "w2"):
        out["w2_ms"] = w2(args.warmup, args.steps * 10)
    if args.only in (None, "w3"):
        out["w3_ms"] = w3(args.warmup, args.steps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
