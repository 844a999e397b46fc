#!/usr/bin/env python3
"""Renders the fixture tokenizers' chat templates with Jinja (as transformers' apply_chat_template
does) and encodes the result with HF tokenizers, writing tests/tokenizers/chat_expected.json.

    python tools/gen_chat_golden.py [--check]

Needs jinja2 and tokenizers (tools/requirements.txt). The C++ chat formats must reproduce both the
text and the ids exactly.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jinja2.sandbox
from tokenizers import Tokenizer

REPO = pathlib.Path(__file__).resolve().parent.parent
TOKENIZERS = REPO / "tests" / "tokenizers"
OUT = TOKENIZERS / "chat_expected.json"

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [
        {"role": "system", "content": "You write Python."},
        {"role": "user", "content": "Reverse a list."},
    ],
    [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    # Whitespace the LLaDA template trims (Python's str.strip, Unicode spaces included).
    [{"role": "user", "content": "\n\t  padded question \u3000\n"}],
    [{"role": "user", "content": "Grüße, 你好, 👍🏽 <|endoftext|> inside"}],
    [{"role": "user", "content": ""}],
]


def render(template: str, messages: list[dict], add_generation_prompt: bool, bos: str) -> str:
    # transformers renders with these settings.
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos
    )


def build() -> dict:
    cases = []
    for name in ("llada-style", "qwen2-style"):
        config = json.loads((TOKENIZERS / name / "tokenizer_config.json").read_text())
        tokenizer = Tokenizer.from_file(str(TOKENIZERS / name / "tokenizer.json"))
        bos = config.get("bos_token") or ""
        for messages in CONVERSATIONS:
            for add_generation_prompt in (True, False):
                text = render(config["chat_template"], messages, add_generation_prompt, bos)
                ids = tokenizer.encode(text, add_special_tokens=False).ids
                cases.append(
                    dict(
                        tokenizer=name,
                        messages=messages,
                        add_generation_prompt=add_generation_prompt,
                        text=text,
                        ids=ids,
                    )
                )
    return {"generator": "tools/gen_chat_golden.py", "cases": cases}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file")
    args = ap.parse_args(argv)
    fixture = build()
    if args.check:
        if json.loads(OUT.read_text()) != fixture:
            print(f"{OUT} differs from what the templates render now", file=sys.stderr)
            return 1
        print(f"{OUT} is up to date ({len(fixture['cases'])} cases)")
        return 0
    OUT.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT} ({len(fixture['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
