"""Independent PyTorch fp32 reference of the LLaDA and Dream forward passes and of generate().

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

# The checkpoints' tensor names by role (tools/ is on the path of every script that imports this).
from make_tiny_model import TENSOR_NAMES

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
class ModelConfig:
    family: str  # "llada" or "dream"
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
    def from_json(path: pathlib.Path) -> ModelConfig:
        raw = json.loads(pathlib.Path(path).read_text())
        if raw.get("model_type") == "Dream":
            return ModelConfig(
                family="dream",
                d_model=raw["hidden_size"],
                n_heads=raw["num_attention_heads"],
                n_kv_heads=raw.get("num_key_value_heads") or raw["num_attention_heads"],
                n_layers=raw["num_hidden_layers"],
                mlp_hidden_size=raw["intermediate_size"],
                embedding_size=raw["vocab_size"],
                rope_theta=float(raw["rope_theta"]),
                rms_norm_eps=float(raw["rms_norm_eps"]),
                weight_tying=bool(raw.get("tie_word_embeddings", False)),
                include_qkv_bias=True,  # Qwen2 attention always has q/k/v biases
                mask_token_id=raw["mask_token_id"],
                eos_token_id=raw["eos_token_id"],
            )
        return ModelConfig(
            family="llada",
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


def load_tensors(
    model_dir: pathlib.Path, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
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
            tensors[key] = value.to(dtype).contiguous()
    return tensors


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Transformer:
    """LLaDA (OLMo "llama" block) or Dream (Qwen2): the same maths under different tensor names.
    Pre-norm, NeoX RoPE, non-causal GQA attention, SwiGLU MLP.

    `sdpa=True` uses torch's fused attention (what the HF model runs, fair for benchmarks); the
    default spells the softmax out so the fixtures depend on no kernel choice. `dtype` is the
    weights' and activations' (torch.bfloat16 runs the model as a bf16 PyTorch deployment does;
    logits come back as float32 either way).
    """

    def __init__(
        self, model_dir: pathlib.Path, sdpa: bool = False, dtype: torch.dtype = torch.float32
    ):
        self.config = ModelConfig.from_json(pathlib.Path(model_dir) / "config.json")
        self.w = load_tensors(model_dir, dtype)
        self.sdpa = sdpa
        cfg = self.config
        self.names = TENSOR_NAMES[cfg.family]
        hd = cfg.head_dim
        self.inv_freq = 1.0 / (
            cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
        )  # [hd/2]
        head = "embed" if cfg.weight_tying else "head"
        self.head = self.w[self.names[head]]  # [embedding_size, d]

    def rope_tables(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.arange(seq_len, dtype=torch.float32)
        angle = torch.outer(t, self.inv_freq)  # [T, hd/2]
        angle = torch.cat([angle, angle], dim=-1)  # [T, hd]
        dtype = self.head.dtype
        return angle.cos()[:, None, :].to(dtype), angle.sin()[:, None, :].to(dtype)  # [T, 1, hd]

    def linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def forward(
        self,
        ids: torch.Tensor,
        trace: dict | None = None,
        *,
        kv: list | None = None,
        window: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """ids [B, T] -> logits [B, T, embedding_size], row t computed at position t (unshifted;
        see predict). `trace` (B == 1) gets named activations.

        The approximate KV cache: without `window`, a `kv` list is filled with every layer's keys
        and values ([B, T, kv_heads, head_dim], keys after RoPE). With `window = (r0, r1)`, only
        canvas rows r0..r1-1 are computed: their queries attend to `kv`'s keys and values with
        rows r0..r1-1 replaced by their fresh ones (the cache itself is left as it was), and the
        logits of those rows come back [B, r1 - r0, embedding_size]."""
        cfg = self.config
        B, T = ids.shape
        hd = cfg.head_dim
        n_rep = cfg.n_heads // cfg.n_kv_heads
        cos, sin = self.rope_tables(T)
        if window is not None:
            r0, r1 = window
            if kv is None or not 0 <= r0 < r1 <= T:
                raise ValueError(f"a window {window} needs a cache of the {T}-row canvas")
            ids = ids[:, r0:r1]
            cos, sin = cos[r0:r1], sin[r0:r1]
            T = r1 - r0
        elif kv is not None:
            kv.clear()

        def record(name: str, value: torch.Tensor) -> None:
            if trace is not None:
                trace[name] = value[0].reshape(T, -1).clone()

        x = self.w[self.names["embed"]][ids]  # [B, T, d]
        record("embed", x)
        for i in range(cfg.n_layers):
            n = {role: template.format(i=i) for role, template in self.names.items()}
            h = rms_norm(x, self.w[n["attn_norm"]], cfg.rms_norm_eps)
            record(f"layers.{i}.attn_norm", h)
            q = self.linear(h, n["q"]).view(B, T, cfg.n_heads, hd)
            k = self.linear(h, n["k"]).view(B, T, cfg.n_kv_heads, hd)
            v = self.linear(h, n["v"]).view(B, T, cfg.n_kv_heads, hd)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            record(f"layers.{i}.q", q)
            record(f"layers.{i}.k", k)
            record(f"layers.{i}.v", v)
            if window is not None:
                cached_k, cached_v = kv[i]
                k = torch.cat([cached_k[:, :r0], k, cached_k[:, r1:]], dim=1)
                v = torch.cat([cached_v[:, :r0], v, cached_v[:, r1:]], dim=1)
            elif kv is not None:
                kv.append((k, v))
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
            a = self.linear(a, n["o"])
            record(f"layers.{i}.attn_out", a)
            x = x + a
            record(f"layers.{i}.h_attn", x)
            g = rms_norm(x, self.w[n["ffn_norm"]], cfg.rms_norm_eps)
            record(f"layers.{i}.ff_norm", g)
            act = F.silu(self.linear(g, n["gate"])) * self.linear(g, n["up"])
            record(f"layers.{i}.ff_act", act)
            x = x + self.linear(act, n["down"])
            record(f"layers.{i}.out", x)
        h = rms_norm(x, self.w[self.names["final_norm"]], cfg.rms_norm_eps)
        record("ln_f", h)
        logits = F.linear(h, self.head).float()
        record("logits", logits)
        return logits

    def predict(
        self, ids: torch.Tensor, *, kv: list | None = None, window: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """ids [B, T] -> the logits that predict each canvas position [B, T, embedding_size].

        Dream was trained autoregressively before diffusion, so row t predicts position t + 1: the
        prediction for position p is row max(p - 1, 0). LLaDA predicts each position in place.

        With a cache (see forward): no window fills `kv`; `window = (p0, p1)` predicts positions
        p0..p1-1 only [B, p1 - p0, embedding_size]. For Dream the rows computed are then
        max(p0 - 1, 0)..p1-1: one row before the window is recomputed too, so that position p0's
        prediction is the row before it, as without the cache, and every row of the window is
        fresh (its own token may have changed)."""
        dream = self.config.family == "dream"
        if window is None:
            logits = self.forward(ids, kv=kv)
            if dream:
                logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
            return logits
        p0, p1 = window
        if not dream:
            return self.forward(ids, kv=kv, window=window)
        r0 = max(p0 - 1, 0)
        logits = self.forward(ids, kv=kv, window=(r0, p1))  # rows r0..p1-1
        if p0 == 0:
            return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits[:, :-1]  # row p - 1 for every position p of the window


def check_kv_window(model: Transformer, length: int = 24) -> None:
    """A window computed against the cache of an unchanged canvas is the full forward's rows (to
    float32 rounding): what makes the cached steps approximate is only the canvas changing."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.config.mask_token_id, (2, length), generator=generator)
    kv: list = []
    with torch.inference_mode():
        full = model.predict(ids, kv=kv)
        for window in ((0, 8), (5, 13), (5, length), (1, length)):
            part = model.predict(ids, kv=kv, window=window)
            torch.testing.assert_close(part, full[:, window[0] : window[1]], rtol=1e-5, atol=1e-5)


