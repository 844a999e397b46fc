#!/usr/bin/env python3
"""Writes deterministic tiny random LLaDA and Dream checkpoints (HF layout) for tests and benchmarks.

Only numpy is needed: the safetensors file is written by hand, so tests can rebuild their models on
a machine without torch. `python3 tools/make_tiny_model.py --out tests/models` writes every default
variant; `--check` rebuilds them in a temporary folder and compares bytes with what --out holds.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import json
import pathlib
import struct
import sys
import tempfile

import numpy as np

# Values shared by every variant; they mirror the keys of the real LLaDA-8B config.json so that the
# C++ config parser sees the same shape of file it will see in production.
BASE_CONFIG = {
    "activation_type": "silu",
    "alibi": False,
    "alibi_bias_max": 8.0,
    "architectures": ["LLaDAModelLM"],
    "attention_dropout": 0.0,
    "attention_layer_norm": False,
    "attention_layer_norm_with_affine": True,
    "bias_for_layer_norm": False,
    "block_group_size": 1,
    "block_type": "llama",
    "embedding_dropout": 0.0,
    "flash_attention": False,
    "include_bias": False,
    "init_cutoff_factor": None,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "input_emb_norm": False,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "mlp_ratio": 4,
    "model_type": "llada",
    "multi_query_attention": None,
    "precision": "amp_bf16",
    "residual_dropout": 0.0,
    "rms_norm_eps": 1e-05,
    "rope": True,
    "rope_full_precision": True,
    "rope_theta": 500000.0,
    "scale_logits": False,
    "use_cache": False,
}

# Dream is Qwen2-shaped; these are the keys of the real Dream-7B config.json that a parser meets.
DREAM_BASE_CONFIG = {
    "architectures": ["DreamModel"],
    "attention_dropout": 0.0,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "max_window_layers": None,
    "model_type": "Dream",
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "use_cache": True,
    "use_sliding_window": False,
}

# Shape and special ids per default variant. tiny-llada-bf16 shares the seed of tiny-llada, so its
# weights are exactly tiny-llada's rounded to BF16.
TINY_LLADA = dict(
    d_model=96,
    n_heads=3,
    n_kv_heads=3,
    n_layers=2,
    mlp_hidden_size=200,
    vocab_size=997,
    max_sequence_length=512,
    weight_tying=False,
    include_qkv_bias=False,
    mask_token_id=996,
    eos_token_id=995,
    dtype="f32",
    seed=20250101,
)
VARIANTS = {
    "tiny-llada": TINY_LLADA,
    "tiny-llada-bf16": dict(TINY_LLADA, dtype="bf16"),
    # Grouped-query attention (2 query heads per kv head, head dim 24), q/k/v biases, tied head.
    "tiny-llada-gqa": dict(
        TINY_LLADA,
        n_heads=4,
        n_kv_heads=2,
        n_layers=3,
        mlp_hidden_size=136,
        vocab_size=1009,
        weight_tying=True,
        include_qkv_bias=True,
        mask_token_id=1008,
        eos_token_id=1007,
        seed=20250102,
    ),
    # With a real tokenizer (tests/tokenizers/llada-style, 3006 ids): text prompts and answers
    # through the CLI. Its special ids are the tokenizer's.
    "tiny-llada-text": dict(
        TINY_LLADA,
        vocab_size=3006,
        mask_token_id=3002,
        eos_token_id=3001,
        dtype="bf16",
        seed=20250103,
        tokenizer="llada-style",
    ),
    # Dream (Qwen2 layout): GQA, q/k/v biases, separate head, predictions shifted by one position.
    "tiny-dream": dict(
        TINY_LLADA,
        family="dream",
        n_heads=4,
        n_kv_heads=2,
        mlp_hidden_size=160,
        vocab_size=1013,
        include_qkv_bias=True,
        mask_token_id=1012,
        eos_token_id=1011,
        bos_token_id=1010,
        seed=20250104,
    ),
}

# Checkpoint tensor names per family, by role; {i} is the layer. Linear layers (q, k, v, o, gate,
# up, down) are named without their ".weight"/".bias" suffix. tools/llada_reference.py reads
# checkpoints by these names too.
TENSOR_NAMES = {
    "llada": dict(
        embed="model.transformer.wte.weight",
        attn_norm="model.transformer.blocks.{i}.attn_norm.weight",
        q="model.transformer.blocks.{i}.q_proj",
        k="model.transformer.blocks.{i}.k_proj",
        v="model.transformer.blocks.{i}.v_proj",
        o="model.transformer.blocks.{i}.attn_out",
        ffn_norm="model.transformer.blocks.{i}.ff_norm.weight",
        gate="model.transformer.blocks.{i}.ff_proj",
        up="model.transformer.blocks.{i}.up_proj",
        down="model.transformer.blocks.{i}.ff_out",
        final_norm="model.transformer.ln_f.weight",
        head="model.transformer.ff_out.weight",
    ),
    "dream": dict(
        embed="model.embed_tokens.weight",
        attn_norm="model.layers.{i}.input_layernorm.weight",
        q="model.layers.{i}.self_attn.q_proj",
        k="model.layers.{i}.self_attn.k_proj",
        v="model.layers.{i}.self_attn.v_proj",
        o="model.layers.{i}.self_attn.o_proj",
        ffn_norm="model.layers.{i}.post_attention_layernorm.weight",
        gate="model.layers.{i}.mlp.gate_proj",
        up="model.layers.{i}.mlp.up_proj",
        down="model.layers.{i}.mlp.down_proj",
        final_norm="model.norm.weight",
        head="lm_head.weight",
    ),
}

# Target standard deviation of the final logits. Random models with a small init produce
# near-uniform logits, so every argmax and every top-k becomes a near-tie that fp32 summation order
# can flip; a spread of about 3 makes decisions robust while keeping softmax away from saturation.
LOGIT_STD = 3.0
# A q/k gain of 2 gives attention scores of std about 4: sharp enough that masked positions (which
# share one embedding) see different contexts through RoPE and get distinct predictions; with gain
# 1 most masked positions of a canvas predicted the same token.
QK_GAIN = 2.0
MASK_ROW_SCALE = 0.05


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """Rounds float32 values to BF16 (round to nearest, ties to even); returns the uint16 bits."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def write_safetensors(path: pathlib.Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """Writes `tensors` (float32 arrays) as F32 or BF16 in the safetensors layout."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, array in tensors.items():
        if dtype == "bf16":
            blob = bf16_bits(array).astype("<u2").tobytes()
        else:
            blob = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {
            "dtype": "BF16" if dtype == "bf16" else "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # The format allows trailing spaces in the header; padding to 8 keeps the data 8-byte aligned
    # inside an mmap, which the C++ loader relies on for zero-copy F32 views.
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)


