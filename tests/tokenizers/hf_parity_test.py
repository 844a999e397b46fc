#!/usr/bin/env python3
"""Checks `sculpt tokenize` / `sculpt detokenize` against HF `tokenizers` on a random corpus.

For every tests/tokenizers/<name>/tokenizer.json it encodes a seeded random corpus (many scripts,
odd whitespace, special tokens spliced in) with the Sculpt CLI and with HF, with and without the
post-processor, then decodes id lists both ways, with and without skipping special tokens.
Usage: hf_parity_test.py --sculpt BUILD/sculpt [--seed N] [--count N]. Exits 77 (CTest's skip code)
when `tokenizers` is not installed, 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import subprocess
import sys
import tempfile
import unicodedata

HERE = pathlib.Path(__file__).resolve().parent
SKIP = 77
SHOW = 5

# Ranges of code points assigned since early Unicode versions, so a C++ table built from a newer
# Unicode release classifies them exactly as HF's regex engine does; holes are filtered out below.
SCRIPTS = {
    "latin": [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xFF), (0x100, 0x17F)],
    "cyrillic": [(0x400, 0x45F)],
    "greek": [(0x391, 0x3A9), (0x3AC, 0x3CE)],
    "cjk": [(0x4E00, 0x9FA5), (0x20000, 0x2A6D6)],
    "hangul": [(0xAC00, 0xD7A3), (0x1100, 0x1112), (0x1161, 0x1175), (0x11A8, 0x11C2)],
    "kana": [(0x3041, 0x3094), (0x30A1, 0x30FA), (0xFF66, 0xFF9D)],
    "arabic": [(0x621, 0x63A), (0x641, 0x652)],
    "devanagari": [(0x905, 0x939), (0x93E, 0x94D)],
    "thai": [(0xE01, 0xE3A), (0xE40, 0xE4E)],
    "math_letters": [(0x1D400, 0x1D4FF)],
}
COMBINING = [(0x300, 0x36F)]
DIGITS = [(0x30, 0x39), (0x660, 0x669), (0x966, 0x96F), (0xE50, 0xE59), (0xFF10, 0xFF19)]
OTHER_NUMBERS = "²³¹¼½¾ⅠⅡⅫⅰ①②⑳" + "".join(map(chr, range(0x1D7CE, 0x1D7FF)))
# White_Space characters (HF's regex \s is exactly these), then look-alikes that are not: Python's
# str.isspace accepts U+001C..U+001F, and U+180E was a space before Unicode 6.3 (PCRE2's \h and
# so its \s still match it).
SPACES = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
SPACES += "\u2028\u2029\u202f\u205f\u3000"
NOT_SPACES = "\u200b\ufeff\u180e\u2060\x1c\x1d\x1e\x1f"
PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" + "“”‘’«»—–…¡¿、。，！？「」・"
CONTROLS = "".join(map(chr, list(range(0, 9)) + [0x7F] + list(range(0x80, 0x85))))
ODD = "\ue000\uf8ff\ufffd\ufffe\uffff\U0010ffff\U000e0001\U000e0041"
EMOJI = [(0x1F600, 0x1F64F), (0x1F300, 0x1F5FF), (0x1F680, 0x1F6C5)]
SKIN_TONES = [chr(c) for c in range(0x1F3FB, 0x1F400)]
ZWJ, VS16 = "\u200d", "\ufe0f"
CONTRACTIONS = ["s", "t", "re", "ve", "m", "ll", "d", "S", "T", "RE", "Ve", "LL", "D", "ſ"]
WORDS = (
    "the model token mask canvas diffusion step block server request batch a of and to in".split()
)
# Pieces of special tokens that must stay plain text.
PREFIXES = ["<|endof", "<|im_", "<|", "|>", "<tool", "</tool_call", "caf", "cafe\u0301", "<|mdm_"]


def _expand(ranges) -> list[str]:
    chars = [chr(c) for lo, hi in ranges for c in range(lo, hi + 1)]
    return [c for c in chars if unicodedata.category(c) != "Cn"]


def random_corpus(seed: int, count: int, specials: list[str]) -> list[str]:
    rng = random.Random(seed)
    scripts = {name: _expand(ranges) for name, ranges in SCRIPTS.items()}
    combining, digits, emoji = _expand(COMBINING), _expand(DIGITS), _expand(EMOJI)

    def word() -> str:
        pool = scripts[rng.choice(sorted(scripts))]
        return "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))

    def emoji_seq() -> str:
        parts = [rng.choice(emoji) + (rng.choice(SKIN_TONES) if rng.random() < 0.3 else "")]
        while rng.random() < 0.4:
            parts.append(rng.choice(emoji))
        return ZWJ.join(parts) + (VS16 if rng.random() < 0.2 else "")

    pieces = [
        (20, word),
        (10, lambda: " " + rng.choice(WORDS)),
        (12, lambda: "".join(rng.choice(SPACES) for _ in range(rng.randint(1, 6)))),
        (6, lambda: " " * rng.randint(1, 12)),
        (6, lambda: rng.choice(["\n", "\r\n", "\n\n", "\r"]) * rng.randint(1, 3)),
        (3, lambda: rng.choice(NOT_SPACES)),
        (8, lambda: "".join(rng.choice(digits) for _ in range(rng.randint(1, 9)))),
        (2, lambda: rng.choice(OTHER_NUMBERS)),
        (8, lambda: rng.choice(PUNCT) * rng.randint(1, 3)),
        (5, lambda: rng.choice("'’") + rng.choice(CONTRACTIONS)),
        (5, lambda: rng.choice(combining) * rng.randint(1, 3)),
        (5, emoji_seq),
        (6, lambda: rng.choice(specials)),
        (3, lambda: rng.choice(PREFIXES)),
        (2, lambda: rng.choice(CONTROLS)),
        (1, lambda: rng.choice(ODD)),
    ]
    weights = [w for w, _ in pieces]
    makers = [m for _, m in pieces]

    corpus = []
    for _ in range(count):
        # Short strings are where edge cases (empty, lone specials, a single space) live.
        length = rng.randint(0, 12) if rng.random() < 0.3 else rng.randint(0, 300)
        text = ""
        while len(text) < length:
            text += rng.choices(makers, weights)[0]()
        corpus.append(text[:length])
    return corpus


def random_id_lists(seed: int, count: int, vocab_size: int) -> list[list[int]]:
    """Id lists no encoder would produce: split UTF-8 sequences, specials anywhere."""
    rng = random.Random(seed)
    return [[rng.randrange(vocab_size) for _ in range(rng.randint(0, 24))] for _ in range(count)]


def write_jsonl(path: pathlib.Path, values) -> None:
    # Alternate escaped and raw UTF-8 lines so both JSON string forms reach the CLI.
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for i, v in enumerate(values):
            f.write(json.dumps(v, ensure_ascii=i % 2 == 0) + "\n")


def run_cli(argv: list[str], key: str, expected_lines: int) -> tuple[list | None, str]:
    """The CLI's per-line results, or None and a reason when the run itself failed."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        return None, "timed out after 600 s"
    except OSError as e:
        return None, f"cannot run: {e}"
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace")[-2000:]
        return None, f"exit {proc.returncode}: {tail}"
    # Only "\n" ends a line: str.splitlines() would also split at U+2028, U+0085 and the like,
    # which a JSON string may carry unescaped.
    lines = proc.stdout.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != expected_lines:
        return None, f"{len(lines)} output lines for {expected_lines} inputs"
    try:
        return [json.loads(line)[key] for line in lines], ""
    except (ValueError, KeyError, TypeError) as e:
        return None, f"bad output line: {e}"