# bench/torch_reference.py loads every family through this name.
LladaModel = Transformer


# ---------------------------------------------------------------------------------------------
# generate(): semi-autoregressive blocks over a canvas of masks, with the remasking policies of
# LLaDA (low_confidence, random), Dream (origin, maskgit_plus, topk_margin, entropy) and Fast-dLLM
# (threshold, factor), optional sampling filters, classifier-free guidance and early stop at EOS,
# and two options that revise committed tokens: LLaDA 2.1's editing and ReMDM-loop remasking.

# Philox streams: one per kind of draw, so no two uses of randomness ever share a number.
STREAM_GUMBEL = 0  # LLaDA Gumbel-max token sampling, index = vocabulary entry
STREAM_REMASK = 1  # random remasking confidence, index 0
STREAM_CATEGORICAL = 2  # Dream categorical token sampling, index = vocabulary entry
STREAM_ORIGIN = 3  # Dream origin transfer coin, index 0
STREAM_ALG_TEMP = 4  # Dream alg_temp position sampling, index 0

LLADA_STYLE = ("low_confidence", "random", "threshold", "factor")
DREAM_STYLE = ("origin", "maskgit_plus", "topk_margin", "entropy")
POLICY_ALIASES = {"margin": "topk_margin"}
DREAM_EPS = 1e-3  # the last timestep of Dream's schedule
FLOAT32_MIN = float(torch.finfo(torch.float32).min)  # what Dream's filters write, not -inf
ADAPTIVE_STEP_CAP = 4  # threshold/factor: at most this many steps per block position