def make_config(spec: dict) -> dict:
    if spec.get("family", "llada") == "dream":
        return make_dream_config(spec)
    config = dict(BASE_CONFIG)
    config.update(
        d_model=spec["d_model"],
        n_heads=spec["n_heads"],
        n_kv_heads=spec["n_kv_heads"],
        n_layers=spec["n_layers"],
        mlp_hidden_size=spec["mlp_hidden_size"],
        vocab_size=spec["vocab_size"],
        embedding_size=spec["vocab_size"],
        max_sequence_length=spec["max_sequence_length"],
        weight_tying=spec["weight_tying"],
        include_qkv_bias=spec["include_qkv_bias"],
        mask_token_id=spec["mask_token_id"],
        eos_token_id=spec["eos_token_id"],
        pad_token_id=spec["eos_token_id"],
        torch_dtype="bfloat16" if spec["dtype"] == "bf16" else "float32",
    )
    return dict(sorted(config.items()))


def make_dream_config(spec: dict) -> dict:
    config = dict(DREAM_BASE_CONFIG)
    config.update(
        bos_token_id=spec["bos_token_id"],
        eos_token_id=spec["eos_token_id"],
        hidden_size=spec["d_model"],
        intermediate_size=spec["mlp_hidden_size"],
        mask_token_id=spec["mask_token_id"],
        max_position_embeddings=spec["max_sequence_length"],
        max_window_layers=spec["n_layers"],
        num_attention_heads=spec["n_heads"],
        num_hidden_layers=spec["n_layers"],
        num_key_value_heads=spec["n_kv_heads"],
        pad_token_id=spec["eos_token_id"],
        tie_word_embeddings=spec["weight_tying"],
        torch_dtype="bfloat16" if spec["dtype"] == "bf16" else "float32",
        vocab_size=spec["vocab_size"],
    )
    return dict(sorted(config.items()))


