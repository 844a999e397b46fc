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


def upstream_style_generate(model, prompt, gen_length, steps, block_length, temperature):
    """LLaDA's generate() loop as its repository publishes it (ML-GSAI/LLaDA generate.py), written
    here for the benchmark: every step takes the logits of the whole canvas, scores them with
    float64 Gumbel noise and a float64 softmax at every position, and commits the top-k of the
    current block. Same tokens as ref.generate (low_confidence), with the reference's own costs."""
    config = model.config
    mask_id = config.mask_token_id
    prompt_len = len(prompt)
    x = torch.tensor([list(prompt) + [mask_id] * gen_length], dtype=torch.long)
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for b in range(num_blocks):
        block_end = prompt_len + (b + 1) * block_length
        n_masks = int((x[0, block_end - block_length : block_end] == mask_id).sum())
        schedule = ref.commit_schedule(n_masks, steps_per_block)
        for i in range(steps_per_block):
            masked = x == mask_id
            logits = model.forward(x).to(torch.float64)  # [1, T, V]
            noise = torch.rand_like(logits)
            x0 = (logits.exp() / (-torch.log(noise)) ** temperature).argmax(-1)
            p = torch.softmax(logits, dim=-1)
            confidence = torch.gather(p, -1, x0[..., None])[..., 0]
            confidence[:, block_end:] = -np.inf
            x0 = torch.where(masked, x0, x)
            confidence = torch.where(masked, confidence, torch.tensor(-np.inf, dtype=torch.float64))
            chosen = torch.topk(confidence[0], k=schedule[i]).indices
            x[0, chosen] = x0[0, chosen]
    return ref.GenerateResult(x[0, prompt_len:].tolist(), steps, steps, False)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=pathlib.Path, required=True, help="HF-layout LLaDA folder")
    ap.add_argument("--seq-len", type=int, default=256, help="forward: tokens per sequence")
    ap.add_argument("--batch", type=int, default=1, help="forward: sequences per call")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs; the median is reported")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--generate", action="store_true", help="time generate() instead")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--prompt-ids", help="comma-separated prompt (default: --prompt-len random ids)")
    ap.add_argument("--gen-length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--block-length", type=int, default=32)
    ap.add_argument("--remasking", default="low_confidence",
                    choices=["low_confidence", "random", "threshold"])
    ap.add_argument("--confidence-threshold", type=float, default=0.9)
    ap.add_argument("--cache", default="none", choices=list(ref.CACHE_MODES),
                    help="generate: Fast-dLLM's prefix or dual KV cache, in plain PyTorch as "
                    "Fast-dLLM's generate_with_prefix_cache / generate_with_dual_cache run it")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="weights and activations")
    ap.add_argument("--loop", default="reference", choices=["reference", "upstream"],
                    help="generate: the golden fixtures' loop (logits at candidates only) or "
                    "LLaDA's published loop (whole-canvas float64 scoring; low_confidence)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    model = ref.LladaModel(args.model, sdpa=True, dtype=getattr(torch, args.dtype))
    config = model.config
    rng = np.random.default_rng(0)
    # Ids below the special tokens when there is room, else anywhere but the mask (as bench_llada).
    special = min(config.mask_token_id, config.eos_token_id)
    limit = special if special > 1 else config.embedding_size
    result = dict(
        peer="torch" if args.loop == "reference" else "torch-upstream-loop",
        torch_version=torch.__version__,
        model=args.model.name,
        threads=torch.get_num_threads(),
        dtype=args.dtype,
        repeat=args.repeat,
    )

    with torch.inference_mode():
        if args.generate:
            prompt = (
                [int(i) for i in args.prompt_ids.split(",")]
                if args.prompt_ids
                else rng.integers(0, limit, size=args.prompt_len).tolist()
            )

            generated = []

            def run() -> None:
                if args.loop == "upstream":
                    generated[:] = [upstream_style_generate(
                        model, prompt, args.gen_length, args.steps, args.block_length,
                        args.temperature)]
                    return
                generated[:] = [ref.generate(
                    model,
                    prompt,
                    gen_length=args.gen_length,
                    steps=args.steps,
                    block_length=args.block_length,
                    remasking=args.remasking,
                    temperature=args.temperature,
                    confidence_threshold=args.confidence_threshold,
                    cache=args.cache,
                )]

            times = timed(run, args.repeat)
            median = statistics.median(times)
            result.update(
                mode="generate",
                prompt_len=len(prompt) if args.generate else args.prompt_len,
                gen_length=args.gen_length,
                steps=args.steps,
                block_length=args.block_length,
                remasking=args.remasking,
                cache=args.cache,
                temperature=args.temperature,
                median_s=median,
                min_s=min(times),
                steps_per_s=args.steps / median,
                tokens_per_s=args.gen_length / median,
                steps_run=generated[0].steps,
                token_ids=generated[0].token_ids,
            )
        else:
            ids = rng.integers(0, limit, size=(args.batch, args.seq_len))
            ids[ids == config.mask_token_id] += 1
            ids = torch.from_numpy(ids)
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