@dataclass
class GenerateParams:
    gen_length: int
    steps: int
    block_length: int
    remasking: str = "low_confidence"
    temperature: float = 0.0
    top_p: float = 1.0  # 1.0: off
    top_k: int = 0  # 0: off
    cfg_scale: float = 0.0
    seed: int = 0
    alg_temp: float = 0.0  # Dream-style position sampling; 0: deterministic top-k
    confidence_threshold: float = 0.9
    factor: float = 1.0
    early_stop: bool = False
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False
    stop_ids: list[int] | None = None  # None: [eos_token_id]
    # Fast-dLLM's approximate KV cache: "none", "prefix" or "dual". The first step of every block
    # is a full forward that also fills the cache; the block's later steps recompute only the
    # window (cache_window) against it.
    cache: str = "none"
    # Policies that revise committed tokens (see check_revising and docs/generation.md). LLaDA
    # 2.1's token-to-token editing: None is off, else in [0, 1); max_edit_steps >= 0 edit-only
    # steps may follow each block's own steps.
    edit_threshold: float | None = None
    max_edit_steps: int = 16
    # ReMDM-loop with confidence remasking: 0 is off, else at most this many committed tokens are
    # remasked per step of the window [remdm_start, remdm_end) (fractions of a block's steps).
    remdm_remask: int = 0
    remdm_start: float = 0.45
    remdm_end: float = 0.95
    # Canvas positions that neither option ever revises once committed (None: none).
    pinned: list[int] | None = None


@dataclass
class GenerateResult:
    token_ids: list[int]  # the answer; trimmed before the stop id when it finished early
    steps: int  # steps executed
    forward_passes: int  # sequences forwarded (two per step with guidance)
    finished_early: bool
    canvas: list[int] | None = None  # the whole final canvas, prompt included
    edits: int = 0  # committed tokens replaced by edit_threshold
    remasks: int = 0  # committed tokens turned back into masks by remdm
    extra_steps: int = 0  # edit-only steps run after the blocks' own steps (included in steps)


def relative_gap(best: float, runner_up: float, floor: float = 0.0) -> float:
    """How far a decision is from flipping, relative to the size of the values compared (at
    least `floor`, for sums of logs whose rounding error is absolute). An infinite value is exact
    in every implementation, so a decision that involves one cannot flip."""
    if math.isinf(best) or math.isinf(runner_up):
        return math.inf
    scale = max(abs(best), abs(runner_up), floor)
    return (best - runner_up) / scale if scale > 0 else math.inf


def commit_schedule(n_masks: int, steps_per_block: int) -> list[int]:
    """Commits per step: equal shares, the remainder going to the first steps."""
    base, extra = divmod(n_masks, steps_per_block)
    return [base + (1 if i < extra else 0) for i in range(steps_per_block)]


def dream_timesteps(steps_per_block: int) -> torch.Tensor:
    """Dream's noise levels t_0 = 1 > ... > t_S = eps in float32: torch.linspace's own rounding,
    which the engine reproduces."""
    return torch.linspace(1, DREAM_EPS, steps_per_block + 1)


def dream_transfer_count(n: int, timesteps: torch.Tensor, i: int) -> int:
    """Positions Dream unmasks at step i of S out of n candidates, in float32 like Dream."""
    if i == len(timesteps) - 2:
        return n
    t, s = timesteps[i], timesteps[i + 1]
    return int(torch.tensor(float(n), dtype=torch.float32) * (1 - s / t))


def dream_transfer_probability(timesteps: torch.Tensor, i: int) -> float:
    """origin: the chance that a candidate is unmasked at step i, float32 like Dream."""
    if i == len(timesteps) - 2:
        return 1.0
    t, s = timesteps[i], timesteps[i + 1]
    return float(1 - s / t)


def filter_logits(
    logits: torch.Tensor, top_p: float, top_k: int, margins: list[list[float]] | None
) -> torch.Tensor:
    """Dream's nucleus then top-k filters on float32 logits [n, V]; removed entries get the
    float32 minimum. margins[r] gets how close row r's kept/removed boundaries came to a flip."""
    n, vocab = logits.shape
    if 0 < top_p < 1:
        # Stable sort: among equal logits the lower vocabulary index comes first.
        ordered, order = torch.sort(logits, dim=-1, descending=True, stable=True)
        cumulative = torch.cumsum(torch.softmax(ordered, dim=-1), dim=-1)
        remove = cumulative > top_p
        # Shift right by one: an entry goes when the mass before it already passes top_p, so the
        # most likely entry always stays.
        remove[:, 1:] = remove[:, :-1].clone()
        remove[:, 0] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), FLOAT32_MIN)
        if margins is not None:
            # Every prefix mass but the last is compared with top_p.
            gaps = (cumulative[:, :-1].double() - top_p).abs() / cumulative[:, :-1].double().clamp(
                min=top_p
            )
            for r in range(n):
                margins[r].append(float(gaps[r].min()))
    if top_k > 0:
        k = min(top_k, vocab)
        ordered = torch.sort(logits, dim=-1, descending=True).values
        kth = ordered[:, k - 1 : k]
        logits = logits.masked_fill(logits < kth, FLOAT32_MIN)
        if margins is not None and k < vocab:
            for r in range(n):
                above, below = float(ordered[r, k - 1]), float(ordered[r, k])
                # Entries already removed by top_p tie at the minimum and stay removed.
                if above != FLOAT32_MIN:
                    margins[r].append(relative_gap(above, below))
    return logits