def make_weights(spec: dict) -> dict[str, np.ndarray]:
    """Random weights with O(1) hidden states and final logits of std about LOGIT_STD (or the
    spec's logit_std)."""
    rng = np.random.default_rng(spec["seed"])
    logit_std = spec.get("logit_std", LOGIT_STD)
    d = spec["d_model"]
    hd = d // spec["n_heads"]
    q_dim = spec["n_heads"] * hd
    kv_dim = spec["n_kv_heads"] * hd
    hidden = spec["mlp_hidden_size"]
    vocab = spec["vocab_size"]

    def linear(out_dim: int, in_dim: int, gain: float = 1.0) -> np.ndarray:
        # Variance 1/fan_in keeps the output rms equal to the input rms.
        return (rng.standard_normal((out_dim, in_dim)) * (gain / np.sqrt(in_dim))).astype(
            np.float32
        )

    def norm(dim: int, scale: float = 1.0) -> np.ndarray:
        return (scale * (1.0 + 0.1 * rng.standard_normal(dim))).astype(np.float32)

    def bias(dim: int) -> np.ndarray:
        return (0.1 * rng.standard_normal(dim)).astype(np.float32)

    # The draw order is the same for every family, so a family's names never change its values.
    names = TENSOR_NAMES[spec.get("family", "llada")]
    w: dict[str, np.ndarray] = {}
    w[names["embed"]] = rng.standard_normal((vocab, d)).astype(np.float32)
    for i in range(spec["n_layers"]):
        name = {role: template.format(i=i) for role, template in names.items()}
        w[name["attn_norm"]] = norm(d)
        w[name["q"] + ".weight"] = linear(q_dim, d, QK_GAIN)
        w[name["k"] + ".weight"] = linear(kv_dim, d, QK_GAIN)
        w[name["v"] + ".weight"] = linear(kv_dim, d)
        if spec["include_qkv_bias"]:
            w[name["q"] + ".bias"] = bias(q_dim)
            w[name["k"] + ".bias"] = bias(kv_dim)
            w[name["v"] + ".bias"] = bias(kv_dim)
        w[name["o"] + ".weight"] = linear(d, q_dim)
        w[name["ffn_norm"]] = norm(d)
        w[name["gate"] + ".weight"] = linear(hidden, d)
        w[name["up"] + ".weight"] = linear(hidden, d)
        w[name["down"] + ".weight"] = linear(d, hidden)
    if spec["weight_tying"]:
        # The head is wte (entries of std 1), so logits = ln_f(x) . wte would have std sqrt(d);
        # the final norm's gain brings them down to LOGIT_STD while embeddings stay N(0, 1).
        w[names["final_norm"]] = norm(d, logit_std / np.sqrt(d))
    else:
        w[names["final_norm"]] = norm(d)
        w[names["head"]] = linear(vocab, d, logit_std)
    # A trained model never predicts the mask token; a random head would, and committing it leaves a
    # position masked after its step. Shrinking the mask row keeps its logit near 0, far below the
    # top logit (about 3 * LOGIT_STD). With tying that row is also the mask embedding: RMSNorm undoes
    # the scale before attention, and block outputs then dominate the residual at masked positions.
    head = names["embed"] if spec["weight_tying"] else names["head"]
    w[head][spec["mask_token_id"]] *= MASK_ROW_SCALE
    return w


