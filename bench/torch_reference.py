#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench workloads`: the same workloads, under the same ids.

Optional: nothing in the tests needs PyTorch. Run alone to print one JSON line per workload:

    python3 bench/torch_reference.py [--threads N] [filters...]

or as the Rust bench's child (`--serve`): it prints a header line, then reads workload
ids on stdin and answers each with one JSON line. Timing mirrors benches/workloads/
harness.rs: warm up (at least twice, 0.3 s), then time single calls for about 1.5 s
(at least 7) and report the median. Every call allocates a fresh output, like ours.
"""

import json
import statistics
import sys
import time
import warnings

M16 = 1 << 24
F32 = 4.0


def workloads(torch):
    """id -> (unit, amount, setup); setup() builds inputs and returns the timed call."""
    F = torch.nn.functional

    def randn(*dims):
        return torch.randn(*dims, dtype=torch.float32)

    w = {}

    def mm(n, op):
        def setup():
            a, b = randn(n, n), randn(n, n)
            return lambda: op(a, b)

        return setup

    for n in (256, 512, 1024, 2048):
        w[f"matmul_n{n}"] = ("GFLOP/s", 2.0 * n**3, mm(n, lambda a, b: a @ b))
    w["matmul_nt_n1024"] = ("GFLOP/s", 2.0 * 1024**3, mm(1024, lambda a, b: a @ b.t()))
    w["matmul_tn_n1024"] = ("GFLOP/s", 2.0 * 1024**3, mm(1024, lambda a, b: a.t() @ b))

    def linear():
        x, wt = randn(16, 128, 128), randn(128, 512)
        return lambda: x @ wt

    w["linear_16x128x128_512"] = ("GFLOP/s", 2.0 * 16 * 128 * 128 * 512, linear)

    def bmm():
        a, b = randn(64, 128, 32), randn(64, 32, 128)
        return lambda: a @ b

    w["bmm_64x128x32x128"] = ("GFLOP/s", 2.0 * 64 * 128 * 128 * 32, bmm)

    def unary(f, *dims):
        def setup():
            x = randn(*dims)
            return lambda: f(x)

        return setup

    def binary(f, da, db):
        def setup():
            a, b = randn(*da), randn(*db)
            return lambda: f(a, b)

        return setup

    b2, b3 = 2 * F32 * M16, 3 * F32 * M16
    w["add_16m"] = ("GB/s", b3, binary(torch.add, (M16,), (M16,)))
    w["add_bias_4096x4096"] = ("GB/s", b2, binary(torch.add, (4096, 4096), (4096,)))
    w["mul_scalar_16m"] = ("GB/s", b2, unary(lambda x: x * 0.5, M16))

    w["sum_16m"] = ("GB/s", F32 * M16, unary(lambda x: x.sum(0), M16))
    w["sum_rows_4096x4096"] = ("GB/s", F32 * M16, unary(lambda x: x.sum(1), 4096, 4096))
    w["sum_cols_4096x4096"] = ("GB/s", F32 * M16, unary(lambda x: x.sum(0), 4096, 4096))
    w["max_rows_4096x4096"] = ("GB/s", F32 * M16, unary(lambda x: x.amax(1), 4096, 4096))

    w["exp_16m"] = ("GB/s", b2, unary(torch.exp, M16))
    w["tanh_16m"] = ("GB/s", b2, unary(torch.tanh, M16))
    w["sigmoid_16m"] = ("GB/s", b2, unary(torch.sigmoid, M16))
    w["silu_16m"] = ("GB/s", b2, unary(F.silu, M16))
    w["gelu_tanh_16m"] = ("GB/s", b2, unary(lambda x: F.gelu(x, approximate="tanh"), M16))
    w["gelu_erf_16m"] = ("GB/s", b2, unary(F.gelu, M16))
    w["relu_16m"] = ("GB/s", b2, unary(torch.relu, M16))

    r, c = 4096, 1024
    bytes_rows = 2 * F32 * r * c
    w["softmax_4096x1024"] = ("GB/s", bytes_rows, unary(lambda x: torch.softmax(x, -1), r, c))
    w["log_softmax_4096x1024"] = ("GB/s", bytes_rows, unary(lambda x: torch.log_softmax(x, -1), r, c))

    def softmax_grad():
        y, g = torch.softmax(randn(r, c), -1), randn(r, c)
        return lambda: torch._softmax_backward_data(g, y, -1, torch.float32)

    w["softmax_grad_4096x1024"] = ("GB/s", 1.5 * bytes_rows, softmax_grad)

    def layer_norm():
        x, wt, bs = randn(r, c), randn(c), randn(c)
        return lambda: F.layer_norm(x, (c,), wt, bs, 1e-5)

    w["layer_norm_4096x1024"] = ("GB/s", bytes_rows, layer_norm)

    def cross_entropy():
        x = randn(r, c)
        t = torch.tensor([(i * 7919) % c for i in range(r)], dtype=torch.long)
        return lambda: F.cross_entropy(x, t, reduction="none")

    w["cross_entropy_4096x1024"] = ("GB/s", bytes_rows / 2, cross_entropy)
    return w


def measure(call, warmup=0.3, budget=1.5, min_iters=7, max_iters=2000):
    start, warm = time.perf_counter(), 0
    while warm < 2 or time.perf_counter() - start < warmup:
        call()
        warm += 1
    per_call = (time.perf_counter() - start) / warm
    iters = max(min_iters, min(max_iters, int(budget / per_call)))
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times), iters


def run(w, wid, torch):
    if wid not in w:
        return {"id": wid, "error": "no such workload in torch_reference.py"}
    unit, amount, setup = w[wid]
    with torch.inference_mode():
        call = setup()
        median_s, iters = measure(call)
    del call
    value = median_s * 1e3 if unit == "ms" else amount / median_s / 1e9
    return {"id": wid, "unit": unit, "value": round(value, 4), "median_s": median_s, "iters": iters}


def main(argv):
    serve, threads, filters = False, 2, []
    args = iter(argv)
    for a in args:
        if a == "--serve":
            serve = True
        elif a == "--threads":
            threads = int(next(args))
        else:
            filters.append(a)
    # torch warns at import when numpy is absent; numpy plays no part here.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    try:
        import torch
    except Exception as e:  # no torch here: say so in the header
        print(json.dumps({"ready": False, "error": f"import torch failed: {e}"}), flush=True)
        return 1 if not serve else 0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    w = workloads(torch)
    header = {"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(header), flush=True)
    if serve:
        for line in sys.stdin:
            wid = line.strip()
            if wid == "quit":
                break
            if wid:
                print(json.dumps(run(w, wid, torch)), flush=True)
        return 0
    for wid in w:
        if not filters or any(f in wid for f in filters):
            print(json.dumps(run(w, wid, torch)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
