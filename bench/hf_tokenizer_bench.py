#!/usr/bin/env python3
"""Encode throughput of HF `tokenizers` on the tokenizer fixtures: the peer for Sculpt's tokenizer.

Encodes, on one thread, (a) the 1 MB "large" text of tests/tokenizers/corpus.json in one call and
(b) the corpus entries one `encode` call each, and prints one JSON line per workload:
{"peer","version","tokenizer","workload","bytes","tokens","repeats","median_s","mb_per_s"}
(MB = 10^6 bytes of UTF-8 input; median over --repeats timed runs after --warmup untimed ones).
"""

from __future__ import annotations

import os

# Before the import: the thread pool is sized when tokenizers loads. encode() of one text is
# sequential anyway; this keeps any helper threads from skewing a one-thread comparison.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import tokenizers  # noqa: E402
from gen_tokenizer_golden import build_large_text  # noqa: E402


def time_encode(tok, texts: list[str], add_special: bool, warmup: int, repeats: int):
    """Median seconds to encode every text once, and the number of ids produced."""
    tokens = 0
    for _ in range(warmup):
        tokens = sum(len(tok.encode(t, add_special_tokens=add_special).ids) for t in texts)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for t in texts:
            tok.encode(t, add_special_tokens=add_special)
        times.append(time.perf_counter() - start)
    return statistics.median(times), tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tokenizer",
        default=str(ROOT / "tests" / "tokenizers" / "llada-style"),
        help="directory holding tokenizer.json",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--entries-rounds",
        type=int,
        default=100,
        help="passes over the corpus entries per timed run, so one run is long enough to time",
    )
    parser.add_argument("--no-special-tokens", action="store_true", help="skip the post-processor")
    args = parser.parse_args()

    tok_dir = pathlib.Path(args.tokenizer)
    tok = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    entries = json.loads((ROOT / "tests" / "tokenizers" / "corpus.json").read_text("utf-8"))
    texts = [e["text"] for e in entries if "text" in e]
    workloads = {
        "large": [build_large_text(entries)],
        "entries": texts * args.entries_rounds,
    }
    for workload, batch in workloads.items():
        median_s, tokens = time_encode(
            tok, batch, not args.no_special_tokens, max(args.warmup, 1), args.repeats
        )
        n_bytes = sum(len(t.encode("utf-8")) for t in batch)
        result = {
            "peer": "hf-tokenizers",
            "version": tokenizers.__version__,
            "tokenizer": tok_dir.name,
            "workload": workload,
            "bytes": n_bytes,
            "tokens": tokens,
            "repeats": args.repeats,
            "median_s": round(median_s, 6),
            "mb_per_s": round(n_bytes / 1e6 / median_s, 3),
        }
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
