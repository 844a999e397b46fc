#!/usr/bin/env python3
"""Writes the golden fixtures in tests/golden/data/ from the PyTorch fp32 LLaDA reference.

    python tools/gen_golden.py            # rewrite the fixtures
    python tools/gen_golden.py --check    # recompute and compare with the committed fixtures

Fixtures: rng.json (Philox draws), forward.json + forward_<model>.safetensors (per-layer
activations), generate.json (token ids of full LLaDA generate() runs and how close each came to a
tie), policies.json (every remasking policy, filter and stop option on tiny LLaDA and Dream models,
plus exact references for what is random by design), cache.json (the prefix and dual KV caches
under the policies users combine them with, on both families), revising.json (the options that
revise committed tokens, edit_threshold and remdm_remask, step by step on both families).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import llada_reference as ref  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent

# The C++ engine sums in a different order than torch, so fp32 logits differ by ~1e-6 relative. A
# fixture whose argmax or top-k boundary is closer than this would test rounding noise, not
# semantics; such a case moves on to the next prompt seed.
MIN_MARGIN = 1e-4
MAX_PROMPT_ATTEMPTS = 50

# Forward fixtures: one input per model, with some mask tokens, as on a real canvas.
FORWARD_CASES = [
    dict(model="tiny-llada", length=23, n_masks=7, seed=11),
    dict(model="tiny-llada-gqa", length=37, n_masks=12, seed=12),
    dict(model="tiny-dream", length=29, n_masks=9, seed=13),
]

# generate() fixtures. prompt_seed is where the prompt search starts (see MIN_MARGIN); a case
# whose first prompt came too close to a tie says so in its "note".
# fmt: off
GENERATE_CASES = [
    dict(name="low_conf_1block", model="tiny-llada", prompt_len=9, prompt_seed=100,
         gen_length=32, steps=32, block_length=32),
    dict(name="low_conf_2blocks", model="tiny-llada", prompt_len=8, prompt_seed=200,
         gen_length=32, steps=16, block_length=16),
    dict(name="low_conf_4blocks", model="tiny-llada", prompt_len=11, prompt_seed=300,
         gen_length=32, steps=32, block_length=8),
    dict(name="random_temp0", model="tiny-llada", prompt_len=7, prompt_seed=400,
         gen_length=24, steps=24, block_length=12, remasking="random", seed=7),
    dict(name="low_conf_cfg1", model="tiny-llada", prompt_len=10, prompt_seed=500,
         gen_length=16, steps=16, block_length=16, cfg_scale=1.0),
    dict(name="low_conf_temp0.8", model="tiny-llada", prompt_len=9, prompt_seed=600,
         gen_length=24, steps=12, block_length=24, temperature=0.8, seed=1234),
    dict(name="random_temp1_seed2^40+7", model="tiny-llada", prompt_len=8, prompt_seed=700,
         gen_length=16, steps=8, block_length=8, remasking="random", temperature=1.0,
         seed=2**40 + 7),
    # More steps than masks: the schedule commits 0 tokens on some steps.
    dict(name="steps_gt_block", model="tiny-llada", prompt_len=7, prompt_seed=800,
         gen_length=8, steps=16, block_length=8),
    # Fewer steps than tokens: 4 commits per step.
    dict(name="steps_lt_gen", model="tiny-llada", prompt_len=10, prompt_seed=900,
         gen_length=32, steps=8, block_length=16),
    dict(name="gqa_low_conf", model="tiny-llada-gqa", prompt_len=9, prompt_seed=1000,
         gen_length=24, steps=12, block_length=12),
    # BF16 weights are exact in fp32, so an fp32 engine on them must match this too.
    dict(name="bf16_low_conf", model="tiny-llada-bf16", prompt_len=9, prompt_seed=1100,
         gen_length=16, steps=16, block_length=8),
]
# fmt: on

GENERATE_DEFAULTS = dict(remasking="low_confidence", temperature=0.0, cfg_scale=0.0, seed=0)

# policies.json: every policy on both families, at temperature 0, with one block and with two.
# (label, settings, requirements); see REQUIREMENTS. Confidences of the tiny models are mostly well
# below 0.9, so threshold 0.5 and factor must show that they commit in parallel.
POLICY_MATRIX = [
    ("low_conf", dict(remasking="low_confidence"), ()),
    ("random", dict(remasking="random", seed=7), ()),
    ("maskgit_plus", dict(remasking="maskgit_plus"), ()),
    ("topk_margin", dict(remasking="topk_margin"), ()),
    ("entropy", dict(remasking="entropy"), ()),
    ("origin", dict(remasking="origin", seed=11), ()),
    ("threshold0.5", dict(remasking="threshold", confidence_threshold=0.5), ("parallel",)),
    ("threshold0.9", dict(remasking="threshold", confidence_threshold=0.9), ()),
    ("factor1", dict(remasking="factor", factor=1.0), ("parallel",)),
]
POLICY_FAMILIES = {"llada": "tiny-llada", "dream": "tiny-dream"}

# Sampling, filters and guidance, on both families.
# fmt: off
POLICY_EXTRA = [
    ("maskgit_plus_temp0.7_top_p0.9", dict(remasking="maskgit_plus", temperature=0.7, top_p=0.9,
     seed=101, gen_length=24, steps=12, block_length=12)),
    ("entropy_temp1_top_k20", dict(remasking="entropy", temperature=1.0, top_k=20, seed=102,
     gen_length=24, steps=12, block_length=24)),
    ("origin_temp0.5", dict(remasking="origin", temperature=0.5, seed=103, gen_length=24,
     steps=12, block_length=12)),
    ("low_conf_top_k50_temp0.8", dict(remasking="low_confidence", temperature=0.8, top_k=50,
     seed=104, gen_length=24, steps=12, block_length=24)),
    ("maskgit_plus_alg_temp0.5", dict(remasking="maskgit_plus", alg_temp=0.5, seed=105,
     gen_length=24, steps=12, block_length=12)),
    ("threshold_temp0.6", dict(remasking="threshold", temperature=0.6, seed=106)),
    ("maskgit_plus_cfg1", dict(remasking="maskgit_plus", cfg_scale=1.0)),
]

# Stop ids. tiny-dream commits its EOS on some prompts (found by a search over prompt seeds 6000 to
# 7500, prompt length 6 + seed % 7); tiny-llada never did in that search, so its cases stop at
# token 5, the token it commits most often in this setting (over prompt seeds 6000 to 6200).
EOS_SETTING = dict(gen_length=24, steps=12, block_length=8)
LLADA_STOP = [5]
POLICY_EOS = [
    dict(name="dream_early_stop_low_conf", model="tiny-dream", prompt_seed=6695, early_stop=True,
         require=("finished_early",)),
    # The first answer position commits EOS: the answer is empty.
    dict(name="dream_early_stop_empty_answer", model="tiny-dream", prompt_seed=6620,
         early_stop=True, require=("finished_early",)),
    dict(name="dream_early_stop_maskgit_plus", model="tiny-dream", prompt_seed=6695,
         remasking="maskgit_plus", early_stop=True, require=("finished_early",)),
    dict(name="dream_early_stop_threshold0.5", model="tiny-dream", prompt_seed=6218,
         remasking="threshold", confidence_threshold=0.5, early_stop=True,
         require=("finished_early",)),
    dict(name="dream_logits_eos_inf", model="tiny-dream", prompt_seed=6695, logits_eos_inf=True,
         require=("flag_changes_result",)),
    dict(name="dream_confidence_eos_eot_inf", model="tiny-dream", prompt_seed=6695,
         confidence_eos_eot_inf=True, require=("flag_changes_result",)),
    dict(name="dream_confidence_eos_eot_inf_maskgit_plus", model="tiny-dream", prompt_seed=6695,
         remasking="maskgit_plus", confidence_eos_eot_inf=True,
         require=("flag_changes_result",)),
    dict(name="llada_early_stop_low_conf", model="tiny-llada", prompt_seed=6010,
         stop_ids=LLADA_STOP, early_stop=True, require=("finished_early",)),
    dict(name="llada_early_stop_maskgit_plus", model="tiny-llada", prompt_seed=6010,
         stop_ids=LLADA_STOP, remasking="maskgit_plus", early_stop=True,
         require=("finished_early",)),
    dict(name="llada_logits_eos_inf", model="tiny-llada", prompt_seed=6010, stop_ids=LLADA_STOP,
         logits_eos_inf=True, require=("flag_changes_result",)),
    dict(name="llada_confidence_eos_eot_inf", model="tiny-llada", prompt_seed=6010,
         stop_ids=LLADA_STOP, confidence_eos_eot_inf=True, require=("flag_changes_result",)),
]
# fmt: on

POLICY_DEFAULTS = dict(
    remasking="low_confidence",
    temperature=0.0,
    top_p=1.0,
    top_k=0,
    cfg_scale=0.0,
    seed=0,
    alg_temp=0.0,
    confidence_threshold=0.9,
    factor=1.0,
    early_stop=False,
    logits_eos_inf=False,
    confidence_eos_eot_inf=False,
    stop_ids=None,
)

# cache.json: Fast-dLLM's approximate caches (llada_reference.generate, `cache`). Two blocks, so
# that a second refresh replaces the first block's cache; each case must commit something else
# than the same case without the cache, or it would not show that the cache is used.
CACHE_DEFAULTS = dict(POLICY_DEFAULTS, cache="none")
# fmt: off
CACHE_MATRIX = [
    ("low_conf", dict(remasking="low_confidence"), ()),
    ("threshold0.5", dict(remasking="threshold", confidence_threshold=0.5), ("parallel",)),
    ("threshold0.9", dict(remasking="threshold", confidence_threshold=0.9), ()),
    ("factor1", dict(remasking="factor", factor=1.0), ("parallel",)),
]
CACHE_DREAM_MATRIX = [
    ("maskgit_plus", dict(remasking="maskgit_plus"), ()),
    ("entropy", dict(remasking="entropy"), ()),
]
CACHE_EXTRA = [
    ("threshold0.5_cfg1", dict(remasking="threshold", confidence_threshold=0.5, cfg_scale=1.0)),
    ("low_conf_temp0.8", dict(remasking="low_confidence", temperature=0.8, seed=204)),
    ("threshold0.5_4blocks", dict(remasking="threshold", confidence_threshold=0.5,
     gen_length=32, steps=16, block_length=8)),
]
# fmt: on


def cache_cases() -> list[dict]:
    cases = []
    for family, model in POLICY_FAMILIES.items():
        matrix = CACHE_MATRIX + (CACHE_DREAM_MATRIX if family == "dream" else [])
        extra = [(label, settings, ()) for label, settings in CACHE_EXTRA]
        for label, settings, require in matrix + extra:
            for cache in ("prefix", "dual"):
                index = len(cases)
                case = dict(
                    name=f"{family}_{label}_{cache}",
                    model=model,
                    prompt_len=6 + index % 7,
                    prompt_seed=8000 + 100 * index,
                    gen_length=16,
                    steps=8,
                    block_length=8,
                    cache=cache,
                    require=require + ("varied", "cache_changes_result"),
                )
                case.update(settings)
                cases.append(case)
    return cases


# revising.json: the options that revise committed tokens (llada_reference.generate:
# edit_threshold, remdm_remask; docs/generation.md). Temperature 0, one block and two, both families.
# Each case records every step's commits, replacements and remasks, and must revise something (see
# REVISING_REQUIREMENTS). The tiny models' confidences are low, so edit_threshold 0.5 edits a
# handful of tokens where lower thresholds rewrite most of the block every step.
REVISING_DEFAULTS = dict(
    CACHE_DEFAULTS,
    edit_threshold=None,
    max_edit_steps=16,
    remdm_remask=0,
    remdm_start=0.45,
    remdm_end=0.95,
    pinned=None,
)
EDIT = dict(edit_threshold=0.5, max_edit_steps=4)
# fmt: off
REVISING_MATRIX = [
    # (label, settings, requirements)
    ("threshold0.5_edit0.5", dict(remasking="threshold", confidence_threshold=0.5, **EDIT),
     ("edits", "extra_step_edits")),
    ("low_conf_edit0.5", dict(remasking="low_confidence", **EDIT), ("edits", "extra_step_edits")),
    # remdm: 24 steps for 16 tokens, so that the window (steps 45% to 95% of each block's) is long.
    ("low_conf_remdm2", dict(remasking="low_confidence", steps=24, remdm_remask=2), ("remasks",)),
    ("threshold0.5_remdm1", dict(remasking="threshold", confidence_threshold=0.5,
     remdm_remask=1), ("remasks",)),
]
REVISING_DREAM_MATRIX = [
    ("maskgit_plus_remdm2", dict(remasking="maskgit_plus", steps=24, remdm_remask=2),
     ("remasks",)),
]
# Two blocks each (block_length 8).
REVISING_EXTRA = [
    # SGLang's S mode: every revisable token whose prediction differs is replaced; the edit-only
    # steps stop at max_edit_steps with edits still coming.
    ("threshold0.5_edit0_cap2", dict(remasking="threshold", confidence_threshold=0.5,
     edit_threshold=0.0, max_edit_steps=2), ("edits", "edit_cap")),
    ("factor1_remdm1", dict(remasking="factor", factor=1.0, remdm_remask=1), ("remasks",)),
    ("random_remdm1", dict(remasking="random", seed=7, steps=24, remdm_remask=1), ("remasks",)),
    ("threshold0.5_edit0.5_dual", dict(remasking="threshold", confidence_threshold=0.5,
     cache="dual", **EDIT), ("edits",)),
    ("low_conf_remdm2_prefix", dict(remasking="low_confidence", steps=24, remdm_remask=2,
     cache="prefix"), ("remasks",)),
    # Every other answer position pinned: committed once, never revised.
    ("threshold0.5_edit0.5_pinned", dict(remasking="threshold", confidence_threshold=0.5,
     pinned_answer=list(range(0, 16, 2)), **EDIT), ("edits", "pins_change_result")),
    ("low_conf_remdm2_pinned", dict(remasking="low_confidence", steps=24, remdm_remask=2,
     pinned_answer=list(range(0, 16, 2))), ("remasks", "pins_change_result")),
]
# fmt: on


def revising_cases() -> list[dict]:
    cases = []
    for family, model in POLICY_FAMILIES.items():
        matrix = REVISING_MATRIX + (REVISING_DREAM_MATRIX if family == "dream" else [])
        shapes = [(f"{b}block{'s' if b > 1 else ''}", 16 // b) for b in (1, 2)]
        rows = [
            (f"{label}_{shape}", settings, require, block_length)
            for label, settings, require in matrix
            for shape, block_length in shapes
        ]
        rows += [(label, settings, require, 8) for label, settings, require in REVISING_EXTRA]
        for label, settings, require, block_length in rows:
            index = len(cases)
            case = dict(
                name=f"{family}_{label}",
                model=model,
                prompt_len=6 + index % 7,
                prompt_seed=10000 + 100 * index,
                gen_length=16,
                steps=8,
                block_length=block_length,
                require=require + ("varied", "revision_changes_result"),
            )
            case.update(settings)
            cases.append(case)
    return cases


def edit_cap_reached(case: dict, trace: list[dict]) -> bool:
    """Some block ran max_edit_steps edit-only steps and the last of them still edited."""
    for block in {t["block"] for t in trace}:
        extra = [t for t in trace if t["block"] == block and t["extra"]]
        if len(extra) == case["max_edit_steps"] and extra and extra[-1]["replaced"]:
            return True
    return False


def check_trace(case: dict, prompt: list[int], mask_id: int, result, trace: list[dict]) -> None:
    """Replays a revising case's trace on the initial canvas and asserts the rules the trace can
    show by itself: commits fill masks; replaced and remasked positions are revisable (in the
    step's block, a real token at the step's start, neither given nor pinned); edit-only steps
    only edit; remasking steps remask as many tokens as they commit unless they ran out of masks;
    the replay ends on the result's canvas, without masks unless the generation stopped early."""
    canvas = list(prompt) + [mask_id] * case["gen_length"]
    frozen = set(range(len(prompt))) | set(case["pinned"] or ())
    for t in trace:
        start = len(prompt) + t["block"] * case["block_length"]
        block = range(start, start + case["block_length"])
        revisable = {q for q in block if canvas[q] != mask_id and q not in frozen}
        masks = sum(canvas[q] == mask_id for q in block)
        assert all(canvas[q] == mask_id for q, _ in t["committed"]), t
        assert {q for q, _ in t["replaced"]} <= revisable, t
        assert set(t["remasked"]) <= revisable, t
        assert not (t["extra"] and t["committed"]), t
        assert not (t["replaced"] and t["remasked"]), t
        if t["window"]:
            assert len(t["remasked"]) == min(case["remdm_remask"], len(revisable)), t
            assert len(t["committed"]) == min(len(t["remasked"]), masks) or masks == 0, t
        else:
            assert not t["remasked"], t
        for q, token in t["committed"] + t["replaced"]:
            canvas[q] = token
        for q in t["remasked"]:
            canvas[q] = mask_id
    assert canvas == result.canvas
    assert result.finished_early or mask_id not in canvas[len(prompt) :]
    assert result.edits == sum(len(t["replaced"]) for t in trace)
    assert result.remasks == sum(len(t["remasked"]) for t in trace)
    assert result.extra_steps == sum(t["extra"] for t in trace)
    assert result.steps == len(trace) == len({t["step"] for t in trace})