@dataclass
class Choice:
    """Per candidate row: the token, the confidence that ranks it, and the margins of the
    decisions that chose the token (token) and shaped its probabilities (filters)."""

    tokens: torch.Tensor  # [n] long
    confidence: torch.Tensor  # [n] float64
    token_margin: list[float]
    filter_margins: list[list[float]]


def choose_llada_style(
    logits: torch.Tensor, params: GenerateParams, policy: str, step: int, positions: np.ndarray
) -> Choice:
    """LLaDA's token choice: float64 Gumbel-max exp(l) / (-log u)^T (argmax at T = 0); the
    confidence is the softmax probability of the chosen token, or a uniform draw for random."""
    filter_margins: list[list[float]] = [[] for _ in positions]
    if params.top_k > 0 or 0 < params.top_p < 1:
        logits = filter_logits(logits, params.top_p, params.top_k, filter_margins)
    l64 = logits.double()  # [n, V]
    if params.temperature == 0:
        scores = l64
    else:
        vocab_index = np.arange(logits.shape[1], dtype=np.uint64)
        u = uniform_open01(
            params.seed, step, positions[:, None], vocab_index[None, :], STREAM_GUMBEL
        )
        scores = l64.exp() / (-torch.from_numpy(np.log(u))) ** params.temperature
    tokens = scores.argmax(-1)  # first index on ties
    if policy == "random":
        confidence = torch.from_numpy(
            uniform_open01(params.seed, step, positions, 0, STREAM_REMASK)
        )
    else:
        confidence = torch.softmax(l64, -1).gather(-1, tokens[:, None])[:, 0]
    top2 = scores.topk(2, dim=-1).values.tolist()
    return Choice(tokens, confidence, [relative_gap(a, b) for a, b in top2], filter_margins)


def choose_dream_style(
    logits: torch.Tensor, params: GenerateParams, policy: str, step: int, positions: np.ndarray
) -> Choice:
    """Dream's token choice: temperature, top_p, top_k on float32 logits, float32 softmax, then
    the argmax (T = 0) or a Gumbel-max draw from the categorical; confidence per policy."""
    filter_margins: list[list[float]] = [[] for _ in positions]
    if params.temperature > 0:
        logits = logits / params.temperature
    logits = filter_logits(logits, params.top_p, params.top_k, filter_margins)
    probs = torch.softmax(logits, dim=-1)  # [n, V] float32
    if params.temperature == 0:
        tokens = probs.argmax(-1)  # first index on ties
        top2 = probs.topk(2, dim=-1).values.double().tolist()
        token_margin = [relative_gap(a, b) for a, b in top2]
    else:
        vocab_index = np.arange(logits.shape[1], dtype=np.uint64)
        u = uniform_open01(
            params.seed, step, positions[:, None], vocab_index[None, :], STREAM_CATEGORICAL
        )
        gumbel = torch.from_numpy(-np.log(-np.log(u)))
        p64 = probs.double()
        scores = torch.where(p64 > 0, p64.log() + gumbel, torch.full_like(p64, -math.inf))
        tokens = scores.argmax(-1)
        top2 = scores.topk(2, dim=-1).values.tolist()
        token_margin = [relative_gap(a, b, floor=1.0) for a, b in top2]
    if policy in ("maskgit_plus", "origin"):
        confidence = probs.gather(-1, tokens[:, None])[:, 0].double()
    elif policy == "topk_margin":
        top2 = probs.topk(2, dim=-1).values
        confidence = (top2[:, 0] - top2[:, 1]).double()  # the difference rounds in float32
    else:  # entropy: the negative entropy, summed in float64
        p64 = probs.double()
        confidence = (p64 * (p64 + 1e-10).log()).sum(-1)
    return Choice(tokens, confidence, token_margin, filter_margins)


def rank(values: torch.Tensor) -> list[int]:
    """Row indices by descending value; equal values keep the lower index (position) first."""
    return torch.sort(-values, stable=True).indices.tolist()