def write_model(out_dir: pathlib.Path, spec: dict) -> pathlib.Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "config.json", "w") as f:
        json.dump(make_config(spec), f, indent=2)
        f.write("\n")
    write_safetensors(out_dir / "model.safetensors", make_weights(spec), spec["dtype"])
    if "tokenizer" in spec:
        source = pathlib.Path(__file__).resolve().parent.parent / "tests" / "tokenizers"
        for file in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(source / spec["tokenizer"] / file, out_dir / file)
    return out_dir


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, required=True, help="folder that gets NAME/")
    ap.add_argument("--variant", choices=sorted(VARIANTS), help="write one variant (default: all)")
    ap.add_argument("--name", help="folder name under --out (default: the variant name)")
    ap.add_argument("--dtype", choices=["f32", "bf16"], help="override the variant's dtype")
    ap.add_argument("--seed", type=int, help="override the variant's seed")
    # Shape overrides, for bench-shaped models such as
    # --layers 12 --d-model 768 --heads 12 --kv-heads 12 --mlp-hidden 2048 --vocab 32000.
    ap.add_argument("--layers", type=int)
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--kv-heads", type=int)
    ap.add_argument("--mlp-hidden", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--max-seq-len", type=int)
    ap.add_argument("--logit-std", type=float,
                    help="spread of the final logits (default 3); larger makes confident "
                    "predictions, as a trained model has, for the threshold policy")
    ap.add_argument("--check", action="store_true", help="rebuild and compare with --out")
    return ap.parse_args(argv)


def requested_specs(args: argparse.Namespace) -> dict[str, dict]:
    shape = {
        "n_layers": args.layers,
        "d_model": args.d_model,
        "n_heads": args.heads,
        "n_kv_heads": args.kv_heads,
        "mlp_hidden_size": args.mlp_hidden,
        "vocab_size": args.vocab,
        "max_sequence_length": args.max_seq_len,
    }
    shape = {k: v for k, v in shape.items() if v is not None}
    other = {
        k: v
        for k, v in (("dtype", args.dtype), ("seed", args.seed), ("logit_std", args.logit_std))
        if v is not None
    }
    if args.variant is None and not shape and not other and args.name is None:
        return dict(VARIANTS)
    variant = args.variant or "tiny-llada"
    spec = dict(VARIANTS[variant], **shape, **other)
    name = args.name or variant
    if args.name is None and spec["dtype"] != VARIANTS[variant]["dtype"]:
        name = f"{variant}-{spec['dtype']}"
    if args.name is None and (shape or args.seed is not None or args.logit_std is not None):
        sys.exit("give --name for a model whose shape or seed differs from its variant")
    if shape and "max_sequence_length" not in shape:
        spec["max_sequence_length"] = 4096  # as LLaDA-8B; bench sequences outgrow the tiny 512
    if "vocab_size" in shape:
        spec["mask_token_id"] = spec["vocab_size"] - 1
        spec["eos_token_id"] = spec["vocab_size"] - 2
        if "bos_token_id" in spec:
            spec["bos_token_id"] = spec["vocab_size"] - 3
    if spec["d_model"] % spec["n_heads"] or spec["n_heads"] % spec["n_kv_heads"]:
        sys.exit("d_model must divide by heads and heads by kv-heads")
    return {name: spec}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    specs = requested_specs(args)
    if not args.check:
        for name, spec in specs.items():
            path = write_model(args.out / name, spec)
            size = (path / "model.safetensors").stat().st_size
            print(f"wrote {path} ({size} bytes)")
        return 0
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in specs.items():
            fresh = write_model(pathlib.Path(tmp) / name, spec)
            files = ["config.json", "model.safetensors"]
            if "tokenizer" in spec:
                files += ["tokenizer.json", "tokenizer_config.json"]
            for file in files:
                same = (args.out / name / file).exists() and filecmp.cmp(
                    fresh / file, args.out / name / file, shallow=False
                )
                print(f"{'ok  ' if same else 'DIFF'} {name}/{file}")
                failed |= not same
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
