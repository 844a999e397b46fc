#!/usr/bin/env python3
"""Builds the training corpus and tokenizer for sculpt-code-mini.

The corpus is the Python standard library as Debian ships it (`/usr/lib/python3.11`, PSF
licensed): every `.py` file outside test folders and third-party package folders, deduplicated by
content. A hash of each relative path puts 5% of the files in a held-out split, so the split does
not depend on directory listing order or on which files exist. Writes, under --out:

  train.txt, heldout.txt   the files of each split joined with SEPARATOR
  split.json               {"train": [relative paths], "heldout": [relative paths]}
  tokenizer/               tokenizer.json + tokenizer_config.json (byte-level BPE, train split only)
  train.bin, heldout.bin   uint16 token ids, each file as BOS + tokens + EOS, concatenated
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

CORPUS_ROOT = pathlib.Path("/usr/lib/python3.11")
SEPARATOR = "\n<|endoftext|>\n"
HELDOUT_PERCENT = 5
VOCAB_SIZE = 8192
MAX_LENGTH = 512

EOS, MASK, BOS = "<|endoftext|>", "<|mdm_mask|>", "<|startoftext|>"
# Order fixes the ids: EOS 0, mask 1, BOS 2, then the chat markers LLaDA-Instruct's template uses.
SPECIAL_TOKENS = [EOS, MASK, BOS, "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
EXCLUDED_DIRS = {"test", "tests", "site-packages", "dist-packages"}
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{ message['content'] | trim }}{{ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)


def is_heldout(relative: str) -> bool:
    digest = hashlib.sha256(relative.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100 < HELDOUT_PERCENT


def collect(root: pathlib.Path) -> tuple[dict[str, str], dict[str, str]]:
    """Returns (train, heldout), each relative path -> text, in sorted path order."""
    train: dict[str, str] = {}
    heldout: dict[str, str] = {}
    seen: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if EXCLUDED_DIRS & set(relative.split("/")[:-1]) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a few files are deliberately not UTF-8; they teach nothing useful here
        # The separator must stay unambiguous, and an empty file is not a document.
        if not text.strip() or SEPARATOR.strip() in text:
            continue
        # The first path in sorted order keeps a duplicated file, so the choice is deterministic.
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        (heldout if is_heldout(relative) else train)[relative] = text
    return train, heldout


def train_tokenizer(texts: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    # Specials are matched before pre-tokenization and never normalized.
    for token in SPECIAL_TOKENS:
        assert tokenizer.token_to_id(token) is not None, token
    # Encoding a prompt puts BOS first, as LLaDA's tokenizer does: the model is trained on
    # windows that start with BOS (train.py's `bos_first`) so it knows where the text begins.
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A", special_tokens=[(BOS, tokenizer.token_to_id(BOS))]
            ),
        ]
    )
    return tokenizer


def tokenizer_config(tokenizer: Tokenizer) -> dict:
    added = {
        str(tokenizer.token_to_id(token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in SPECIAL_TOKENS
    }
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": BOS,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "mask_token": MASK,
        "model_max_length": MAX_LENGTH,
        "pad_token": EOS,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def encode(tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    bos, eos = tokenizer.token_to_id(BOS), tokenizer.token_to_id(EOS)
    pieces = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        pieces.append(np.array([bos] + encoding.ids + [eos], dtype=np.uint16))
    return np.concatenate(pieces)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=pathlib.Path, default=CORPUS_ROOT, help="corpus folder")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("build/train-data"))
    args = ap.parse_args(argv)

    train, heldout = collect(args.root)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("heldout", heldout)):
        (args.out / f"{name}.txt").write_text(SEPARATOR.join(split.values()), encoding="utf-8")
    split_json = {"train": list(train), "heldout": list(heldout)}
    (args.out / "split.json").write_text(json.dumps(split_json, indent=1) + "\n")

    tokenizer = train_tokenizer(list(train.values()))
    tok_dir = args.out / "tokenizer"
    tok_dir.mkdir(exist_ok=True)
    tokenizer.save(str(tok_dir / "tokenizer.json"))
    config = tokenizer_config(tokenizer)
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")

    for name, split in (("train", train), ("heldout", heldout)):
        ids = encode(tokenizer, list(split.values()))
        ids.tofile(args.out / f"{name}.bin")
        print(
            f"{name}: {len(split)} files, {sum(map(len, split.values()))} chars, {len(ids)} tokens"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