# What a revising case must show besides its margins. `run` reruns the case with changed settings.
REVISING_REQUIREMENTS = {
    "varied": lambda case, result, trace, run: len(set(result.token_ids)) >= 4,
    "edits": lambda case, result, trace, run: result.edits > 0,
    "remasks": lambda case, result, trace, run: result.remasks > 0,
    # An edit-only step replaced a token (not only the steps that also commit).
    "extra_step_edits": lambda case, result, trace, run: any(
        t["extra"] and t["replaced"] for t in trace
    ),
    "edit_cap": lambda case, result, trace, run: edit_cap_reached(case, trace),
    # Without the option the answer differs, so that a test that ignored it fails.
    "revision_changes_result": lambda case, result, trace, run: result.token_ids
    != run(dict(case, edit_threshold=None, remdm_remask=0)).token_ids,
    "pins_change_result": lambda case, result, trace, run: result.token_ids
    != run(dict(case, pinned=None)).token_ids,
}


def run_revising_case(model: ref.Transformer, case: dict) -> dict:
    defaults = REVISING_DEFAULTS
    settings = dict(defaults)
    settings.update({k: case[k] for k in defaults if k in case})
    shape = dict(
        gen_length=case["gen_length"], steps=case["steps"], block_length=case["block_length"]
    )
    skipped = []
    for attempt in range(MAX_PROMPT_ATTEMPTS):
        prompt_seed = case["prompt_seed"] + attempt
        prompt = prompt_ids(model.config, case["prompt_len"], prompt_seed)
        if "pinned_answer" in case:
            settings["pinned"] = [len(prompt) + q for q in case["pinned_answer"]]

        def run(variant: dict, margins=None, trace=None) -> ref.GenerateResult:
            params = ref.GenerateParams(**shape, **{k: variant[k] for k in defaults})
            with torch.inference_mode():
                return ref.generate(model, prompt, params, margins=margins, trace=trace)

        margins: list[float] = []
        trace: list[dict] = []
        result = run(settings, margins, trace)
        check_trace(dict(settings, **shape), prompt, model.config.mask_token_id, result, trace)
        min_margin = min(margins, default=math.inf)
        full = dict(settings, **shape)
        failed = [
            r
            for r in case.get("require", ())
            if not REVISING_REQUIREMENTS[r](full, result, trace, run)
        ]
        if min_margin >= MIN_MARGIN and not failed:
            break
        why = [f"came within {min_margin:.2e} of a tie"] if min_margin < MIN_MARGIN else []
        why += [f"failed {r}" for r in failed]
        skipped.append(f"prompt seed {prompt_seed} {' and '.join(why)}")
    else:
        raise RuntimeError(
            f"{case['name']}: no prompt seed met the margin and {case.get('require')}"
        )
    if settings["stop_ids"] is None:
        settings["stop_ids"] = [model.config.eos_token_id]
    if settings["pinned"] is None:
        settings["pinned"] = []
    out = dict(
        name=case["name"],
        model=case["model"],
        family=model.config.family,
        prompt_ids=prompt,
        **shape,
        **settings,
        token_ids=result.token_ids,
        canvas=result.canvas,
        executed_steps=result.steps,
        forward_passes=result.forward_passes,
        finished_early=result.finished_early,
        edits=result.edits,
        remasks=result.remasks,
        extra_steps=result.extra_steps,
        trace=trace,
        min_margin=min_margin,
        prompt_seed=prompt_seed,
    )
    if skipped:
        out["note"] = "; ".join(skipped)
    return out


