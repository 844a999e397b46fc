#!/usr/bin/env python3
"""Trains sculpt-code-mini, a small LLaDA (masked diffusion LM), on the CPU.

`python3 tools/train/train.py [--resume]` reads tools/train/config.json and build/train-data/
(written by prepare_data.py) and writes build/train-run/: log.jsonl, loss.png and checkpoint.pt.
Every checkpoint is also exported to models/sculpt-code-mini/, so a usable model exists whenever
the run stops. `--resume` continues bit for bit from checkpoint.pt: weights, optimizer, step, the
random generator that draws windows and masks, and the elapsed time all come back.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from export import export_model  # noqa: E402


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    """LLaDA's "llama" block: pre-norm, NeoX RoPE, bidirectional attention, SwiGLU."""

    def __init__(self, cfg: dict):
        super().__init__()
        d, hidden = cfg["d_model"], cfg["mlp_hidden_size"]
        self.n_heads = cfg["n_heads"]
        self.attn_norm = RMSNorm(d, cfg["rms_norm_eps"])
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_norm = RMSNorm(d, cfg["rms_norm_eps"])
        self.ff_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.ff_out = nn.Linear(hidden, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        hd = d // self.n_heads
        h = self.attn_norm(x)
        q, k, v = (
            proj(h).view(B, T, self.n_heads, hd).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )  # [B, heads, T, hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        x = x + self.attn_out(a.transpose(1, 2).reshape(B, T, d))
        g = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(g)) * self.up_proj(g))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class LLaDA(nn.Module):
    """Parameter names are exactly the HF LLaDA checkpoint's, so state_dict() is the export."""

    def __init__(self, cfg: dict, vocab_size: int):
        super().__init__()
        assert cfg["weight_tying"], "the head is wte; an untied head is not implemented here"
        self.model = nn.Module()
        self.model.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab_size, cfg["d_model"]),
                blocks=nn.ModuleList(Block(cfg) for _ in range(cfg["n_layers"])),
                ln_f=RMSNorm(cfg["d_model"], cfg["rms_norm_eps"]),
            )
        )
        hd = cfg["d_model"] // cfg["n_heads"]
        inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        angle = torch.outer(torch.arange(cfg["max_sequence_length"], dtype=torch.float32), inv_freq)
        angle = torch.cat([angle, angle], dim=-1)  # [T, hd], NeoX halves
        # Not persistent: the tables are derived from the config and must not reach the export.
        self.register_buffer("cos", angle.cos(), persistent=False)
        self.register_buffer("sin", angle.sin(), persistent=False)
        for name, p in self.named_parameters():
            if not name.endswith("norm.weight") and not name.endswith("ln_f.weight"):
                nn.init.normal_(p, mean=0.0, std=cfg["init_std"])

    def forward(self, ids: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for every position, or only where `rows` (a bool mask like ids) is set: the
        loss needs the masked positions only, and the head is a quarter of the step's FLOPs."""
        t = self.model.transformer
        T = ids.shape[1]
        cos, sin = self.cos[:T], self.sin[:T]
        x = t.wte(ids)
        for block in t.blocks:
            x = block(x, cos, sin)
        h = t.ln_f(x)
        return F.linear(h if rows is None else h[rows], t.wte.weight)


def make_batch(
    data: torch.Tensor,
    tc: dict,
    eos_id: int,
    gen: torch.Generator,
    line_starts: torch.Tensor | None = None,
    line_start_prob: float = 0.0,
    bos_id: int | None = None,
) -> torch.Tensor:
    """Random windows of the token stream; a few are cut at a random length and padded with EOS
    (LLaDA's variable-length trick), so the model learns that EOS fills the rest of a canvas.

    With `line_start_prob`, that share of windows begins at the start of a column-0 line (one of
    `line_starts`), as prompts do. On their own these did not teach the model to read its first
    token as a line start (it still answered `def f(n):` at method depth after 400 steps);
    with `bos_id` they teach what usually follows the start of a text.

    With `bos_id`, every window starts with BOS, as every prompt does once the tokenizer adds it:
    with rotary positions only, a model cannot tell that a token has nothing on its left, and it
    read a prompt's first token poorly (a newline before `def f(n):` changed its answer); BOS
    gives the first token a left neighbour that says "the text starts here"."""
    B, T = tc["batch_size"], tc["seq_len"]
    starts = torch.randint(0, len(data) - T, (B,), generator=gen)
    if line_starts is not None and line_start_prob > 0:
        aligned = torch.rand(B, generator=gen) < line_start_prob
        picks = line_starts[torch.randint(0, len(line_starts), (B,), generator=gen)]
        starts = torch.where(aligned, picks, starts)
    x = torch.stack([data[s : s + T] for s in starts.tolist()])
    if bos_id is not None:
        x = torch.cat([torch.full((B, 1), bos_id, dtype=x.dtype), x[:, :-1]], dim=1)
    cut = torch.rand(B, generator=gen) < tc["random_length_prob"]
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    pad = cut[:, None] & (torch.arange(T)[None, :] >= lengths[:, None])
    return x.masked_fill(pad, eos_id)


def column0_line_starts(data: torch.Tensor, vocab: dict[str, int], T: int) -> torch.Tensor:
    """Positions whose previous token ends in a newline, i.e. the first token of a line that has
    no indentation (byte-level BPE keeps indentation with the newline before it, and the
    pre-tokenizer never joins a newline to the code after it)."""
    ends_in_newline = torch.zeros(max(vocab.values()) + 1, dtype=torch.bool)
    for token, i in vocab.items():
        ends_in_newline[i] = token.endswith("\u010a")  # byte-level BPE's spelling of "\n"
    positions = torch.nonzero(ends_in_newline[data[:-1]]).flatten() + 1
    return positions[positions < len(data) - T]


def phase_at(step: int, tc: dict) -> dict:
    """The schedule entry in force at `step`: the first phase, or the last restart reached."""
    phases = [dict(at_step=0, lr=tc["lr"], warmup_steps=tc["warmup_steps"],
                   max_steps=tc["max_steps"])] + tc.get("restarts", [])
    return [p for p in phases if p["at_step"] <= step][-1]


def diffusion_loss(
    model: nn.Module,
    x: torch.Tensor,
    mask_id: int,
    tc: dict,
    gen: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """LLaDA's pre-training loss: mask each token with probability t ~ U(eps, 1), score masked
    positions weighted by 1/t, normalise by all tokens of the batch.

    With `stratified_t` the batch's t values are one draw per stratum [i/B, (i+1)/B) in random
    order: each sequence's t is still U(eps, 1), but a batch never lacks low or high ratios, which
    tames the variance that the 1/t weight gives a small batch."""
    B, T = x.shape
    eps = tc["mask_eps"]
    u = torch.rand(B, generator=gen)
    if tc.get("stratified_t", False):
        u = (torch.randperm(B, generator=gen) + u) / B
    t = (1 - eps) * u + eps
    p_mask = t[:, None].expand(B, T)
    masked = torch.rand(B, T, generator=gen) < p_mask
    x, masked, p_mask = x.to(device), masked.to(device), p_mask.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.get("bf16", False)):
        logits = model(x.masked_fill(masked, mask_id), rows=masked)
    ce = F.cross_entropy(logits.float(), x[masked], reduction="none")
    return (ce / p_mask[masked]).sum() / (B * T)


def warmup_cosine(step: int, start: int, warmup: int, end: int, peak: float, floor: float) -> float:
    if step - start < warmup:
        return peak * (step - start + 1) / warmup
    progress = min(1.0, (step - start - warmup) / max(1, end - start - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def lr_at(step: int, tc: dict) -> float:
    """Warm-up then cosine to `min_lr_ratio`; each entry of `restarts` (a warm restart: at_step,
    lr, warmup_steps, max_steps, and optionally the data settings line_start_prob and bos_first)
    starts a new warm-up + cosine once the run reaches its step, so a finished run can be
    continued and its history stays reproducible from the one config."""
    phase = phase_at(step, tc)
    return warmup_cosine(step, phase["at_step"], phase["warmup_steps"], phase["max_steps"],
                         phase["lr"], tc["min_lr_ratio"])


@torch.no_grad()
def heldout_loss(
    model: nn.Module, data: torch.Tensor, tc: dict, mask_id: int, eos_id: int, device: torch.device
):
    """The same windows and masks at every call (own seed), so the values are comparable."""
    gen = torch.Generator().manual_seed(0)
    model.eval()
    losses = []
    for _ in range(4):
        x = make_batch(data, dict(tc, random_length_prob=0.0), eos_id, gen)
        losses.append(diffusion_loss(model, x, mask_id, tc, gen, device).item())
    model.train()
    return float(np.mean(losses))


def plot(log_path: pathlib.Path, png_path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [(r["tokens"], r["loss"]) for r in rows if "loss" in r]
    held = [(r["tokens"], r["heldout_loss"]) for r in rows if "heldout_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if train:
        ax.plot(*zip(*train), label="train (masked-diffusion loss)", lw=1)
    if held:
        ax.plot(*zip(*held), "o-", label="held-out", lw=1.5)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("loss (nats / token)")
    ax.set_title("sculpt-code-mini")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=pathlib.Path, default=pathlib.Path("tools/train/config.json"))
    ap.add_argument("--data", type=pathlib.Path, default=pathlib.Path("build/train-data"))
    ap.add_argument("--run", type=pathlib.Path, default=pathlib.Path("build/train-run"))
    ap.add_argument("--export", type=pathlib.Path, default=pathlib.Path("models/sculpt-code-mini"))
    ap.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    ap.add_argument("--max-steps", type=int, help="stop after this step (benchmarking)")
    ap.add_argument(
        "--init-from",
        type=pathlib.Path,
        help="start from an exported model's weights (model.safetensors) at --init-step, with a "
        "fresh optimizer: continues a run whose checkpoint.pt is gone",
    )
    ap.add_argument("--init-step", type=int, default=0, help="the step --init-from starts at")
    args = ap.parse_args(argv)

    cfg = json.loads(args.config.read_text())
    mc, tc = cfg["model"], cfg["train"]
    torch.set_num_threads(tc["num_threads"])
    tok_dir = args.data / "tokenizer"
    tok_cfg = json.loads((tok_dir / "tokenizer_config.json").read_text())
    ids = {v["content"]: int(k) for k, v in tok_cfg["added_tokens_decoder"].items()}
    mask_id, eos_id = ids[tok_cfg["mask_token"]], ids[tok_cfg["eos_token"]]
    bos_id = ids[tok_cfg["bos_token"]]
    vocab = json.loads((tok_dir / "tokenizer.json").read_text())["model"]["vocab"]
    vocab_size = max(len(vocab), max(ids.values()) + 1)
    train_data = torch.from_numpy(
        np.fromfile(args.data / "train.bin", dtype=np.uint16).astype(np.int64)
    )
    held_data = torch.from_numpy(
        np.fromfile(args.data / "heldout.bin", dtype=np.uint16).astype(np.int64)
    )
    line_starts = column0_line_starts(train_data, vocab, tc["seq_len"])

    # The same script trains on a GPU when there is one; batches and masks are always drawn on
    # the CPU, so a run's data order does not depend on the device.
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(tc["seed"])
    model = LLaDA(mc, vocab_size).to(device)
    # Norm gains and embeddings are not decayed, as in LLaDA/OLMo; the matrices are.
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "wte" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "wte" in n]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": tc["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=tc["lr"],
        betas=tuple(tc["betas"]),
    )
    gen = torch.Generator().manual_seed(tc["seed"])
    step, elapsed = 0, 0.0
    args.run.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path, png_path = (
        args.run / n for n in ("checkpoint.pt", "log.jsonl", "loss.png")
    )
    if args.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["data_rng"])
        torch.set_rng_state(ckpt["torch_rng"].cpu())
        step, elapsed = ckpt["step"], ckpt["elapsed_s"]
        # Lines written after the checkpoint describe steps that will be run again.
        rows = [l for l in log_path.read_text().splitlines() if json.loads(l)["step"] <= step]
        log_path.write_text("".join(r + "\n" for r in rows))
        print(f"resumed at step {step} ({elapsed:.0f} s trained)", flush=True)
    elif args.init_from:
        from safetensors.torch import load_file

        weights = load_file(str(args.init_from / "model.safetensors"))
        model.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()})
        step = args.init_step
        # A generator of its own for the continuation, so its windows and masks are not the ones
        # the run drew from step 0.
        gen.manual_seed(tc["seed"] + step)
        log_path.write_text("")
        print(f"initialised from {args.init_from} at step {step}, fresh optimizer", flush=True)
    else:
        log_path.write_text("")
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{n_params} parameters, vocab {vocab_size}, {len(train_data)} training tokens, "
        f"device {device}",
        flush=True,
    )

    tokens_per_step = tc["batch_size"] * tc["seq_len"]
    final_step = max([tc["max_steps"]] + [r["max_steps"] for r in tc.get("restarts", [])])
    max_steps = min(final_step, args.max_steps or final_step)
    log = open(log_path, "a")

    def checkpoint() -> None:
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        held = heldout_loss(model, held_data, tc, mask_id, eos_id, device)
        log.write(
            json.dumps(dict(step=step, tokens=step * tokens_per_step, heldout_loss=held)) + "\n"
        )
        log.flush()
        ckpt = dict(
            model=state,
            optimizer=opt.state_dict(),
            step=step,
            elapsed_s=elapsed,
            data_rng=gen.get_state(),
            torch_rng=torch.get_rng_state(),
            config=cfg,
        )
        torch.save(ckpt, str(ckpt_path) + ".tmp")
        pathlib.Path(str(ckpt_path) + ".tmp").replace(ckpt_path)
        plot(log_path, png_path)
        export_model(state, mc, tok_dir, args.export, png_path, log_path)
        print(f"checkpoint + export at step {step}, held-out loss {held:.3f}", flush=True)

    last_ckpt = time.monotonic()
    window_start, window_loss, window_steps = time.monotonic(), 0.0, 0
    while step < max_steps and elapsed < tc["max_time_s"]:
        t0 = time.monotonic()
        lr = lr_at(step, tc)
        for group in opt.param_groups:
            group["lr"] = lr
        phase = phase_at(step, tc)
        x = make_batch(
            train_data, tc, eos_id, gen, line_starts, phase.get("line_start_prob", 0),
            bos_id if phase.get("bos_first", False) else None,
        )
        loss = diffusion_loss(model, x, mask_id, tc, gen, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
        step += 1
        elapsed += time.monotonic() - t0
        window_loss += loss.item()
        window_steps += 1
        if step % tc["log_every"] == 0:
            now = time.monotonic()
            row = dict(
                step=step,
                tokens=step * tokens_per_step,
                loss=window_loss / window_steps,
                lr=lr,
                tokens_per_s=window_steps * tokens_per_step / (now - window_start),
                elapsed_s=elapsed,
            )
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row), flush=True)
            window_start, window_loss, window_steps = now, 0.0, 0
        if time.monotonic() - last_ckpt >= tc["checkpoint_every_s"]:
            started = time.monotonic()
            checkpoint()
            last_ckpt = time.monotonic()
            # The checkpoint's time is not training throughput: shift the window past it.
            window_start += last_ckpt - started
    checkpoint()
    print(f"done at step {step}, {elapsed:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
