#!/usr/bin/env python3
"""PyTorch peer for Sculpt benchmarks: times the reference LLaDA forward or a full generate().

    python bench/torch_reference.py --model DIR --seq-len 512 --batch 4 --threads 16
    python bench/torch_reference.py --model DIR --generate --prompt-len 32 --gen-length 128 \
        --steps 128 --block-length 32

Prints one JSON object. The model code is tools/llada_reference.py (the golden fixtures' reference)
with torch's fused attention, as the HF LLaDA model runs it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tools"))
import llada_reference as ref  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up: first-touch of weights, allocator and thread pool start-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=pathlib.Path, required=True, help="HF-layout LLaDA folder")
    ap.add_argument("--seq-len", type=int, default=256, help="forward: tokens per sequence")
    ap.add_argument("--batch", type=int, default=1, help="forward: sequences per call")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs; the median is reported")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--generate", action="store_true", help="time generate() instead")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--gen-length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--block-length", type=int, default=32)
    ap.add_argument("--remasking", default="low_confidence", choices=["low_confidence", "random"])
    ap.add_argument("--temperature", type=float, default=0.0)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    model = ref.LladaModel(args.model, sdpa=True)
    config = model.config
    rng = np.random.default_rng(0)
    limit = min(config.mask_token_id, config.eos_token_id)
    result = dict(
        peer="torch",
        torch_version=torch.__version__,
        model=args.model.name,
        threads=torch.get_num_threads(),
        repeat=args.repeat,
    )

    with torch.inference_mode():
        if args.generate:
            prompt = rng.integers(0, limit, size=args.prompt_len).tolist()

            def run() -> None:
                ref.generate(
                    model,
                    prompt,
                    gen_length=args.gen_length,
                    steps=args.steps,
                    block_length=args.block_length,
                    remasking=args.remasking,
                    temperature=args.temperature,
                )

            times = timed(run, args.repeat)
            median = statistics.median(times)
            result.update(
                mode="generate",
                prompt_len=args.prompt_len,
                gen_length=args.gen_length,
                steps=args.steps,
                block_length=args.block_length,
                remasking=args.remasking,
                temperature=args.temperature,
                median_s=median,
                min_s=min(times),
                steps_per_s=args.steps / median,
                tokens_per_s=args.gen_length / median,
            )
        else:
            ids = torch.from_numpy(rng.integers(0, limit, size=(args.batch, args.seq_len)))
            times = timed(lambda: model.forward(ids), args.repeat)
            median = statistics.median(times)
            result.update(
                mode="forward",
                batch=args.batch,
                seq_len=args.seq_len,
                median_s=median,
                min_s=min(times),
                tokens_per_s=args.batch * args.seq_len / median,
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
