#!/usr/bin/env python3
"""Exports trained weights as a LLaDA checkpoint in the HF layout the C++ engine loads.

`python3 tools/train/export.py` reads build/train-run/checkpoint.pt and writes
models/sculpt-code-mini/: config.json, model.safetensors (BF16), the tokenizer, the loss plot and
the training log.
train.py calls export_model() at every checkpoint.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
# The keys of the real LLaDA-8B config.json that no training choice changes, shared with the tiny
# test models so the C++ config parser meets one shape of file.
from make_tiny_model import BASE_CONFIG as TINY_BASE_CONFIG  # noqa: E402

BASE_CONFIG = dict(TINY_BASE_CONFIG, init_fn="normal", torch_dtype="bfloat16")


def llada_config(model_cfg: dict, vocab_size: int, special_ids: dict[str, int]) -> dict:
    config = dict(BASE_CONFIG)
    config.update(
        d_model=model_cfg["d_model"],
        n_heads=model_cfg["n_heads"],
        n_kv_heads=model_cfg["n_heads"],
        n_layers=model_cfg["n_layers"],
        mlp_hidden_size=model_cfg["mlp_hidden_size"],
        mlp_ratio=round(model_cfg["mlp_hidden_size"] / model_cfg["d_model"]),
        vocab_size=vocab_size,
        embedding_size=vocab_size,
        max_sequence_length=model_cfg["max_sequence_length"],
        weight_tying=model_cfg["weight_tying"],
        rope_theta=model_cfg["rope_theta"],
        rms_norm_eps=model_cfg["rms_norm_eps"],
        init_std=model_cfg["init_std"],
        mask_token_id=special_ids["mask"],
        eos_token_id=special_ids["eos"],
        pad_token_id=special_ids["eos"],
        bos_token_id=special_ids["bos"],
    )
    return dict(sorted(config.items()))


def to_bf16(t: torch.Tensor) -> torch.Tensor:
    # torch's float32 -> bfloat16 cast rounds to nearest, ties to even (as make_tiny_model.py's).
    return t.detach().to(torch.float32).contiguous().to(torch.bfloat16)


def export_model(
    state_dict: dict[str, torch.Tensor],
    model_cfg: dict,
    tokenizer_dir: pathlib.Path,
    out_dir: pathlib.Path,
    loss_png: pathlib.Path | None = None,
    log: pathlib.Path | None = None,
) -> None:
    """Writes the checkpoint. Each file goes through a temporary name, so the engine never loads
    a half-written file while training is exporting."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tok_cfg = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    by_content = {v["content"]: int(k) for k, v in tok_cfg["added_tokens_decoder"].items()}
    special_ids = {
        "mask": by_content[tok_cfg["mask_token"]],
        "eos": by_content[tok_cfg["eos_token"]],
        "bos": by_content[tok_cfg["bos_token"]],
    }
    vocab_size = state_dict["model.transformer.wte.weight"].shape[0]
    config = llada_config(model_cfg, vocab_size, special_ids)

    def replace(name: str, write) -> None:
        tmp = out_dir / (name + ".tmp")
        write(tmp)
        tmp.replace(out_dir / name)

    tensors = {name: to_bf16(t) for name, t in sorted(state_dict.items())}
    replace("model.safetensors", lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    replace("config.json", lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        replace(name, lambda p, n=name: shutil.copyfile(tokenizer_dir / n, p))
    if loss_png is not None and loss_png.exists():
        replace("loss.png", lambda p: shutil.copyfile(loss_png, p))
    # The log travels with the weights, so the card can be rewritten from the repository alone.
    if log is not None and log.exists():
        replace("train-log.jsonl", lambda p: shutil.copyfile(log, p))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--checkpoint", type=pathlib.Path, default=pathlib.Path("build/train-run/checkpoint.pt")
    )
    ap.add_argument(
        "--tokenizer", type=pathlib.Path, default=pathlib.Path("build/train-data/tokenizer")
    )
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("models/sculpt-code-mini"))
    args = ap.parse_args(argv)
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    run = args.checkpoint.parent
    export_model(
        ckpt["model"], ckpt["config"]["model"], args.tokenizer, args.out, run / "loss.png",
        run / "log.jsonl",
    )
    print(f"exported step {ckpt['step']} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
