#!/usr/bin/env python3
"""PyTorch (CUDA) side of `cargo bench --bench gpu`: the same GPU workloads under the same ids,
one JSON line each ({"side": "torch", "id", "unit", "value", ...}), so that
scripts/gpu_bench.sh can pair them with the Plies lines and take the ratios.

  W1      f32 matmul n x n, TF32 off (TFLOP/s)             w1_matmul_n{n}
  W6      add of 16M f32 into a fresh output (GB/s moved),   w6_add_16m (w6_add_{mib}mib)
          64 MiB host->device and device->host, pageable   w6_h2d_{mib}mib, w6_d2h_{mib}mib
  W3      char GPT training step (ms)                       w3_step (w3_small_step)
  W5      GPT-2-small-sized training step (ms)              w5_step (w5_small_step)
  launch  a tiny GPT's step: hundreds of small kernels (ms) launch_step

The GPT is bench/torch_load_checkpoint.py's twin of plies_nn's Gpt: naive attention (the same
math as Plies), f32, AdamW (lr 1e-4, weight decay 0.01); a step is forward, cross-entropy,
backward, optimizer step, zero_grad, then torch.cuda.synchronize(). Medians over the steps.

  python3 bench/torch_gpu_reference.py [--small] [--only w1,w6,w3,w5,launch] [--sizes 1024,4096]
      [--w6-mib 64] [--reps 5] [--steps N] [--warmup N] [--device cuda|cpu]

--small uses the shapes of the Plies bench's --small (and of a software adapter). Without a
CUDA device it prints one line saying so and exits 0; `--device cpu` runs the workloads on
the CPU instead (a dry run of this script: its numbers are not the GPU reference).
Optional: nothing in the tests needs PyTorch.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings


def gpt_config(vocab, context, d, layers, heads):
    return {
        "vocab_size": vocab, "context": context, "d_model": d, "n_layer": layers, "n_head": heads,
        "mlp_ratio": 4, "dropout": 0.0, "activation": "gelu_tanh", "ln_eps": 1e-5,
    }


# id -> (config, batch, expected parameter count or None); the shapes of benches/gpu/train.rs.
def step_shapes(small):
    w3 = gpt_config(65, 128, 128, 4, 4)
    return {
        "w3": ("w3_small_step", w3, 2, 826_433) if small else ("w3_step", w3, 16, 826_433),
        "w5": ("w5_small_step", gpt_config(512, 128, 128, 2, 2), 2, None)
        if small
        else ("w5_step", gpt_config(50304, 1024, 768, 12, 12), 8, 163_159_680),
        "launch": ("launch_step", gpt_config(65, 16, 32, 4, 4), 2, None),
    }


class Bench:
    def __init__(self, torch, device):
        self.torch = torch
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.name = torch.cuda.get_device_name(self.device) if self.cuda else "cpu"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def emit(self, wid, unit, value, **extra):
        line = {"bench": "gpu", "side": "torch", "id": wid, "unit": unit, "value": round(value, 6),
                "device": self.name, "torch": self.torch.__version__}
        line.update(extra)
        print(json.dumps(line), flush=True)

    def timed(self, call, warmup, reps):
        """Median seconds of `call`, each call waited for."""
        for _ in range(warmup):
            call()
        self.sync()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            call()
            self.sync()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    def w1(self, n, reps):
        torch = self.torch
        a = torch.rand(n, n, device=self.device) * 2 - 1
        b = torch.rand(n, n, device=self.device) * 2 - 1
        s = self.timed(lambda: a @ b, 2, reps)
        tflops = 2.0 * n**3 / s / 1e12
        print(f"W1 matmul n={n:5}: {s * 1e3:9.3f} ms  {tflops:8.3f} TFLOP/s")
        self.emit(f"w1_matmul_n{n}", "TFLOP/s", tflops, ms=s * 1e3)

    def w6(self, mib, reps):
        torch = self.torch
        n = mib * (1 << 20) // 4
        nbytes = 4.0 * n
        host = torch.arange(n, dtype=torch.float32) % 1000
        a, b = host.to(self.device), host.to(self.device)
        add_s = self.timed(lambda: a + b, 2, reps)
        add_gbs = 3 * nbytes / add_s / 1e9
        h2d_s = self.timed(lambda: host.to(self.device), 1, reps)
        dev = a + b
        d2h_s = self.timed(lambda: dev.cpu() if self.cuda else dev.clone(), 1, reps)
        h2d, d2h = nbytes / h2d_s / 1e9, nbytes / d2h_s / 1e9
        print(f"W6 add {n} f32: {add_s * 1e3:.3f} ms, {add_gbs:.2f} GB/s;  {mib} MiB H2D {h2d:.2f} GB/s, D2H {d2h:.2f} GB/s")
        add_id = "w6_add_16m" if mib == 64 else f"w6_add_{mib}mib"
        self.emit(add_id, "GB/s", add_gbs, ms=add_s * 1e3)
        self.emit(f"w6_h2d_{mib}mib", "GB/s", h2d)
        self.emit(f"w6_d2h_{mib}mib", "GB/s", d2h)

    def step(self, wid, cfg, batch, params, warmup, steps):
        torch = self.torch
        F = torch.nn.functional
        from torch_load_checkpoint import GPT

        torch.manual_seed(0)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        model = GPT(cfg).to(self.device)
        count = sum(p.numel() for p in model.parameters())
        if params is not None and count != params:
            raise RuntimeError(f"{wid}: {count} parameters, expected {params}")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
        t, v = cfg["context"], cfg["vocab_size"]
        ids = torch.randint(0, v, (batch, t + 1), device=self.device)
        x, y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
        losses = []

        def one():
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, v), y.reshape(-1))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.detach())

        s = self.timed(one, warmup, steps)
        first, last = losses[0].item(), losses[-1].item()
        if not abs(first - math.log(v)) < 0.5:
            raise RuntimeError(f"{wid}: first loss {first}, expected about {math.log(v):.3f}")
        peak = torch.cuda.max_memory_allocated(self.device) / 2**30 if self.cuda else 0.0
        print(f"{wid} ({count} params, batch {batch}): {s * 1e3:.3f} ms/step (median of {steps}), "
              f"peak {peak:.2f} GiB; loss {first:.4f} -> {last:.4f}")
        self.emit(wid, "ms", s * 1e3, params=count, batch=batch, steps=steps, peak_gib=peak, first_loss=first)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", default=os.environ.get("PLIES_GPU_BENCH_SMALL", "0") not in ("", "0"))
    ap.add_argument("--only", default="w1,w6,w3,w5,launch")
    ap.add_argument("--sizes")
    ap.add_argument("--w6-mib", type=int)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    # torch warns at import when numpy is absent; numpy plays no part here.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    try:
        import torch
    except Exception as e:
        print(json.dumps({"bench": "gpu", "side": "torch", "skipped": f"import torch failed: {e}"}), flush=True)
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"PyTorch {torch.__version__}: no CUDA device, nothing to measure", flush=True)
        print(json.dumps({"bench": "gpu", "side": "torch", "skipped": "no CUDA device", "torch": torch.__version__}))
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    b = Bench(torch, args.device)
    if not b.cuda:
        # A check of this script, not a measurement: one thread avoids OpenMP spinning
        # against whatever else runs on a small machine.
        torch.set_num_threads(1)
    note = "" if b.cuda else "  (CPU dry run, 1 thread: not the GPU reference)"
    print(f"PyTorch {torch.__version__} on {b.name}, f32, TF32 off{note}", flush=True)
    only = {w.strip().lower() for w in args.only.split(",")}
    failed = []

    def attempt(what, f, *a):
        try:
            f(*a)
        except Exception as e:  # report and go on with the other workloads
            print(f"{what}: FAILED: {e}", flush=True)
            failed.append(what)

    if "w1" in only:
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([128, 256] if args.small else [1024, 2048, 4096, 8192])
        for n in sizes:
            attempt(f"W1 n={n}", b.w1, n, args.reps)
    if "w6" in only:
        attempt("W6", b.w6, args.w6_mib or (4 if args.small else 64), args.reps)
    for key, (wid, cfg, batch, params) in step_shapes(args.small).items():
        if key not in only:
            continue
        if key == "launch":
            warmup, steps = args.warmup or 5, args.steps or 20
        elif args.small:
            warmup, steps = args.warmup or 2, args.steps or 3
        else:
            warmup, steps = args.warmup or (30 if key == "w3" else 3), args.steps or (20 if key == "w3" else 10)
        attempt(wid, b.step, wid, cfg, batch, params, warmup, steps)
        if b.cuda:
            torch.cuda.empty_cache()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
