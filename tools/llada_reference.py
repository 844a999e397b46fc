"""Independent PyTorch fp32 reference of the LLaDA forward pass and of LLaDA's generate().

Shared by tools/gen_golden.py (golden fixtures) and bench/torch_reference.py (benchmark peer). The
randomness is the counter-based Philox stream the C++ engine uses, so sampled runs match bit for bit.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

# ---------------------------------------------------------------------------------------------
# Philox4x32-10 and the uniform draws built on it.

_MASK32 = np.uint64(0xFFFFFFFF)
_PHILOX_M0 = np.uint64(0xD2511F53)
_PHILOX_M1 = np.uint64(0xCD9E8D57)
_PHILOX_W0 = np.uint64(0x9E3779B9)
_PHILOX_W1 = np.uint64(0xBB67AE85)

PHILOX_KNOWN_ANSWERS = [
    # (counter, key, output): the Random123 known-answer vectors.
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]


def philox4x32_10(counter, key) -> list[np.ndarray]:
    """Philox4x32-10 over broadcastable arrays: counter = 4 words, key = 2 words (uint32 values).

    Words are held in uint64 so that the 32x32 -> 64-bit products need no special handling.
    """
    c0, c1, c2, c3 = (np.asarray(w, dtype=np.uint64) & _MASK32 for w in counter)
    k0, k1 = (np.asarray(w, dtype=np.uint64) & _MASK32 for w in key)
    for _ in range(10):
        p0 = _PHILOX_M0 * c0
        p1 = _PHILOX_M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ k0,
            p1 & _MASK32,
            (p0 >> np.uint64(32)) ^ c3 ^ k1,
            p0 & _MASK32,
        )
        k0 = (k0 + _PHILOX_W0) & _MASK32
        k1 = (k1 + _PHILOX_W1) & _MASK32
    return [c0, c1, c2, c3]


def check_philox() -> None:
    for counter, key, expected in PHILOX_KNOWN_ANSWERS:
        got = [int(w) for w in philox4x32_10(counter, key)]
        assert got == expected, f"Philox known answer failed: {counter} {key} -> {got}"


def uniform_open01(seed: int, step, position, index, stream) -> np.ndarray:
    """Uniform doubles in (0, 1) keyed by (seed, step, position, index, stream), broadcast.

    53 random bits plus one half: never exactly 0 or 1, so log(u) and log(-log(u)) stay finite.
    """
    out = philox4x32_10(
        [position, step, index, stream], [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF]
    )
    bits53 = (out[0] << np.uint64(21)) | (out[1] >> np.uint64(11))
    return (bits53.astype(np.float64) + 0.5) * 2.0**-53


# ---------------------------------------------------------------------------------------------
# The model.


@dataclass
class LladaConfig:
    d_model: int
    n_heads: int
    n_kv_heads: int
    n_layers: int
    mlp_hidden_size: int
    embedding_size: int
    rope_theta: float
    rms_norm_eps: float
    weight_tying: bool
    include_qkv_bias: bool
    mask_token_id: int
    eos_token_id: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @staticmethod
    def from_json(path: pathlib.Path) -> LladaConfig:
        raw = json.loads(pathlib.Path(path).read_text())
        return LladaConfig(
            d_model=raw["d_model"],
            n_heads=raw["n_heads"],
            n_kv_heads=raw.get("n_kv_heads") or raw["n_heads"],
            n_layers=raw["n_layers"],
            mlp_hidden_size=raw.get("mlp_hidden_size") or raw["mlp_ratio"] * raw["d_model"],
            embedding_size=raw.get("embedding_size") or raw["vocab_size"],
            rope_theta=float(raw["rope_theta"]),
            rms_norm_eps=float(raw["rms_norm_eps"]),
            weight_tying=bool(raw["weight_tying"]),
            include_qkv_bias=bool(raw.get("include_qkv_bias") or raw.get("include_bias")),
            mask_token_id=raw["mask_token_id"],
            eos_token_id=raw["eos_token_id"],
        )


def load_tensors(model_dir: pathlib.Path) -> dict[str, torch.Tensor]:
    """All tensors of a single-file or sharded checkpoint, upcast to fp32 (exact for BF16/F16)."""
    model_dir = pathlib.Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.exists()
        else ["model.safetensors"]
    )
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        for key, value in load_file(str(model_dir / name)).items():
            tensors[key] = value.to(torch.float32).contiguous()
    return tensors


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class LladaModel:
    """LLaDA (OLMo "llama" block): pre-norm, RoPE, non-causal GQA attention, SwiGLU MLP.

    `sdpa=True` uses torch's fused attention (what the HF model runs, fair for benchmarks); the
    default spells the softmax out so the fixtures depend on no kernel choice.
    """

    def __init__(self, model_dir: pathlib.Path, sdpa: bool = False):
        self.config = LladaConfig.from_json(pathlib.Path(model_dir) / "config.json")
        self.w = load_tensors(model_dir)
        self.sdpa = sdpa
        cfg = self.config
        hd = cfg.head_dim
        self.inv_freq = 1.0 / (
            cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
        )  # [hd/2]
        head = "wte" if cfg.weight_tying else "ff_out"
        self.head = self.w[f"model.transformer.{head}.weight"]  # [embedding_size, d]

    def rope_tables(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.arange(seq_len, dtype=torch.float32)
        angle = torch.outer(t, self.inv_freq)  # [T, hd/2]
        angle = torch.cat([angle, angle], dim=-1)  # [T, hd]
        return angle.cos()[:, None, :], angle.sin()[:, None, :]  # [T, 1, hd]

    def linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def forward(self, ids: torch.Tensor, trace: dict | None = None) -> torch.Tensor:
        """ids [B, T] -> logits [B, T, embedding_size]. `trace` (B == 1) gets named activations."""
        cfg = self.config
        B, T = ids.shape
        hd = cfg.head_dim
        n_rep = cfg.n_heads // cfg.n_kv_heads
        cos, sin = self.rope_tables(T)

        def record(name: str, value: torch.Tensor) -> None:
            if trace is not None:
                trace[name] = value[0].reshape(T, -1).clone()

        x = self.w["model.transformer.wte.weight"][ids]  # [B, T, d]
        record("embed", x)
        for i in range(cfg.n_layers):
            p = f"model.transformer.blocks.{i}."
            h = rms_norm(x, self.w[p + "attn_norm.weight"], cfg.rms_norm_eps)
            record(f"layers.{i}.attn_norm", h)
            q = self.linear(h, p + "q_proj").view(B, T, cfg.n_heads, hd)
            k = self.linear(h, p + "k_proj").view(B, T, cfg.n_kv_heads, hd)
            v = self.linear(h, p + "v_proj").view(B, T, cfg.n_kv_heads, hd)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            record(f"layers.{i}.q", q)
            record(f"layers.{i}.k", k)
            record(f"layers.{i}.v", v)
            # Query head j reads kv head j // n_rep.
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, T, hd]
            k = k.repeat_interleave(n_rep, dim=1)
            v = v.repeat_interleave(n_rep, dim=1)
            if self.sdpa:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=False)
            else:
                scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))  # [B, heads, T, T]
                a = torch.softmax(scores, dim=-1) @ v
            a = a.transpose(1, 2).reshape(B, T, cfg.n_heads * hd)
            record(f"layers.{i}.attn", a)
            a = self.linear(a, p + "attn_out")
            record(f"layers.{i}.attn_out", a)
            x = x + a
            record(f"layers.{i}.h_attn", x)
            g = rms_norm(x, self.w[p + "ff_norm.weight"], cfg.rms_norm_eps)
            record(f"layers.{i}.ff_norm", g)
            act = F.silu(self.linear(g, p + "ff_proj")) * self.linear(g, p + "up_proj")
            record(f"layers.{i}.ff_act", act)
            x = x + self.linear(act, p + "ff_out")
            record(f"layers.{i}.out", x)
        h = rms_norm(x, self.w["model.transformer.ln_f.weight"], cfg.rms_norm_eps)
        record("ln_f", h)
        logits = F.linear(h, self.head)
        record("logits", logits)
        return logits


# ---------------------------------------------------------------------------------------------
# LLaDA's generate(): semi-autoregressive blocks, a fixed commit schedule, low-confidence or random
# remasking, optional Gumbel-max sampling and classifier-free guidance.


def relative_gap(best: float, runner_up: float) -> float:
    """How far a decision is from flipping, relative to the size of the values compared."""
    scale = max(abs(best), abs(runner_up))
    return (best - runner_up) / scale if scale > 0 else math.inf


def commit_schedule(n_masks: int, steps_per_block: int) -> list[int]:
    """Commits per step: equal shares, the remainder going to the first steps."""
    base, extra = divmod(n_masks, steps_per_block)
    return [base + (1 if i < extra else 0) for i in range(steps_per_block)]


def generate(
    model: LladaModel,
    prompt_ids: list[int],
    *,
    gen_length: int,
    steps: int,
    block_length: int,
    remasking: str = "low_confidence",
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    seed: int = 0,
    margins: list[float] | None = None,
) -> list[int]:
    """Returns the generated token ids. `margins` gets the relative gap of every decision that
    decided a committed token: the argmax at each committed position and each top-k boundary."""
    if remasking not in ("low_confidence", "random"):
        raise ValueError(f"unsupported remasking {remasking!r}")
    if gen_length % block_length:
        raise ValueError("gen_length must be a multiple of block_length")
    num_blocks = gen_length // block_length
    if steps % num_blocks:
        raise ValueError("steps must be a multiple of the number of blocks")
    steps_per_block = steps // num_blocks
    mask_id = model.config.mask_token_id
    prompt_len = len(prompt_ids)
    x = torch.tensor([list(prompt_ids) + [mask_id] * gen_length], dtype=torch.long)  # [1, T]
    T = x.shape[1]
    prompt_index = x != mask_id
    positions = np.arange(T, dtype=np.uint64)
    vocab_index = np.arange(model.config.embedding_size, dtype=np.uint64)

    for b in range(num_blocks):
        block_end = prompt_len + (b + 1) * block_length
        n_masks = int((x[0, block_end - block_length : block_end] == mask_id).sum())
        for i, k in enumerate(commit_schedule(n_masks, steps_per_block)):
            s = b * steps_per_block + i
            mask_index = x[0] == mask_id
            if cfg_scale > 0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                cond, un = model.forward(torch.cat([x, un_x]))
                logits = un + (cfg_scale + 1) * (cond - un)
            else:
                logits = model.forward(x)[0]
            l64 = logits.double()  # [T, V]
            if temperature == 0:
                scores = l64
            else:
                u = uniform_open01(seed, s, positions[:, None], vocab_index[None, :], 0)
                scores = l64.exp() / (-torch.from_numpy(np.log(u))) ** temperature
            x0 = scores.argmax(-1)  # first index on ties
            if remasking == "low_confidence":
                conf = torch.softmax(l64, -1).gather(-1, x0[:, None])[:, 0]
            else:
                conf = torch.from_numpy(uniform_open01(seed, s, positions, 0, 1))
            conf[block_end:] = -math.inf
            conf = torch.where(mask_index, conf, torch.full_like(conf, -math.inf))
            x0 = torch.where(mask_index, x0, x[0])
            # Stable ascending sort of -conf: highest confidence first, lower position on ties.
            order = torch.sort(-conf, stable=True).indices
            chosen = order[:k]
            if margins is not None:
                for pos in chosen.tolist():
                    top2 = scores[pos].topk(2).values.tolist()
                    margins.append(relative_gap(top2[0], top2[1]))
                n_candidates = int(torch.isfinite(conf).sum())
                if 0 < k < n_candidates:
                    margins.append(relative_gap(conf[order[k - 1]].item(), conf[order[k]].item()))
            x[0, chosen] = x0[chosen]
    return x[0, prompt_len:].tolist()
