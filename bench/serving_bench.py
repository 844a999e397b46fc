#!/usr/bin/env python3
"""Serving benchmark: `sculpt serve` under closed-loop gRPC load at several concurrencies, and
the engine's offline batch (bench_offline_batch) as the peer measured in the same run.

Each client sends Complete requests one after another (distinct seeds, identical settings).
Reports aggregate generated tokens/s and p50/p99 request latency per concurrency, then the
ratio of the server's tokens/s at --ratio-clients clients to the offline batch of as many
requests: 1.0 means serving costs nothing over the bare engine.

Usage: bench/run_serving_bench.sh (builds, then runs this with the built binaries).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration/python"))
import os  # noqa: E402

SETTINGS = dict(prompt="def fibonacci(n):", gen_length=64, steps=32, block_length=32)


def percentile(values, q):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def closed_loop(bench: str, clients: int, per_client: int, make_client) -> dict:
    """Each of `clients` threads sends `per_client` requests one after another, all starting
    together. `make_client()` returns a context manager yielding send(seed) -> generated tokens."""
    latencies, tokens = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(index: int):
        with make_client() as send:
            barrier.wait()
            for k in range(per_client):
                start = time.monotonic()
                generated = send(index * 1000 + k)
                elapsed = time.monotonic() - start
                with lock:
                    latencies.append(elapsed)
                    tokens.append(generated)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.monotonic()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - start
    return dict(
        bench=bench,
        clients=clients,
        requests=len(latencies),
        seconds=wall,
        tokens_per_s=sum(tokens) / wall,
        p50_ms=1000 * percentile(latencies, 50),
        p99_ms=1000 * percentile(latencies, 99),
        mean_ms=1000 * statistics.fmean(latencies),
    )


def run_load(stub, pb, clients: int, per_client: int) -> dict:
    """gRPC Complete."""

    @contextlib.contextmanager
    def make_client():
        def send(seed):
            request = pb.GenerateRequest(
                seed=seed, stream_options=pb.StreamOptions(mode=pb.StreamOptions.FINAL_ONLY),
                **SETTINGS,
            )
            return stub.Complete(request, timeout=600).usage.generated_tokens

        yield send

    return closed_loop("serving", clients, per_client, make_client)


def run_http_load(base_url: str, clients: int, per_client: int) -> dict:
    """The same closed loop over HTTP: OpenAI-style non-streaming completions."""
    import httpx

    @contextlib.contextmanager
    def make_client():
        with httpx.Client(base_url=base_url, timeout=600) as http:
            def send(seed):
                body = dict(prompt=SETTINGS["prompt"], max_tokens=SETTINGS["gen_length"],
                            steps=SETTINGS["steps"], block_length=SETTINGS["block_length"],
                            seed=seed)
                reply = http.post("/v1/completions", json=body)
                reply.raise_for_status()
                return reply.json()["usage"]["completion_tokens"]

            yield send

    return closed_loop("serving_http", clients, per_client, make_client)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sculpt", required=True, help="the sculpt binary")
    ap.add_argument("--offline", required=True, help="the bench_offline_batch binary")
    ap.add_argument("--model", default=str(ROOT / "models/sculpt-code-mini"))
    ap.add_argument("--clients", default="1,4,16,64")
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--ratio-clients", type=int, default=16)
    ap.add_argument("--http-clients", type=int, default=16,
                    help="also load the HTTP gateway with this many clients (0 = skip)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "build/serving-bench.jsonl")
    args = ap.parse_args()

    os.environ["SCULPT_BINARY"] = args.sculpt
    from sculpt_server import Server, pb  # noqa: E402  (needs SCULPT_BINARY)

    rows = []
    offline = json.loads(
        subprocess.run(
            [args.offline, "--model", args.model, "--requests", str(args.ratio_clients),
             "--gen-length", str(SETTINGS["gen_length"]), "--steps", str(SETTINGS["steps"]),
             "--block-length", str(SETTINGS["block_length"]), "--prompt", SETTINGS["prompt"],
             "--threads", str(args.threads)],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    rows.append(offline)
    print(json.dumps(offline), flush=True)
    max_clients = max(int(c) for c in args.clients.split(","))
    server = Server(
        "--max-num-seqs", str(max_clients), "--max-num-batched-tokens", "65536",
        "--log-level", "info", model=pathlib.Path(args.model), threads=args.threads,
    )
    try:
        run_load(server.stub, pb, 1, 1)  # warm-up
        for clients in (int(c) for c in args.clients.split(",")):
            row = run_load(server.stub, pb, clients, args.requests_per_client)
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.http_clients:
            # HTTP against gRPC at the same load, alternated so drift hits both alike.
            for _ in range(3):
                for row in (run_load(server.stub, pb, args.http_clients, args.requests_per_client),
                            run_http_load(server.http_url, args.http_clients,
                                          args.requests_per_client)):
                    row["pair"] = True
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        server.stop()
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))

    print(f"\nserving {pathlib.Path(args.model).name}: gen_length {SETTINGS['gen_length']}, "
          f"steps {SETTINGS['steps']}, {args.requests_per_client} requests per client")
    print(f"{'api':>5} {'clients':>8} {'tokens/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
    for row in rows[1:]:
        api = "http" if row["bench"] == "serving_http" else "grpc"
        print(f"{api:>5} {row['clients']:>8} {row['tokens_per_s']:>10.1f} {row['p50_ms']:>9.0f} "
              f"{row['p99_ms']:>9.0f}")
    grpc_rows = [r for r in rows[1:] if r["bench"] == "serving" and not r.get("pair")]
    paired_grpc = [r["tokens_per_s"] for r in rows if r["bench"] == "serving" and r.get("pair")]
    paired_http = [r["tokens_per_s"] for r in rows if r["bench"] == "serving_http"]
    if paired_http:
        print(f"HTTP / gRPC at {args.http_clients} clients (medians of 3 alternated runs): "
              f"{statistics.median(paired_http) / statistics.median(paired_grpc):.2f} (tokens/s)")
    at_ratio = [r for r in grpc_rows if r["clients"] == args.ratio_clients]
    if at_ratio:
        ratio = at_ratio[0]["tokens_per_s"] / offline["tokens_per_s"]
        print(f"offline batch of {args.ratio_clients}: {offline['tokens_per_s']:.1f} tokens/s; "
              f"server at {args.ratio_clients} clients / offline = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