def top_k_boundary(values: torch.Tensor, order: list[int], k: int) -> list[float]:
    """Margin of a top-k cut, when the cut separates two candidates."""
    if 0 < k < len(order):
        return [relative_gap(float(values[order[k - 1]]), float(values[order[k]]))]
    return []


def select_factor(confidence: torch.Tensor, factor: float) -> tuple[list[int], list[float]]:
    """Fast-dLLM's dynamic count: the j-th most confident (0-based) must reach 1 - factor/(j + 2)
    for the scan to go on; returns the chosen rows and the margins of every comparison made."""
    order = rank(confidence)
    ordered = [float(confidence[r]) for r in order]
    n = len(order)
    thresholds = [-1.0] + [1 - factor / (j + 2) for j in range(1, n)]
    margins = []
    top_i = n - 1  # the scan's last index when it never stops early
    for j in range(n):
        margins.append(relative_gap(max(ordered[j], thresholds[j]), min(ordered[j], thresholds[j])))
        if ordered[j] < thresholds[j]:
            top_i = j
            break
    if top_i == 0 or top_i == n - 1:
        top_i += 1
    margins += top_k_boundary(confidence, order, top_i)
    return order[:top_i], margins


def guided_logits(
    model: Transformer,
    x: torch.Tensor,
    params: GenerateParams,
    prompt_index,
    kv: list | None = None,
    window: tuple[int, int] | None = None,
):
    """The float32 prediction for every canvas position [T, V] (for the window's positions only
    when there is one) and the sequences forwarded. With guidance the unconditional canvas is a
    second sequence of the batch, so it has a cache of its own."""
    if params.cfg_scale > 0:
        un_x = x.clone()
        un_x[prompt_index] = model.config.mask_token_id
        cond, un = model.predict(torch.cat([x, un_x]), kv=kv, window=window)
        return un + (params.cfg_scale + 1) * (cond - un), 2
    return model.predict(x, kv=kv, window=window)[0], 1


CACHE_MODES = ("none", "prefix", "dual")


def cache_window(cache: str, block_start: int, block_end: int, canvas_length: int):
    """The positions a cached step predicts: prefix recomputes the block and everything after it,
    dual only the block."""
    return (block_start, canvas_length if cache == "prefix" else block_end)


# Policies that revise committed tokens: LLaDA 2.1's token-to-token editing (edit_threshold, as
# SGLang's JointThreshold applies it) and ReMDM-loop with confidence remasking (remdm_remask).
# docs/generation.md, "Policies that revise committed tokens", states the same rules.

ADAPTIVE = ("threshold", "factor")
FIXED_COUNT = ("low_confidence", "random", "maskgit_plus", "topk_margin", "entropy")


def check_revising(p: GenerateParams, policy: str, canvas_length: int) -> None:
    """Refuses the revising options' invalid values and combinations (ValueError naming the
    parameter): edit_threshold None or in [0, 1); max_edit_steps an int >= 0; remdm_remask an
    int >= 0 and, when > 0, 0 <= remdm_start < remdm_end <= 1 and a policy that ranks its
    candidates (every policy but origin); not both options at once; pinned positions inside the
    canvas."""
    editing = p.edit_threshold is not None
    if editing and not 0 <= p.edit_threshold < 1:
        raise ValueError("edit_threshold must be in [0, 1)")
    if isinstance(p.max_edit_steps, bool) or not isinstance(p.max_edit_steps, int):
        raise ValueError("max_edit_steps must be an integer")
    if p.max_edit_steps < 0:
        raise ValueError("max_edit_steps must be >= 0")
    if isinstance(p.remdm_remask, bool) or not isinstance(p.remdm_remask, int):
        raise ValueError("remdm_remask must be an integer")
    if p.remdm_remask < 0:
        raise ValueError("remdm_remask must be >= 0")
    if p.remdm_remask > 0:
        if not 0 <= p.remdm_start < p.remdm_end <= 1:
            raise ValueError("remdm_start and remdm_end must satisfy 0 <= start < end <= 1")
        if policy == "origin":
            raise ValueError("remdm_remask needs a policy that ranks candidates, not origin")
        if editing:
            raise ValueError("edit_threshold and remdm_remask cannot be combined")
    for q in p.pinned or ():
        if isinstance(q, bool) or not isinstance(q, int) or not 0 <= q < canvas_length:
            raise ValueError(f"pinned position {q!r} is outside the canvas")


def remdm_window(p: GenerateParams, base: int) -> tuple[int, int]:
    """The block steps [w0, w1) that remask, out of `base` (the block's steps for the fixed-count
    policies, its masks at the block's start for threshold and factor): w = floor(f * base + 0.5)
    in float64 for f = remdm_start and remdm_end, and w1 at most base - 1 so that the block's
    last step never remasks. Empty (w0 >= w1) is allowed: nothing is remasked."""
    if p.remdm_remask <= 0:
        return 0, 0
    w0 = math.floor(p.remdm_start * base + 0.5)
    w1 = min(math.floor(p.remdm_end * base + 0.5), base - 1)
    return (w0, w1) if w0 < w1 else (0, 0)