# What a policy case must show besides its margins, so that it tests what its name says.
REQUIREMENTS = {
    # Not a near-constant answer (a few prompts make the tiny models repeat one token), which every
    # policy would produce alike.
    "varied": lambda case, result, run: len(set(result.token_ids)) >= 4,
    # Some step commits more than one token.
    "parallel": lambda case, result, run: result.steps < case["gen_length"],
    # Early stop fired and saved at least one step.
    "finished_early": lambda case, result, run: result.finished_early
    and result.steps < run(dict(case, early_stop=False)).steps,
    # The KV cache changes the answer (the tiny models' predictions move a lot with the canvas).
    "cache_changes_result": lambda case, result, run: result.token_ids
    != run(dict(case, cache="none")).token_ids,
    # The stop-id flag changes the answer.
    "flag_changes_result": lambda case, result, run: result.token_ids
    != run(dict(case, logits_eos_inf=False, confidence_eos_eot_inf=False)).token_ids,
}

# alg_temp_first_pick: the first step (temperature 0, so its logits and confidences do not depend on
# the seed), where the first position chosen (the best Gumbel score) is distributed exactly as
# softmax(confidence / alg_temp): a test can compare frequencies over many seeds with this law.
FIRST_PICK = dict(
    model="tiny-dream",
    prompt_len=8,
    prompt_seed=4242,
    params=dict(gen_length=16, steps=8, block_length=16, remasking="maskgit_plus", alg_temp=0.05),
)
# Dream's timestep tables for these steps per block (torch.linspace in float32).
TIMESTEP_TABLES = [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 64, 100, 128, 256, 512]