def _show(values) -> str:
    """A value for a mismatch report; long lists are cut, with their length."""
    if isinstance(values, list) and len(values) > 48:
        return f"{values[:48]!r}... ({len(values)} ids)"
    return repr(values)


def _first_difference(a: list, b: list) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo = max(0, i - 6)
    window = f"[{lo}:{i + 6}]"
    return f"first difference at index {i}: hf{window}={a[lo:i + 6]} sculpt{window}={b[lo:i + 6]}"


class Tally:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.shown = 0
        self.failed_by_label: dict[str, int] = {}

    def compare(self, label: str, inputs: list, want: list, got: list) -> None:
        for inp, w, g in zip(inputs, want, got):
            if w == g:
                self.passed += 1
                continue
            self.failed += 1
            self.failed_by_label[label] = self.failed_by_label.get(label, 0) + 1
            if self.shown < SHOW:
                self.shown += 1
                print(f"MISMATCH {label}\n  input:  {_show(inp)}")
                print(f"  hf:     {_show(w)}\n  sculpt: {_show(g)}")
                if isinstance(w, list) and isinstance(g, list):
                    print(f"  {_first_difference(w, g)}")

    def fail_all(self, label: str, n: int, reason: str) -> None:
        self.failed += n
        self.failed_by_label[label] = self.failed_by_label.get(label, 0) + n
        print(f"FAILED {label}: {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sculpt", required=True, help="path to the sculpt binary")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--count", type=int, default=2000, help="random strings per tokenizer")
    args = parser.parse_args()

    try:
        from tokenizers import Tokenizer
    except ImportError:
        print(
            "SKIPPED: the Python package `tokenizers` is not installed (pip install -r "
            "requirements-dev.txt)"
        )
        return SKIP
    sculpt = pathlib.Path(args.sculpt)
    if not sculpt.is_file():
        print(f"error: no sculpt binary at {sculpt}")
        return 2

    dirs = sorted(p.parent for p in HERE.glob("*/tokenizer.json"))
    hf = {d.name: Tokenizer.from_file(str(d / "tokenizer.json")) for d in dirs}
    specials = sorted(
        {t.content for tok in hf.values() for t in tok.get_added_tokens_decoder().values()}
    )
    corpus = random_corpus(args.seed, args.count, specials)

    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = pathlib.Path(tmp) / "texts.jsonl"
        write_jsonl(texts_file, corpus)
        for d in dirs:
            tok = hf[d.name]
            base = [str(sculpt), "tokenize", "--model", str(d), "--input-jsonl", str(texts_file)]
            for flags, add_special in (([], True), (["--no-special-tokens"], False)):
                label = f"{d.name} tokenize {' '.join(flags)}".rstrip()
                want = [e.ids for e in tok.encode_batch(corpus, add_special_tokens=add_special)]
                got, reason = run_cli(base + flags, "ids", len(corpus))
                if got is None:
                    tally.fail_all(label, len(corpus), reason)
                else:
                    tally.compare(label, corpus, want, got)

            id_lists = [e.ids for e in tok.encode_batch(corpus, add_special_tokens=True)]
            id_lists += random_id_lists(args.seed, len(corpus) // 4, tok.get_vocab_size(True))
            ids_file = pathlib.Path(tmp) / f"{d.name}.ids.jsonl"
            write_jsonl(ids_file, id_lists)
            base = [str(sculpt), "detokenize", "--model", str(d), "--input-jsonl", str(ids_file)]
            for flags, skip in (([], False), (["--skip-special-tokens"], True)):
                label = f"{d.name} detokenize {' '.join(flags)}".rstrip()
                want = tok.decode_batch(id_lists, skip_special_tokens=skip)
                got, reason = run_cli(base + flags, "text", len(id_lists))
                if got is None:
                    tally.fail_all(label, len(id_lists), reason)
                else:
                    tally.compare(label, id_lists, want, got)

    for label, n in tally.failed_by_label.items():
        print(f"  {label}: {n} failed")
    if tally.failed:
        print(f"reproduce with --seed {args.seed} --count {args.count}")
    print(f"{tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
