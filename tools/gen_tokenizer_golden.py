#!/usr/bin/env python3
"""Trains small byte-level BPE tokenizers with HF `tokenizers` and writes golden fixtures.

The C++ tokenizer must match HF byte for byte on the three byte-level BPE pipelines Sculpt serves
(LLaDA/Llama-3, Qwen2/Dream, GPT-2). `python3 tools/gen_tokenizer_golden.py` writes
tests/tokenizers/{corpus.json,expected.json,<name>/tokenizer.json,<name>/tokenizer_config.json};
`--check` retrains and recomputes everything in memory and exits 1 when a committed file differs
(if a file of TRAINING_FILES was edited since, it compares what does not depend on training).
Needs only the `tokenizers` package (pinned in requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import struct
import sys
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, __version__ as TOKENIZERS_VERSION
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE_DIR = ROOT / "tests" / "tokenizers"

# Model vocabulary size including the 256-symbol byte alphabet; added tokens come after it, as in
# the real checkpoints (LLaDA, Qwen2 and GPT-2 all put their special tokens above the BPE vocab).
VOCAB_SIZE = 3000

LARGE_NAME = "large"
LARGE_MIN_BYTES = 1_000_000
LARGE_CONSTRUCTION = (
    "Take the 'text' of every other corpus entry, in file order, and join them with a single "
    "'\\n' (U+000A) between consecutive texts (no trailing newline). Encode that string as "
    "UTF-8; call its byte length n. The large text is the joined string repeated k times with "
    "nothing between repetitions, where k = ceil(1000000 / n) is the smallest count giving at "
    "least 1,000,000 bytes. Nothing is cut. In expected.json, *_sha256 is the SHA-256 of the ids "
    "written as consecutive little-endian int32 values."
)

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# The Instruct form LLaDA inherits from Llama-3: BOS once, then one header block per message.
LLADA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{ message['content'] | trim }}{{ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
# ChatML with the default system turn Qwen2 and Dream insert when the caller gives none.
CHATML_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

PYTHON_SAMPLE = '''\
def remask(canvas: list[int], scores: list[float], k: int, mask_id: int) -> list[int]:
    """Put the mask back on the k least confident positions."""
    order = sorted(range(len(canvas)), key=lambda i: scores[i])
    for i in order[:k]:
        canvas[i] = mask_id
    return canvas


if __name__ == "__main__":
    print(remask([5, 6, 7], [0.9, 0.1, 0.5], k=1, mask_id=-1))  # -> [5, -1, 7]
'''

CPP_SAMPLE = """\
#include <cstdint>
#include <vector>

// Counts the masked slots of a canvas; std::count would do, this is for the tokenizer.
int64_t count_masked(const std::vector<int32_t>& canvas, int32_t mask_id) {
  int64_t n = 0;
  for (size_t i = 0; i < canvas.size(); ++i) {
    if (canvas[i] == mask_id) ++n;
  }
  return n;  // n <= canvas.size()
}

