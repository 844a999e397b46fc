"""PyTorch's side of bench/run_gemm_bench.sh: x @ w.T at the same shapes, fp32 and bf16 (both
operands bf16, as a bf16 PyTorch model runs), best time over repeats. One JSON line per shape
and dtype."""
import argparse
import json
import time

import torch


def best_seconds(fn, budget_s):
    fn()
    best, spent, i = float("inf"), 0.0, 0
    while i < 3 or (spent < budget_s and i <= 50):
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
        best, spent, i = min(best, seconds), spent + seconds, i + 1
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--budget-s", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(1)
    for item in args.shapes.split(","):
        m, n, k = (int(part) for part in item.split("x"))
        x = torch.randn(m, k, generator=generator)
        w = torch.randn(n, k, generator=generator) * 0.02
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            xd, wd = x.to(dtype), w.to(dtype)
            with torch.inference_mode():
                seconds = best_seconds(lambda: torch.matmul(xd, wd.t()), args.budget_s)
            print(json.dumps({"m": m, "n": n, "k": k, "dtype": name, "threads": args.threads,
                              "torch_gflops": 2.0 * m * n * k / seconds / 1e9,
                              "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
