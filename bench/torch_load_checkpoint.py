#!/usr/bin/env python3
"""Load a GPT checkpoint saved by Plies (`plies_nn::checkpoint::save_gpt`) into the same
architecture written in PyTorch, and compute its validation loss.

The model's configuration is read from the file's metadata (key `plies.config`); the
parameter names are PyTorch's own (`blocks.0.attn.qkv.weight`, ...), so
`load_state_dict(strict=True)` checks that every key and shape matches.

Data, one of:
  --text FILE     a text file, encoded with the checkpoint's character vocabulary
                  (metadata key `vocab`: a JSON string of the characters, id = position);
                  the last --val-fraction of it is the validation split, cut as
                  `CharDataset::split` cuts it (round(fraction * characters) at the end).
  --tokens FILE   a safetensors file holding an I32 tensor `tokens` (already the split).
The loss is the mean cross-entropy per token over the windows of `CharDataset::windows`:
starts 0, c, 2c, ... (c = context), each c + 1 tokens long (inputs are the first c, targets
the last c), the first --max-windows of them; `examples/char_gpt.rs` evaluates the same
windows. --expect LOSS compares against the loss Plies reported (--tol, default 1e-4).

  python3 bench/torch_load_checkpoint.py runs/char_gpt/model.safetensors \
      --text data/shakespeare.txt --val-fraction 0.1 --max-windows 256 --expect <val_loss>

Optional: needs torch and safetensors; nothing in the Rust tests depends on it.
"""
import argparse
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "gelu": lambda: nn.GELU(),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


class CausalSelfAttention(nn.Module):
    """Naive attention, the same math as Plies: softmax(q k^T / sqrt(hd) + mask) v."""

    def __init__(self, d, n_head, context, dropout):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head = n_head
        mask = torch.triu(torch.full((context, context), float("-inf")), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        b, t, d = x.shape
        h = self.n_head
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h)) + self.mask[:t, :t]
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, d)
        return self.resid_dropout(self.proj(y))


class FeedForward(nn.Module):
    def __init__(self, d, hidden, activation, dropout):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.act = ACTIVATIONS[activation]()
        self.fc2 = nn.Linear(hidden, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["d_model"]
        self.ln1 = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.attn = CausalSelfAttention(d, cfg["n_head"], cfg["context"], cfg["dropout"])
        self.ln2 = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.mlp = FeedForward(d, cfg["mlp_ratio"] * d, cfg["activation"], cfg["dropout"])

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """The twin of `plies_nn::layers::Gpt`: same names, shapes and computation."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg["d_model"]
        self.tok_emb = nn.Embedding(cfg["vocab_size"], d)
        self.pos_emb = nn.Embedding(cfg["context"], d)
        self.drop = nn.Dropout(cfg["dropout"])
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])])
        self.ln_f = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.head = nn.Linear(d, cfg["vocab_size"])

    def forward(self, ids):
        t = ids.shape[1]
        x = self.drop(self.tok_emb(ids) + self.pos_emb.weight[:t])
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))


def char_small_config():
    """The W3 benchmark model (GptConfig::char_small in Plies)."""
    return {
        "vocab_size": 65, "context": 128, "d_model": 128, "n_layer": 4, "n_head": 4,
        "mlp_ratio": 4, "dropout": 0.0, "activation": "gelu_tanh", "ln_eps": 1e-5,
    }


def load_plies_gpt(path):
    from safetensors import safe_open  # imported here so the benchmark needs only torch
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    if "plies.config" not in meta:
        sys.exit(f"{path}: no `plies.config` metadata (not saved by plies_nn::checkpoint::save_gpt)")
    cfg = json.loads(meta["plies.config"])
    model = GPT(cfg)
    model.load_state_dict(load_file(path), strict=True)
    return model, cfg, meta


def round_half_away(x):
    """Rust's f64::round for x >= 0 (Python's round() rounds halves to even)."""
    r = math.floor(x)
    return r + 1 if x - r >= 0.5 else r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--text")
    src.add_argument("--tokens")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--max-windows", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--expect", type=float)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    model, cfg, meta = load_plies_gpt(args.checkpoint)
    model.eval()
    if args.text:
        if "vocab" not in meta:
            sys.exit(f"{args.checkpoint}: no `vocab` metadata to encode text with; use --tokens")
        vocab = json.loads(meta["vocab"])
        index = {c: i for i, c in enumerate(vocab)}
        # newline="" keeps the characters as they are in the file (no \r\n translation).
        text = open(args.text, encoding="utf-8", newline="").read()
        split = len(text) - round_half_away(args.val_fraction * len(text))
        missing = sorted(set(text[split:]) - set(index))
        if missing:
            sys.exit(f"{args.text}: characters outside the checkpoint's vocabulary: {missing[:10]}")
        tokens = torch.tensor([index[c] for c in text[split:]], dtype=torch.long)
    else:
        from safetensors.torch import load_file

        tokens = load_file(args.tokens)["tokens"].long().flatten()

    c = cfg["context"]
    starts = list(range(0, len(tokens) - c, c))[: args.max_windows]
    if not starts:
        sys.exit(f"need at least {c + 1} tokens, got {len(tokens)}")
    n = len(starts)
    windows = torch.stack([tokens[s : s + c + 1] for s in starts])
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, n, args.batch_size):
            batch = windows[s : s + args.batch_size]
            logits = model(batch[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum")
            total += loss.item()
            count += batch[:, 1:].numel()
    val = total / count
    print(json.dumps({"val_loss": val, "windows": n, "tokens": count, "params": sum(p.numel() for p in model.parameters())}))
    if args.expect is not None:
        ok = abs(val - args.expect) <= args.tol
        print(f"plies reported {args.expect:.6f}, pytorch {val:.6f}: {'match' if ok else 'MISMATCH'}")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