template <typename T>
struct Span { const T* data; size_t size; };
"""

# (name, text). Every text is written here, by hand; none is taken from elsewhere. Keep each under
# 2 KB: the large case is built from these (see LARGE_CONSTRUCTION), not stored.
CORPUS: list[tuple[str, str]] = [
    ("python_code", PYTHON_SAMPLE),
    ("cpp_code", CPP_SAMPLE),
    (
        "english",
        "Diffusion language models write a whole block at once: they start from a canvas of "
        "mask tokens and, step by step, commit the tokens they are most sure of. The server "
        "packs many such canvases into one batch, so a slow request never blocks a fast one.",
    ),
    (
        "german",
        "Größere Bäume über dem Fluss blühen früh; die Straße ist nass. Maß, Fuß, Grüße! "
        "ÄRGER, ÖL, ÜBEL, STRASSE, GROẞ.",
    ),
    (
        "chinese",
        "扩散语言模型通过逐步去除掩码来生成文本。今天天气很好，我们去公园散步吧！（测试：１２３）",
    ),
    (
        "japanese",
        "拡散モデルはテキストを少しずつ生成します。ひらがなとカタカナと漢字が混ざった文です。"
        "ｶﾀｶﾅの半角もあります。「東京」へ行きましょう！",
    ),
    ("arabic", "نماذج الانتشار تولد النص خطوة بخطوة. مرحبا بالعالم! الرقم ١٢٣٤٥ والنسبة ٣٫٥٪"),
    (
        "hindi",
        "प्रसार मॉडल पाठ को चरण दर चरण उत्पन्न करते हैं। नमस्ते दुनिया! "
        "क्षत्रिय, ज्ञान, हिन्दी। १२३",
    ),
    (
        "korean_thai",
        "안녕하세요, 세계! 확산 모델입니다. สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    ),
    ("cyrillic_greek", "Привет, мир! Ёлка и ЙОД. Καλημέρα κόσμε· ΣΊΣΥΦΟΣ, ὦ φίλε;"),
    (
        "emoji",
        "family 👩‍👩‍👧‍👦 thumbs 👍🏽👍🏿 flags 🇩🇪🇯🇵 heart ❤️ keycap 1️⃣ "
        "rainbow 🏳️‍🌈 tech 🧑🏾‍💻 done✅",
    ),
    ("single_emoji", "🙂"),
    (
        "combining_marks",
        "decomposed e\u0301 vs precomposed \u00e9; A\u030a vs \u00c5; n\u0303 vs \u00f1; "
        "stacked a\u0300\u0301\u0302\u0303; jamo \u1100\u1161\u11a8 vs \uac01; "
        "angstrom \u212b ohm \u2126 compat \uf900 ligature \ufb01",
    ),
    ("whitespace_runs", "a    b\t\t\tc\n\n\nd \r\n\r\ne\r\r\n \t \n  f \n\n  \t\tg     "),
    ("long_space_run", " " * 40 + "x" + "\t" * 12 + "y" + "\n" * 12 + "z" + " \n" * 6),
    ("crlf_lines", "first line\r\nsecond line\r\n\r\nthird\rfourth\n\r\n"),
    ("trailing_spaces", "trailing spaces   "),
    ("leading_spaces", "   leading spaces"),
    (
        "numbers",
        "1234567890 3.14159 1,000,000 -42 +7 0x1F 2024-06-01 12:30:45 1e-9 "
        "00012 9999999999999999 ١٢٣ ४५६ ໑໒ ²³ ½ Ⅻ 𝟙𝟚𝟛",
    ),
    (
        "contractions",
        "it's WE'LL don't I'M they've she'd you're Y'ALL O'Neil rock'n'roll 'tis "
        "it’s IT'S It'S it'ſ we'Re",
    ),
    ("special_inline", "hello<|endoftext|>world"),
    ("chatml_turn", "<|im_start|>user\nhi<|im_end|>"),
    ("special_start_end", "<|endoftext|>starts and ends with a special<|endoftext|>"),
    ("special_adjacent", "<|endoftext|><|endoftext|> and <|im_end|><|im_start|>"),
    ("special_prefix_only", "text <|endof and <|im_ and <| and |> and <|endoftext|"),
    (
        "llada_chat",
        "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<|mdm_mask|><|mdm_mask|> 4<|mdm_mask|>",
    ),
    (
        "qwen_added_tokens",
        '<tool_call>   {"name": "f"}\n</tool_call>  <tool_call>\nx\n<|mask|><|mask|> a<|mask|>b',
    ),
    (
        "single_word_token",
        "café cafés xcafé café. (café) cafe\u0301 CAFÉ café_ 1café café1 caféé",
    ),
    ("empty", ""),
    ("lone_space", " "),
    ("bom", "\ufeffHello \ufeffworld a\ufeffb"),
    ("nbsp", "100\u00a0km a\u00a0\u00a0b \u00a0"),
    ("ideographic_space", "日本\u3000語 \u3000 x\u3000"),
    ("nel", "line\u0085next \u0085"),
    ("line_separator", "a\u2028b\u2029c \u2028"),
    (
        "unicode_spaces",
        "a\u2003b\u2009c\u200bd\u202fe\u205ff\u180eg\u000bh\u000ci\u1680j\u2000k\u00a0 \t",
    ),
    ("controls", "nul\u0000in the middle, escape \u001b[0m and delete \u007f, bell \u0007"),
    (
        "long_words",
        "supercalifragilisticexpialidocious" * 3
        + " "
        + "a" * 200
        + " "
        + "=" * 100
        + " "
        + "ab" * 60,
    ),
    ("mixed_scripts", "abc日本語123défПривет🙂x٣ab\u0301c"),
    ("astral", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀀𠀁 𓀀 🀄 \U000e0041 \U0010fffd"),
]


def corpus_entries() -> list[dict]:
    """The corpus.json list: the hand-written texts, then the large entry described, not stored."""
    entries = [{"name": name, "text": text} for name, text in CORPUS]
    entries.append({"name": LARGE_NAME, "construction": LARGE_CONSTRUCTION})
    return entries


def build_large_text(entries: list[dict]) -> str:
    """Rebuilds the large entry from the corpus entries, exactly as LARGE_CONSTRUCTION says."""
    joined = "\n".join(e["text"] for e in entries if "text" in e)
    n = len(joined.encode("utf-8"))
    repeats = -(-LARGE_MIN_BYTES // n)
    return joined * repeats


def ids_digest(ids: list[int]) -> str:
    return hashlib.sha256(struct.pack(f"<{len(ids)}i", *ids)).hexdigest()


# Characters a reader cannot tell from their NFC forms: script-neutral combining marks, variation
# selectors, conjoining Hangul jamo, letterlike symbols, CJK compatibility ideographs, ligatures.
# The vowel signs of Devanagari, Thai and the like stay literal: they read naturally in context.
_LOOKALIKE_BLOCKS = [
    (0x0300, 0x036F),
    (0x1100, 0x11FF),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0x2100, 0x214F),
    (0xF900, 0xFAFF),
    (0xFB00, 0xFB4F),
    (0xFE00, 0xFE0F),
    (0xFE20, 0xFE2F),
]


def _is_lookalike(ch: str) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in _LOOKALIKE_BLOCKS)


def _escape_invisible(text: str) -> str:
    """A JSON scalar with invisible or combining characters written as \\u escapes.

    Keeps CJK, accents and emoji readable in the fixtures while making the characters a reviewer
    could not see (format, separators, marks, odd spaces) explicit. Outside strings json.dumps
    writes only ASCII punctuation, so escaping afterwards cannot change the value.
    """
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if (
            cat in ("Cc", "Cf", "Zl", "Zp", "Co")
            or (cat == "Zs" and ch != " ")
            or _is_lookalike(ch)
        ):
            cp = ord(ch)
            if cp > 0xFFFF:
                cp -= 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)))
            else:
                out.append("\\u%04x" % cp)
        else:
            out.append(ch)
    return "".join(out)


def dump_json(value) -> str:
    """Two-space JSON, one line per list element: ids lists stay on one line, diffs stay small."""

    def render(v, indent: str) -> str:
        inner = indent + "  "
        if isinstance(v, dict) and v:
            items = [f"{inner}{json.dumps(k)}: {render(x, inner)}" for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + indent + "}"
        if isinstance(v, list) and v and any(isinstance(x, (dict, list)) for x in v):
            items = [inner + render(x, inner) for x in v]
            return "[\n" + ",\n".join(items) + "\n" + indent + "]"
        if isinstance(v, list):
            return json.dumps(v, separators=(",", ":"))
        return _escape_invisible(json.dumps(v, ensure_ascii=False))

    return render(value, "") + "\n"


# ---------------------------------------------------------------------------------------------
# Tokenizer definitions


def _added(content: str, special: bool, normalized: bool | None = None, **options) -> AddedToken:
    # Special tokens are matched on the raw text (normalized=False), as every real checkpoint does.
    normalized = not special if normalized is None else normalized
    return AddedToken(content, special=special, normalized=normalized, **options)


def _llada_style() -> tuple[Tokenizer, list[AddedToken], dict]:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    added = [
        _added(t, special=True)
        for t in (
            "<|startoftext|>",
            "<|endoftext|>",
            "<|mdm_mask|>",
            "<|eot_id|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
        )
    ]
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "mask_token": "<|mdm_mask|>",
        "chat_template": LLADA_CHAT_TEMPLATE,
        "model_max_length": 4096,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return tok, added, config


def _qwen2_style() -> tuple[Tokenizer, list[AddedToken], dict]:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # As Qwen2 writes it; a ByteLevel post-processor only trims offsets and never changes ids.
    tok.post_processor = processors.ByteLevel(
        add_prefix_space=False, trim_offsets=False, use_regex=False
    )
    added = [
        _added("<|endoftext|>", special=True),
        _added("<|im_start|>", special=True),
        _added("<|im_end|>", special=True),
        _added("<|mask|>", special=True),
        # Non-special: kept by decode(skip_special_tokens=True). rstrip swallows the whitespace
        # after it; normalized=False, so it is matched on the raw text before NFC.
        _added("<tool_call>", special=False, rstrip=True, normalized=False),
        _added("</tool_call>", special=False, lstrip=True, normalized=False),
        # Non-special, single_word, and normalized=True: matched on the NFC text, so a decomposed
        # "cafe\u0301" matches too. Its content is not ASCII, which the byte-level decoder must
        # handle.
        _added("café", special=False, single_word=True),
    ]
    config = {
        "add_bos_token": False,
        "add_eos_token": False,
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "mask_token": "<|mask|>",
        "chat_template": CHATML_CHAT_TEMPLATE,
        "model_max_length": 32768,
        "tokenizer_class": "Qwen2Tokenizer",
    }
    return tok, added, config


def _gpt2_style() -> tuple[Tokenizer, list[AddedToken], dict]:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    added = [_added("<|endoftext|>", special=True)]
    config = {
        "add_bos_token": False,
        "add_eos_token": False,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": None,
        "model_max_length": 1024,
        "tokenizer_class": "GPT2Tokenizer",
    }
    return tok, added, config


def _gpt2_prefix_digits() -> tuple[Tokenizer, list[AddedToken], dict]:
    tok, added, config = _gpt2_style()
    tok.model = models.BPE(ignore_merges=True)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
        ]
    )
    return tok, added, config


# Whole words of the corpus given their own id in gpt2-prefix-digits, above the trained vocabulary
# and with no merge path to them: only `ignore_merges: true` can emit them (a pre-token that is
# itself in the vocab is taken whole), as happens with Llama-3's vocab. A trained vocab alone never
# shows the difference, since every trained token is reachable through the merges. Candidates the
# training already made whole tokens are skipped.
WHOLE_WORDS = [" Straße", " Fluss", " мир", " Καλημέρα", " Grüße", " ΣΊΣΥΦΟΣ", " ज्ञान", " 東京"]


def _add_whole_words(tok: Tokenizer) -> None:
    model = json.loads(tok.to_str())["model"]
    vocab = model["vocab"]
    added = 0
    for word in WHOLE_WORDS:
        # The vocab holds byte-level strings: the word's UTF-8 bytes mapped to printable chars.
        [(byte_level, _)] = pre_tokenizers.ByteLevel(
            add_prefix_space=False, use_regex=False
        ).pre_tokenize_str(word)
        if byte_level not in vocab:
            vocab[byte_level] = len(vocab)
            added += 1
    assert added >= 3, "pick WHOLE_WORDS the training does not merge whole"
    tok.model = models.BPE(vocab, [tuple(m) for m in model["merges"]], ignore_merges=True)


TOKENIZERS = {
    "llada-style": _llada_style,
    "qwen2-style": _qwen2_style,
    "gpt2-style": _gpt2_style,
    "gpt2-prefix-digits": _gpt2_prefix_digits,
}


# Python files of the repository added to the training text, listed rather than globbed so that
# new files do not retrain the tokenizers and change every id. When one of these is edited,
# --check says so and compares what does not depend on training; regenerating then changes ids.
TRAINING_FILES = [
    "bench/torch_reference.py",
    "tools/gen_golden.py",
    "tools/llada_reference.py",
    "tools/make_tiny_model.py",
]


def training_texts() -> tuple[list[str], list[str], str]:
    """The texts the BPE is trained on, the files among them, and a digest of it all."""
    texts = [text for _, text in CORPUS]
    texts += [(ROOT / f).read_text(encoding="utf-8") for f in TRAINING_FILES]
    digest = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()
    return texts, TRAINING_FILES, digest


def build_tokenizer(name: str, texts: list[str]) -> tuple[Tokenizer, dict]:
    tok, added, config = TOKENIZERS[name]()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    if name == "gpt2-prefix-digits":
        _add_whole_words(tok)
    # Added after training so they get ids above the BPE vocabulary, like the real checkpoints.
    tok.add_special_tokens([t for t in added if t.special])
    tok.add_tokens([t for t in added if not t.special])
    model_size = tok.get_vocab_size(with_added_tokens=False)
    # An added token already in the BPE vocab would reuse that id: not the layout we mean to test.
    assert all(tok.token_to_id(t.content) >= model_size for t in added), name
    if name == "llada-style":
        bos = "<|startoftext|>"
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A {bos} $B:1",
            special_tokens=[(bos, tok.token_to_id(bos))],
        )
    decoder = {}
    for t in added:
        decoder[str(tok.token_to_id(t.content))] = {
            "content": t.content,
            "lstrip": t.lstrip,
            "normalized": t.normalized,
            "rstrip": t.rstrip,
            "single_word": t.single_word,
            "special": t.special,
        }
    config = {"added_tokens_decoder": decoder, **config, "clean_up_tokenization_spaces": False}
    return tok, config


def tokenizer_json(name: str, tok: Tokenizer) -> str:
    text = tok.to_str(pretty=True)
    if name == "qwen2-style":
        # Qwen2 checkpoints carry merges in the legacy "a b" string form; HF now writes pairs.
        data = json.loads(text)
        data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
        text = json.dumps(data, ensure_ascii=False, indent=2)
    return text


# ---------------------------------------------------------------------------------------------
# Fixtures


def expected_cases(tok: Tokenizer, entries: list[dict]) -> list[dict]:
    cases = []
    for entry in entries:
        if entry["name"] == LARGE_NAME:
            text = build_large_text(entries)
            ids = tok.encode(text, add_special_tokens=True).ids
            plain = tok.encode(text, add_special_tokens=False).ids
            cases.append(
                {
                    "name": LARGE_NAME,
                    "bytes": len(text.encode("utf-8")),
                    "ids_count": len(ids),
                    "ids_sha256": ids_digest(ids),
                    "ids_no_special_count": len(plain),
                    "ids_no_special_sha256": ids_digest(plain),
                }
            )
            continue
        text = entry["text"]
        ids = tok.encode(text, add_special_tokens=True).ids
        plain = tok.encode(text, add_special_tokens=False).ids
        cases.append(
            {
                "name": entry["name"],
                "ids": ids,
                "ids_no_special": plain,
                "decoded": tok.decode(plain, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
        )
    return cases


def _expected_block(tok: Tokenizer, entries: list[dict]) -> dict:
    return {
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "model_vocab_size": tok.get_vocab_size(with_added_tokens=False),
        "cases": expected_cases(tok, entries),
    }


def generate() -> dict[str, str]:
    """All fixture files as {path relative to FIXTURE_DIR: text}."""
    entries = corpus_entries()
    texts, files, digest = training_texts()
    out = {"corpus.json": dump_json(entries)}
    expected = {
        "generator": "tools/gen_tokenizer_golden.py",
        "tokenizers_version": TOKENIZERS_VERSION,
        "training": {"sha256": digest, "vocab_size": VOCAB_SIZE, "files": files},
        "tokenizers": {},
    }
    for name in TOKENIZERS:
        tok, config = build_tokenizer(name, texts)
        out[f"{name}/tokenizer.json"] = tokenizer_json(name, tok)
        out[f"{name}/tokenizer_config.json"] = json.dumps(
            config, ensure_ascii=False, indent=2, sort_keys=True
        )
        # The committed file is what the C++ side loads, so the expectations come from reloading it.
        reloaded = Tokenizer.from_str(out[f"{name}/tokenizer.json"])
        expected["tokenizers"][name] = _expected_block(reloaded, entries)
    out["expected.json"] = dump_json(expected)
    return {rel: text if text.endswith("\n") else text + "\n" for rel, text in out.items()}


def _without_learned_parts(text: str) -> dict:
    data = json.loads(text)
    data["model"]["vocab"] = data["model"]["merges"] = None
    return data


def check(fresh: dict[str, str]) -> int:
    committed_expected = json.loads((FIXTURE_DIR / "expected.json").read_text(encoding="utf-8"))
    fresh_expected = json.loads(fresh["expected.json"])
    same_sources = committed_expected["training"]["sha256"] == fresh_expected["training"]["sha256"]
    if not same_sources:
        print(
            "note: the training sources (corpus or repository Python files) changed since the "
            "fixtures were written; tokenizer.json vocab and merges are not compared, and "
            "expected.json is recomputed from the committed tokenizer.json files"
        )
    if committed_expected["tokenizers_version"] != TOKENIZERS_VERSION:
        print(
            "note: fixtures were written with tokenizers "
            f"{committed_expected['tokenizers_version']}, this is {TOKENIZERS_VERSION}"
        )
    failures = 0
    for rel, text in fresh.items():
        path = FIXTURE_DIR / rel
        if not path.exists():
            print(f"MISSING {path.relative_to(ROOT)}")
            failures += 1
            continue
        committed = path.read_text(encoding="utf-8")
        if rel.endswith("/tokenizer.json") and not same_sources:
            same = _without_learned_parts(committed) == _without_learned_parts(text)
        elif rel == "expected.json":
            same = _check_expected(committed_expected, fresh_expected, same_sources)
        else:
            same = committed == text
        if not same:
            print(f"DIFFERS {path.relative_to(ROOT)}")
            failures += 1
    print("ok" if failures == 0 else f"{failures} file(s) differ; rerun without --check")
    return 1 if failures else 0


def _check_expected(committed: dict, fresh: dict, same_sources: bool) -> bool:
    """Names what differs. With unchanged training sources the retrained fixtures must match
    exactly; otherwise expected.json must agree with the committed tokenizer.json files."""
    if not same_sources:
        entries = json.loads((FIXTURE_DIR / "corpus.json").read_text(encoding="utf-8"))
        blocks = {}
        for name in committed["tokenizers"]:
            tok = Tokenizer.from_file(str(FIXTURE_DIR / name / "tokenizer.json"))
            blocks[name] = _expected_block(tok, entries)
        fresh = dict(fresh, training=committed["training"], tokenizers=blocks)
    ok = True
    # A new tokenizers release that still gives the same ids is not a difference (main notes it).
    for key in sorted((set(committed) | set(fresh)) - {"tokenizers", "tokenizers_version"}):
        if committed.get(key) != fresh.get(key):
            print(f"  {key} differs")
            ok = False
    for name in sorted(set(committed["tokenizers"]) | set(fresh["tokenizers"])):
        want = committed["tokenizers"].get(name, {})
        got = fresh["tokenizers"].get(name, {})
        if {k: v for k, v in want.items() if k != "cases"} != {
            k: v for k, v in got.items() if k != "cases"
        }:
            print(f"  {name}: vocabulary sizes differ")
            ok = False
        want_cases = {c["name"]: c for c in want.get("cases", [])}
        got_cases = {c["name"]: c for c in got.get("cases", [])}
        for case in sorted(set(want_cases) | set(got_cases)):
            if want_cases.get(case) != got_cases.get(case):
                print(f"  {name}/{case} differs")
                ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    fresh = generate()
    if args.check:
        return check(fresh)
    for rel, text in fresh.items():
        path = FIXTURE_DIR / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)} ({len(text.encode('utf-8'))} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
