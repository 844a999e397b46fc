#!/usr/bin/env python3
"""Writes a random-weight bf16 checkpoint with LLaDA-8B's exact shapes (32 layers, d_model 4096,
32 heads, MLP 12288, vocabulary 126464; ~8 B parameters, 16 GB), for measuring Sculpt at the
real model's size without its weights. Tensors are generated and written one slice at a time,
so the script needs little memory. Not committed; the CPU benchmark writes it under build/.

    python3 tools/make_llada_8b.py --out build/bench-models/llada-8b-random
"""

from __future__ import annotations

import argparse
import json
import pathlib
import struct
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_tiny_model as tiny  # noqa: E402

LLADA_8B = dict(
    d_model=4096,
    n_heads=32,
    n_kv_heads=32,
    n_layers=32,
    mlp_hidden_size=12288,
    vocab_size=126464,
    max_sequence_length=4096,
    weight_tying=False,
    include_qkv_bias=False,
    mask_token_id=126336,
    eos_token_id=126081,
    dtype="bf16",
)
SLICE_ELEMENTS = 1 << 24  # elements generated at a time


def tensor_shapes(spec: dict) -> list[tuple[str, list[int], float]]:
    """(name, shape, scale): linear weights uniform with the variance 1/fan_in, norms 1."""
    names = tiny.TENSOR_NAMES["llada"]
    d, hidden, vocab = spec["d_model"], spec["mlp_hidden_size"], spec["vocab_size"]
    uniform = np.sqrt(3.0)  # a uniform [-a, a] has variance a^2 / 3
    shapes = [(names["embed"], [vocab, d], uniform)]
    for i in range(spec["n_layers"]):
        name = {role: template.format(i=i) for role, template in names.items()}
        shapes += [
            (name["attn_norm"], [d], 0.0),
            (name["q"] + ".weight", [d, d], uniform * tiny.QK_GAIN / np.sqrt(d)),
            (name["k"] + ".weight", [d, d], uniform * tiny.QK_GAIN / np.sqrt(d)),
            (name["v"] + ".weight", [d, d], uniform / np.sqrt(d)),
            (name["o"] + ".weight", [d, d], uniform / np.sqrt(d)),
            (name["ffn_norm"], [d], 0.0),
            (name["gate"] + ".weight", [hidden, d], uniform / np.sqrt(d)),
            (name["up"] + ".weight", [hidden, d], uniform / np.sqrt(d)),
            (name["down"] + ".weight", [d, hidden], uniform / np.sqrt(hidden)),
        ]
    shapes += [
        (names["final_norm"], [d], 0.0),
        (names["head"], [vocab, d], uniform * tiny.LOGIT_STD / np.sqrt(d)),
    ]
    return shapes


def write(out_dir: pathlib.Path, seed: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = dict(LLADA_8B, seed=seed)
    (out_dir / "config.json").write_text(json.dumps(tiny.make_config(spec), indent=2) + "\n")
    shapes = tensor_shapes(spec)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _ in shapes:
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    rng = np.random.default_rng(seed)
    with open(out_dir / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for name, shape, scale in shapes:
            remaining = int(np.prod(shape))
            while remaining:
                n = min(remaining, SLICE_ELEMENTS)
                if scale == 0.0:  # a norm's gain
                    values = np.ones(n, dtype=np.float32)
                else:
                    values = (rng.random(n, dtype=np.float32) * 2.0 - 1.0) * np.float32(scale)
                f.write(tiny.bf16_bits(values).astype("<u2").tobytes())
                remaining -= n
    print(f"wrote {out_dir} ({offset / 1e9:.1f} GB of weights)")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, required=True, help="the model folder to write")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    write(args.out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