# (seed, step, position, index, stream) draws for the C++ RNG unit test; seeds cover both halves
# of the 64-bit key, and positions/indices the sizes of a real LLaDA vocabulary and canvas.
RNG_DRAWS = [
    (0, 0, 0, 0, 0),
    (0, 0, 0, 0, 1),
    (0, 0, 1, 0, 0),
    (0, 1, 0, 0, 0),
    (0, 0, 0, 1, 0),
    (1, 0, 0, 0, 0),
    (7, 3, 17, 0, 1),
    (1234, 0, 5, 995, 0),
    (1234, 11, 30, 126335, 0),
    (42, 255, 4095, 126463, 0),
    (2**32 - 1, 2, 9, 100, 0),
    (2**32, 2, 9, 100, 0),
    (2**32 + 1, 0, 0, 0, 1),
    (2**40 + 7, 0, 8, 0, 1),
    (2**40 + 7, 7, 23, 996, 0),
    (0xDEADBEEFCAFEF00D, 1, 2, 3, 0),
    (2**63, 100, 1000, 10000, 1),
    (2**64 - 1, 0, 0, 0, 0),
    (2**64 - 1, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
    (123456789, 31, 63, 511, 1),
]


def prompt_ids(config: ref.ModelConfig, length: int, seed: int) -> list[int]:
    # Ordinary tokens only: a mask in the prompt would change prompt_index, an EOS is uninteresting.
    limit = min(config.mask_token_id, config.eos_token_id)
    return np.random.default_rng(seed).integers(0, limit, size=length).tolist()


def build_rng() -> dict:
    draws = []
    for seed, step, position, index, stream in RNG_DRAWS:
        key = [seed & 0xFFFFFFFF, seed >> 32]
        words = ref.philox4x32_10([position, step, index, stream], key)
        u = ref.uniform_open01(seed, step, position, index, stream)
        draws.append(
            dict(
                seed=seed,
                step=step,
                position=position,
                index=index,
                stream=stream,
                philox=[int(w) for w in words],
                u=float(u),
            )
        )
    known = [dict(counter=c, key=k, output=o) for c, k, o in ref.PHILOX_KNOWN_ANSWERS]
    return {"philox_known_answers": known, "draws": draws}


def build_forward(models: dict[str, ref.Transformer]) -> tuple[dict, dict[str, dict]]:
    cases, tensors = [], {}
    for case in FORWARD_CASES:
        model = models[case["model"]]
        rng = np.random.default_rng(case["seed"])
        ids = prompt_ids(model.config, case["length"], case["seed"])
        for pos in rng.choice(case["length"], size=case["n_masks"], replace=False):
            ids[pos] = model.config.mask_token_id
        trace: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            model.forward(torch.tensor([ids]), trace)
        file = f"forward_{case['model']}.safetensors"
        cases.append(dict(model=case["model"], input_ids=ids, activations=file))
        tensors[file] = {k: v.contiguous() for k, v in trace.items()}
    return {"cases": cases}, tensors


def run_generate_case(model: ref.Transformer, case: dict) -> dict:
    settings = dict(GENERATE_DEFAULTS)
    settings.update({k: case[k] for k in GENERATE_DEFAULTS if k in case})
    skipped = []
    for attempt in range(MAX_PROMPT_ATTEMPTS):
        prompt_seed = case["prompt_seed"] + attempt
        prompt = prompt_ids(model.config, case["prompt_len"], prompt_seed)
        margins: list[float] = []
        with torch.inference_mode():
            tokens = ref.generate(
                model,
                prompt,
                gen_length=case["gen_length"],
                steps=case["steps"],
                block_length=case["block_length"],
                margins=margins,
                **settings,
            ).token_ids
        min_margin = min(margins)
        if min_margin >= MIN_MARGIN:
            break
        skipped.append(f"prompt seed {prompt_seed} came within {min_margin:.2e} of a tie")
    else:
        raise RuntimeError(f"{case['name']}: no prompt seed kept every margin above {MIN_MARGIN}")
    out = dict(
        name=case["name"],
        model=case["model"],
        prompt_ids=prompt,
        gen_length=case["gen_length"],
        steps=case["steps"],
        block_length=case["block_length"],
        **settings,
        token_ids=tokens,
        min_margin=min_margin,
        prompt_seed=prompt_seed,
    )
    if skipped:
        out["note"] = "; ".join(skipped)
    return out


def policy_cases() -> list[dict]:
    cases = []
    for family, model in POLICY_FAMILIES.items():
        for label, settings, require in POLICY_MATRIX:
            for blocks in (1, 2):
                index = len(cases)
                cases.append(
                    dict(
                        name=f"{family}_{label}_{blocks}block{'s' if blocks > 1 else ''}",
                        model=model,
                        prompt_len=6 + index % 7,
                        prompt_seed=3000 + 100 * index,
                        gen_length=16,
                        steps=8,
                        block_length=16 // blocks,
                        require=require + ("varied",),
                        **settings,
                    )
                )
    for family, model in POLICY_FAMILIES.items():
        for label, settings in POLICY_EXTRA:
            index = len(cases)
            case = dict(
                name=f"{family}_{label}",
                model=model,
                prompt_len=6 + index % 7,
                prompt_seed=3000 + 100 * index,
                gen_length=16,
                steps=8,
                block_length=8,
                require=("varied",),
            )
            case.update(settings)
            cases.append(case)
    # The alias must give exactly what topk_margin gives (same case otherwise).
    alias = next(c for c in cases if c["name"] == "dream_topk_margin_2blocks")
    cases.append(dict(alias, name="dream_margin_alias", remasking="margin"))
    for eos in POLICY_EOS:
        prompt_len = 6 + eos["prompt_seed"] % 7  # as in the search that found these prompts
        cases.append(dict(EOS_SETTING, prompt_len=prompt_len, **eos))
    return cases


def run_policy_case(
    model: ref.Transformer, case: dict, defaults: dict = POLICY_DEFAULTS
) -> dict:
    settings = dict(defaults)
    settings.update({k: case[k] for k in defaults if k in case})
    shape = dict(
        gen_length=case["gen_length"], steps=case["steps"], block_length=case["block_length"]
    )
    skipped = []
    for attempt in range(MAX_PROMPT_ATTEMPTS):
        prompt_seed = case["prompt_seed"] + attempt
        prompt = prompt_ids(model.config, case["prompt_len"], prompt_seed)

        def run(variant: dict, margins: list[float] | None = None) -> ref.GenerateResult:
            params = ref.GenerateParams(**shape, **{k: variant[k] for k in defaults})
            with torch.inference_mode():
                return ref.generate(model, prompt, params, margins=margins)

        margins: list[float] = []
        result = run(settings, margins)
        min_margin = min(margins, default=math.inf)
        full = dict(settings, **shape)
        failed = [r for r in case.get("require", ()) if not REQUIREMENTS[r](full, result, run)]
        if min_margin >= MIN_MARGIN and not failed:
            break
        why = [f"came within {min_margin:.2e} of a tie"] if min_margin < MIN_MARGIN else []
        why += [f"failed {r}" for r in failed]
        skipped.append(f"prompt seed {prompt_seed} {' and '.join(why)}")
    else:
        raise RuntimeError(
            f"{case['name']}: no prompt seed met the margin and {case.get('require')}"
        )
    if settings["stop_ids"] is None:
        settings["stop_ids"] = [model.config.eos_token_id]
    out = dict(
        name=case["name"],
        model=case["model"],
        family=model.config.family,
        prompt_ids=prompt,
        **shape,
        **settings,
        token_ids=result.token_ids,
        executed_steps=result.steps,
        forward_passes=result.forward_passes,
        finished_early=result.finished_early,
        min_margin=min_margin,
        prompt_seed=prompt_seed,
    )
    if skipped:
        out["note"] = "; ".join(skipped)
    return out


def build_first_pick(models: dict[str, ref.Transformer]) -> dict:
    """The exact law of the first position chosen by alg_temp sampling at step 0."""
    spec = FIRST_PICK
    model = models[spec["model"]]
    params = ref.GenerateParams(**spec["params"])
    prompt = prompt_ids(model.config, spec["prompt_len"], spec["prompt_seed"])
    x = torch.tensor([prompt + [model.config.mask_token_id] * params.gen_length])
    candidates = torch.nonzero(x[0] == model.config.mask_token_id)[:, 0]
    with torch.inference_mode():
        logits, _ = ref.guided_logits(model, x, params, x != model.config.mask_token_id)
        choice = ref.choose_dream_style(
            logits[candidates], params, params.remasking, 0, candidates.numpy().astype(np.uint64)
        )
    probabilities = torch.softmax(choice.confidence / params.alg_temp, dim=-1)
    full = dict(POLICY_DEFAULTS, **spec["params"], stop_ids=[model.config.eos_token_id])
    return dict(
        model=spec["model"],
        prompt_ids=prompt,
        step=0,
        params={k: full[k] for k in ("gen_length", "steps", "block_length", *POLICY_DEFAULTS)},
        candidate_positions=candidates.tolist(),
        confidences=choice.confidence.tolist(),
        probabilities=probabilities.tolist(),
    )


def build_timesteps() -> list[dict]:
    return [
        dict(steps_per_block=n, timesteps=ref.dream_timesteps(n).tolist()) for n in TIMESTEP_TABLES
    ]


def dump_cases(key: str, items: list[dict], extra: dict | None = None) -> str:
    """JSON with one object per line: readable diffs without one number per line."""
    lines = [json.dumps({k: v})[1:-1] + "," for k, v in (extra or {}).items()]
    body = ",\n".join("  " + json.dumps(item) for item in items)
    return "{\n" + "\n".join(lines + [f'"{key}": [', body, "]"]) + "\n}\n"


def build_all(model_dir: pathlib.Path) -> dict[str, object]:
    """Every fixture file, by name: JSON text for .json, a tensor dict for .safetensors."""
    cases = policy_cases()
    cached = cache_cases()
    revising = revising_cases()
    everything = FORWARD_CASES + GENERATE_CASES + cases + cached + revising + [FIRST_PICK]
    names = {c["model"] for c in everything}
    models = {name: ref.Transformer(model_dir / name) for name in sorted(names)}
    rng = build_rng()
    files: dict[str, object] = {
        "rng.json": dump_cases(
            "draws", rng["draws"], {"philox_known_answers": rng["philox_known_answers"]}
        )
    }
    forward, tensors = build_forward(models)
    files["forward.json"] = dump_cases("cases", forward["cases"])
    files.update(tensors)
    generated = []
    for case in GENERATE_CASES:
        result = run_generate_case(models[case["model"]], case)
        print(f"{case['name']:28s} min_margin {result['min_margin']:.3e}", file=sys.stderr)
        generated.append(result)
    files["generate.json"] = dump_cases("cases", generated)
    policies = []
    for case in cases:
        result = run_policy_case(models[case["model"]], case)
        print(f"{case['name']:44s} min_margin {result['min_margin']:.3e}", file=sys.stderr)
        policies.append(result)
    extra = {"alg_temp_first_pick": build_first_pick(models), "dream_timesteps": build_timesteps()}
    files["policies.json"] = dump_cases("cases", policies, extra)
    for model in models.values():
        ref.check_kv_window(model)
    cache = []
    for case in cached:
        result = run_policy_case(models[case["model"]], case, CACHE_DEFAULTS)
        print(f"{case['name']:44s} min_margin {result['min_margin']:.3e}", file=sys.stderr)
        cache.append(result)
    files["cache.json"] = dump_cases("cases", cache)
    revised = []
    for case in revising:
        result = run_revising_case(models[case["model"]], case)
        counts = f"edits {result['edits']:3d} remasks {result['remasks']:3d}"
        print(f"{case['name']:44s} {counts} min_margin {result['min_margin']:.3e}", file=sys.stderr)
        revised.append(result)
    files["revising.json"] = dump_cases("cases", revised)
    return files


def compare(out_dir: pathlib.Path, files: dict[str, object]) -> bool:
    ok = True
    for name, content in files.items():
        path = out_dir / name
        if not path.exists():
            print(f"MISSING {name}")
            ok = False
            continue
        if isinstance(content, str):
            same = compare_json(json.loads(path.read_text()), json.loads(content), name)
        else:
            same = compare_tensors(load_file(str(path)), content, name)
        print(f"{'ok  ' if same else 'DIFF'} {name}")
        ok &= same
    return ok


def compare_json(old, new, where: str) -> bool:
    """Exact, except that recorded margins may move with the platform's float summation."""
    if isinstance(old, dict) and isinstance(new, dict):
        if old.keys() != new.keys():
            print(f"  {where}: keys {sorted(old)} != {sorted(new)}")
            return False
        return all(compare_json(old[k], new[k], f"{where}.{k}") for k in old)
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            print(f"  {where}: length {len(old)} != {len(new)}")
            return False
        return all(compare_json(a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(old, new)))
    if where.endswith("min_margin"):
        same = math.isclose(old, new, rel_tol=1e-2)
    elif ".confidences[" in where or ".probabilities[" in where:
        same = math.isclose(old, new, rel_tol=1e-5)  # model outputs: platform summation order
    elif where.endswith(".note"):
        same = True  # mentions margins of rejected prompts, which move like min_margin does
    else:
        same = old == new and type(old) is type(new)
    if not same:
        print(f"  {where}: {old!r} != {new!r}")
    return same


def compare_tensors(old: dict, new: dict, where: str) -> bool:
    if old.keys() != new.keys():
        print(f"  {where}: tensor names differ")
        return False
    ok = True
    for k in old:
        if old[k].shape != new[k].shape or not torch.allclose(old[k], new[k], rtol=1e-4, atol=1e-5):
            print(f"  {where}: {k} differs (max abs {(old[k] - new[k]).abs().max().item():.3g})")
            ok = False
    return ok


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=pathlib.Path, default=REPO / "tests" / "models")
    ap.add_argument("--out", type=pathlib.Path, default=REPO / "tests" / "golden" / "data")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    ref.check_philox()
    files = build_all(args.models)
    if args.check:
        return 0 if compare(args.out, files) else 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, str):
            (args.out / name).write_text(content)
        else:
            save_file(content, str(args.out / name), metadata={"format": "pt"})
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