def token_probabilities(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """float64 softmax probability of `tokens` [n] under float32 rows `logits` [n, V]: the rows
    after guidance and stop suppression, before temperature and the top_p/top_k filters."""
    return torch.softmax(logits.double(), -1).gather(-1, tokens[:, None])[:, 0]


def generate(
    model: Transformer,
    prompt_ids: list[int],
    params: GenerateParams | None = None,
    *,
    margins: list[float] | None = None,
    trace: list[dict] | None = None,
    **settings,
) -> GenerateResult:
    """Runs one generation; `params` or the same fields as keywords. `margins` gets the relative
    gap of every decision that a rounding difference could flip and that would change the result:
    each committed token's choice, each filter boundary of a row whose probabilities rank it, each
    top-k cut, each threshold comparison. `trace` gets one dict per step: the global step, the
    block, whether it was an edit-only step (`extra`) or a remasking step (`window`), and the
    sorted (position, token) pairs it committed and replaced and the positions it remasked.

    Revising committed tokens (off by default; the loop is then exactly the one without them).
    A token is *revisable* when its position is in the current block, held a real token at the
    start of the step (so tokens committed in the same step are not), was not given (prompt) and
    is not pinned. Each step: one forward; the policy commits masks; then

    - edit_threshold (LLaDA 2.1 / SGLang JointThreshold T2T): every revisable position whose
      prediction (argmax of its float32 logits after guidance and stop suppression, first index
      on ties) differs from its token, is not the mask token, and has float64 softmax probability
      strictly above edit_threshold takes the prediction. After the block's own steps (the fixed
      policies' steps per block; threshold and factor until the block has no masks), if the block
      has no masks, edit-only steps follow: each is a step (one forward, no commits) that only
      edits; the block ends after an edit-only step that edits nothing, or after max_edit_steps
      of them.
    - remdm_remask (ReMDM-loop with ReMDM-conf): in the block steps remdm_window gives, the step
      first computes r = min(remdm_remask, revisable tokens), commits min(r, candidates) masks
      (the policy's ranking, its own count replaced), then remasks the r revisable tokens with
      the lowest probability at the step that committed them (token_probabilities of the guided
      logits before stop suppression; lowest position first on ties). Outside the window the fixed policies spread the block's masks
      over its steps outside the window: LLaDA's count is ceil(block masks / steps left outside
      the window, this one included), Dream's int(n (1 - s/t)) on a timestep table of that many
      steps; threshold and factor commit as usual. The block's last step is never in the window,
      so the block ends without masks as it does without remasking."""
    p = params or GenerateParams(**settings)
    policy = POLICY_ALIASES.get(p.remasking, p.remasking)
    if policy not in LLADA_STYLE + DREAM_STYLE:
        raise ValueError(f"unsupported remasking {p.remasking!r}")
    if p.cache not in CACHE_MODES:
        raise ValueError(f"unsupported cache {p.cache!r}")
    if p.gen_length % p.block_length:
        raise ValueError("gen_length must be a multiple of block_length")
    num_blocks = p.gen_length // p.block_length
    if p.steps % num_blocks:
        raise ValueError("steps must be a multiple of the number of blocks")
    steps_per_block = p.steps // num_blocks
    cfg = model.config
    mask_id = cfg.mask_token_id
    stop_ids = [cfg.eos_token_id] if p.stop_ids is None else list(p.stop_ids)
    prompt_len = len(prompt_ids)
    x = torch.tensor([list(prompt_ids) + [mask_id] * p.gen_length], dtype=torch.long)  # [1, T]
    prompt_index = x != mask_id
    check_revising(p, policy, x.shape[1])
    editing = p.edit_threshold is not None
    remasking = p.remdm_remask > 0
    # Positions never revised: given (prompt) tokens and pinned positions.
    frozen = prompt_index[0].clone()
    for q in p.pinned or ():
        frozen[q] = True
    committed_probability: dict[int, float] = {}  # remdm: position -> p(token) at its commit
    choose = choose_llada_style if policy in LLADA_STYLE else choose_dream_style
    # Rows whose confidence ranks them among the candidates: a filter flip anywhere moves them.
    ranks_all_rows = policy not in ("random", "origin")
    # Whether a flip of a row's token choice can jump its confidence, so that the choice matters
    # for rows left uncommitted too: a sampled token's probability is not the runner-up's (at
    # T = 0 the top two are nearly equal when they nearly tie), and a stop id's confidence is -inf.
    probability_of_token = policy in ("low_confidence", "threshold", "factor", "maskgit_plus")
    token_sets_confidence = (probability_of_token and p.temperature > 0) or (
        p.confidence_eos_eot_inf and policy != "origin"
    )
    step = 0
    forward_passes = 0
    answer_end = None
    n_edits = n_remasks = n_extra = 0

    for b in range(num_blocks):
        block_start = prompt_len + b * p.block_length
        block_end = block_start + p.block_length

        def block_masks() -> int:
            return int((x[0, block_start:block_end] == mask_id).sum())

        if policy in ("low_confidence", "random"):
            n_masks = block_masks()
            schedule = commit_schedule(n_masks, steps_per_block)
            max_steps = steps_per_block
        elif policy in DREAM_STYLE:
            timesteps = dream_timesteps(steps_per_block)
            max_steps = steps_per_block
        else:
            max_steps = ADAPTIVE_STEP_CAP * p.block_length
        w0, w1 = remdm_window(p, block_masks() if policy in ADAPTIVE else steps_per_block)
        if policy in DREAM_STYLE and w1 > w0:
            outside_timesteps = dream_timesteps(steps_per_block - (w1 - w0))
        i = 0
        extra_in_block = 0
        last_extra_edits = 0
        while True:
            own = i < max_steps and not (policy in ADAPTIVE and block_masks() == 0)
            extra = not own
            if extra and (
                not editing
                or i == 0
                or block_masks() > 0
                or extra_in_block >= p.max_edit_steps
                or (extra_in_block > 0 and last_extra_edits == 0)
            ):
                break
            if p.cache == "none":
                logits, passes = guided_logits(model, x, p, prompt_index)
            elif i == 0:  # the block's refresh: a full forward that fills the cache
                kv: list = []
                logits, passes = guided_logits(model, x, p, prompt_index, kv=kv)
            else:
                window = cache_window(p.cache, block_start, block_end, x.shape[1])
                logits = torch.full(
                    (x.shape[1], model.head.shape[0]), math.nan, dtype=torch.float32
                )  # positions outside the window are never read
                logits[window[0] : window[1]], passes = guided_logits(
                    model, x, p, prompt_index, kv=kv, window=window
                )
            forward_passes += passes
            # remdm ranks committed tokens by the model's own probability of them (the API's
            # log-probability: guided logits, before stop suppression).
            model_logits = logits.clone() if remasking else logits
            if p.logits_eos_inf:
                logits[:, stop_ids] = -math.inf
            # Revisable positions: in the block, a real token at the step's start, not frozen.
            revisable = (
                torch.nonzero(
                    (x[0, block_start:block_end] != mask_id) & ~frozen[block_start:block_end]
                )[:, 0]
                + block_start
            )
            in_window = own and w0 <= i < w1
            n_remask = min(p.remdm_remask, len(revisable)) if in_window else 0
            chosen: list[int] = []
            if own:
                candidates = torch.nonzero(x[0, :block_end] == mask_id)[:, 0]  # ascending
                if p.cache != "none" and i > 0:
                    # A window has predictions for its own positions only: masks an earlier
                    # block left (a model that keeps predicting the mask token) wait for a
                    # refresh.
                    candidates = candidates[candidates >= block_start]
                positions = candidates.numpy().astype(np.uint64)
                choice = choose(logits[candidates], p, policy, step, positions)
                confidence = choice.confidence.clone()
                if p.confidence_eos_eot_inf:
                    is_stop = torch.isin(choice.tokens, torch.tensor(stop_ids))
                    confidence[is_stop] = -math.inf
                n = len(positions)
                decided: list[float] = []  # margins of the selection itself
                if remasking and policy in FIXED_COUNT:
                    # The count of commits: r in the window, the masks spread over the steps
                    # outside it otherwise.
                    if in_window:
                        k = min(n_remask, n)
                    elif policy in LLADA_STYLE:
                        left = steps_per_block - i - max(0, w1 - max(i, w0))
                        k = -(-block_masks() // left)
                    elif w1 > w0:
                        k = dream_transfer_count(n, outside_timesteps, i - max(0, min(i, w1) - w0))
                    else:
                        k = dream_transfer_count(n, timesteps, i)
                elif policy in ("low_confidence", "random"):
                    k = schedule[i]
                elif policy in DREAM_STYLE and policy != "origin":
                    k = dream_transfer_count(n, timesteps, i)
                if in_window and policy in ADAPTIVE:  # r most confident, not the policy's rule
                    k = min(n_remask, n)
                    order = rank(confidence)
                    chosen = order[:k]
                    decided += top_k_boundary(confidence, order, k)
                elif policy in ("low_confidence", "random"):
                    order = rank(confidence)
                    chosen = order[:k]
                    decided += top_k_boundary(confidence, order, k)
                elif policy == "origin":
                    u = uniform_open01(p.seed, step, positions, 0, STREAM_ORIGIN)
                    chosen = np.nonzero(u < dream_transfer_probability(timesteps, i))[0].tolist()
                elif policy in DREAM_STYLE:
                    if p.alg_temp > 0:
                        # Gumbel-top-k: k draws without replacement from softmax(confidence /
                        # alg_temp).
                        u = uniform_open01(p.seed, step, positions, 0, STREAM_ALG_TEMP)
                        score = confidence / p.alg_temp + torch.from_numpy(-np.log(-np.log(u)))
                        order = rank(score)
                        chosen = order[:k]
                        if 0 < k < n:
                            a, c = float(score[order[k - 1]]), float(score[order[k]])
                            decided.append(relative_gap(a, c, floor=1.0))
                    else:
                        order = rank(confidence)
                        chosen = order[:k]
                        decided += top_k_boundary(confidence, order, k)
                elif policy == "threshold":
                    tau = p.confidence_threshold
                    order = rank(confidence)
                    chosen = [order[0]] + [r for r in order[1:] if confidence[r] >= tau]
                    for r in order[1:]:
                        c = float(confidence[r])
                        decided.append(relative_gap(max(c, tau), min(c, tau)))
                    if n > 1 and confidence[order[1]] < tau:
                        decided += top_k_boundary(confidence, order, 1)
                else:  # factor
                    chosen, decided = select_factor(confidence, p.factor)
                if margins is not None:
                    margins += decided
                    chosen_set = set(chosen)
                    for r in range(n):
                        if r in chosen_set or token_sets_confidence:
                            margins.append(choice.token_margin[r])
                        if r in chosen_set or ranks_all_rows:
                            margins += choice.filter_margins[r]
                if chosen:
                    rows = torch.tensor(chosen, dtype=torch.long)
                    x[0, candidates[rows]] = choice.tokens[rows]
                    if remasking:
                        where = candidates[rows]
                        probability = token_probabilities(
                            model_logits[where], choice.tokens[rows]
                        )
                        committed_probability.update(zip(where.tolist(), probability.tolist()))
                committed = sorted((int(candidates[r]), int(choice.tokens[r])) for r in chosen)
            else:
                committed = []
            replaced: list[tuple[int, int]] = []
            if editing and len(revisable):
                edit_rows = logits[revisable]
                predicted = edit_rows.argmax(-1)  # first index on ties
                probability = token_probabilities(edit_rows, predicted)
                tau = p.edit_threshold
                for j, q in enumerate(revisable.tolist()):
                    token, prob = int(predicted[j]), float(probability[j])
                    differs = token != int(x[0, q]) and token != mask_id
                    if margins is not None:
                        if differs:
                            margins.append(relative_gap(max(prob, tau), min(prob, tau)))
                        if prob > tau:  # a flip of the argmax could start or stop an edit
                            top2 = edit_rows[j].double().topk(2).values.tolist()
                            margins.append(relative_gap(top2[0], top2[1]))
                    if differs and prob > tau:
                        replaced.append((q, token))
                for q, token in replaced:
                    x[0, q] = token
            remasked: list[int] = []
            if n_remask > 0:
                ordered = sorted(revisable.tolist(), key=lambda q: (committed_probability[q], q))
                remasked = sorted(ordered[:n_remask])
                if margins is not None and n_remask < len(ordered):
                    low = committed_probability[ordered[n_remask - 1]]
                    high = committed_probability[ordered[n_remask]]
                    margins.append(relative_gap(high, low))
                for q in remasked:
                    x[0, q] = mask_id
                    del committed_probability[q]
            n_edits += len(replaced)
            n_remasks += len(remasked)
            if extra:
                extra_in_block += 1
                n_extra += 1
                last_extra_edits = len(replaced)
            if trace is not None:
                trace.append(
                    dict(
                        step=step,
                        block=b,
                        extra=extra,
                        window=in_window,
                        committed=[list(c) for c in committed],
                        replaced=[list(c) for c in replaced],
                        remasked=remasked,
                    )
                )
            step += 1
            i += 1
            if p.early_stop:
                answer_end = early_stop_end(x[0, prompt_len:].tolist(), stop_ids, mask_id)
                if answer_end is not None:
                    break
        if answer_end is not None:
            break

    canvas = x[0].tolist()
    answer = canvas[prompt_len:]
    if answer_end is not None:
        answer = answer[:answer_end]
    return GenerateResult(
        answer, step, forward_passes, answer_end is not None, canvas, n_edits, n_remasks, n_extra
    )


def early_stop_end(answer: list[int], stop_ids: list[int], mask_id: int) -> int | None:
    """Where the answer ends, once its first stop id has no mask before it; None until then."""
    for e, token in enumerate(answer):
        if token == mask_id:
            return None
        if token in stop_ids:
            return e
    return None
