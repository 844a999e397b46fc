#!/usr/bin/env python3
"""The cost of editing: 16 refine sessions that each remask two tokens every 4 steps against 16
plain generations of the same settings, on one `sculpt serve`, in the same run (rounds
alternate, so both see the same machine state).

Each round starts its 16 streams together and times until the last final event. Tokens/s counts
the answers' tokens; a remasked token is denoised again but counted once, so the ratio is what
editing costs a user in throughput. The sessions open as the plain requests do and send their
script (at_step 4, 8, ...) right after; a step of 16 streams takes far longer than the script
takes to arrive, so every round applies the same edits at the same steps (the table counts
them: an edit that came late would be refused and missing). Then (--flood) one plain
generation alone and next to a session that receives 10,000 edits per second.

Usage: bench/run_refine_bench.sh (builds, then runs this with the built binary).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import queue
import statistics
import sys
import threading
import time

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration/python"))

SETTINGS = dict(prompt="def fibonacci(n):", gen_length=64, steps=32, block_length=32)
EDIT_EVERY = 4


def script(pb, steps: int) -> list:
    """Remask two answer tokens at every EDIT_EVERY-th step boundary."""
    edits = []
    for k, at in enumerate(range(EDIT_EVERY, steps, EDIT_EVERY)):
        position = (k * 9) % (SETTINGS["gen_length"] - 2)
        edits.append(pb.Edit(at_step=at, remask=pb.Remask(position=position, length=2)))
    return edits


def refine_stream(pb, stub, seed: int, edits: list):
    outbox: queue.Queue = queue.Queue()
    outbox.put(pb.RefineRequest(open=pb.GenerateRequest(seed=seed, **SETTINGS), start_paused=True))
    for edit in edits:
        outbox.put(pb.RefineRequest(edit=edit))
    outbox.put(pb.RefineRequest(edit=pb.Edit(resume=pb.Resume())))
    outbox.put(None)

    def messages():
        while (message := outbox.get()) is not None:
            yield message

    final = None
    applied = 0
    for event in stub.Refine(messages(), timeout=600):
        kind = event.WhichOneof("event")
        if kind == "edit" and event.edit.code == 0 and event.edit.kind == "remask":
            applied += 1
        elif kind == "final":
            final = event.final
    return final, applied


def plain_stream(pb, stub, seed: int):
    final = None
    for event in stub.Generate(pb.GenerateRequest(seed=seed, **SETTINGS), timeout=600):
        if event.WhichOneof("event") == "final":
            final = event.final
    return final, 0


def flood_round(pb, stub, rate: int, seconds: float) -> dict:
    """One plain generation alone, then again while another session receives `rate` edits per
    second (remasks, from a thread of this process), for `seconds` at most."""
    start = time.monotonic()
    plain_stream(pb, stub, 1)
    alone = time.monotonic() - start
    outbox: queue.Queue = queue.Queue()
    outbox.put(pb.RefineRequest(open=pb.GenerateRequest(seed=0, **dict(SETTINGS, steps=1 << 16))))
    stop = threading.Event()

    def messages():
        while (message := outbox.get()) is not None:
            yield message

    call = stub.Refine(messages())

    def drain():
        try:
            for _ in call:
                pass
        except grpc.RpcError:  # the cancel below
            pass

    threading.Thread(target=drain, daemon=True).start()

    def flood():
        sent, begin = 0, time.monotonic()
        while not stop.is_set() and time.monotonic() - begin < seconds:
            outbox.put(
                pb.RefineRequest(edit=pb.Edit(remask=pb.Remask(position=sent % 60, length=1)))
            )
            sent += 1
            if sent % 100 == 0:
                time.sleep(max(0.0, begin + sent / rate - time.monotonic()))

    flooder = threading.Thread(target=flood)
    flooder.start()
    time.sleep(0.2)
    start, client_cpu = time.monotonic(), time.process_time()
    plain_stream(pb, stub, 1)
    flooded = time.monotonic() - start
    # The flooding client runs on the same cores as the server: its own CPU time is a share of
    # the slowdown that a client on another machine would not cause.
    client_cpu = time.process_time() - client_cpu
    stop.set()
    flooder.join()
    call.cancel()
    return dict(alone_s=alone, flooded_s=flooded, client_cpu_s=client_cpu)


def run_round(sessions: int, run_one) -> dict:
    results = [None] * sessions
    barrier = threading.Barrier(sessions + 1)

    def client(index: int):
        barrier.wait()
        results[index] = run_one(index)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.monotonic()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    tokens = sum(len(final.token_ids) for final, _ in results)
    steps = sum(final.usage.steps for final, _ in results)
    edits = sum(applied for _, applied in results)
    return dict(
        seconds=elapsed, tokens=tokens, tokens_per_s=tokens / elapsed, steps=steps, edits=edits
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sculpt", required=True, help="the sculpt binary")
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="build/refine-bench.jsonl")
    parser.add_argument(
        "--flood", type=int, default=10_000, help="edits/s of the flooding session (0: skip)"
    )
    args = parser.parse_args()

    import os

    os.environ["SCULPT_BINARY"] = args.sculpt
    from sculpt_server import Server, pb

    server = Server(
        "--max-num-seqs", str(args.sessions), model=pathlib.Path(args.model), threads=args.threads
    )
    try:
        stub = server.stub
        edits = script(pb, SETTINGS["steps"])
        # Warm-up: one of each, so neither measured round pays for first-touch costs.
        plain_stream(pb, stub, 0)
        refine_stream(pb, stub, 0, edits)
        rows = {"plain": [], "refine": []}
        for _ in range(args.rounds):
            rows["plain"].append(run_round(args.sessions, lambda i: plain_stream(pb, stub, i)))
            rows["refine"].append(
                run_round(args.sessions, lambda i: refine_stream(pb, stub, i, edits))
            )
        floods = [
            flood_round(pb, stub, args.flood, 30.0) for _ in range(args.rounds if args.flood else 0)
        ]
    finally:
        server.stop()

    summary = {}
    for name, measured in rows.items():
        summary[name] = dict(
            tokens_per_s=statistics.median(r["tokens_per_s"] for r in measured),
            steps=measured[0]["steps"],
            edits=measured[0]["edits"],
        )
    ratio = summary["refine"]["tokens_per_s"] / summary["plain"]["tokens_per_s"]
    print(f"{args.sessions} streams, {SETTINGS}, {args.rounds} rounds (median)")
    print(f"{'':8} {'tokens/s':>10} {'steps':>7} {'edits':>6}")
    for name, row in summary.items():
        print(f"{name:8} {row['tokens_per_s']:10.1f} {row['steps']:7d} {row['edits']:6d}")
    print(f"refine / plain tokens/s: {ratio:.3f}")
    if floods:
        alone = statistics.median(f["alone_s"] for f in floods)
        flooded = statistics.median(f["flooded_s"] for f in floods)
        print(
            f"one generation alone {alone:.3f} s, next to {args.flood} edits/s {flooded:.3f} s: "
            f"{flooded / alone:.2f}x (the flooding client itself used "
            f"{statistics.median(f['client_cpu_s'] for f in floods):.3f} CPU s meanwhile)"
        )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(
            json.dumps(
                dict(
                    settings=SETTINGS,
                    sessions=args.sessions,
                    rows=rows,
                    summary=summary,
                    ratio=ratio,
                    floods=floods,
                )
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
