"""Open connections against `sculpt serve`'s HTTP server, each figure against a peer from the
same run: threads and RSS with N concurrent SSE streams open vs the same server idle, and the
latency of normal completions while a slowloris crowd holds connections vs without it.

    .venv/bin/python3 bench/bench_http_connections.py --sculpt build/sculpt \
        --model tests/models/tiny-llada-text --streams 2000 --crowd 1000

Prints one JSON object. The crowd sends a partial header and a byte every second, reconnecting
when the server's header deadline closes it, as a slowloris attacker does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import threading
import time


def proc_status(pid: int) -> dict:
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return {"threads": int(fields["Threads"]), "rss_mib": int(fields["VmRSS"].split()[0]) / 1024}


def start_server(args) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [args.sculpt, "serve", "--model", args.model, "--grpc-port", "0", "--http-port", "0",
         "--access-log", "off", "--max-num-seqs", "64", "--max-queued-requests",
         str(args.streams + 64), "--http-max-connections", str(args.streams + args.crowd + 256),
         "--threads", str(args.threads)],
        stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        match = re.search(r"over HTTP on [^ ]+:(\d+)", line)
        if match:
            # Keep reading the log: a full pipe would stall the server's logging.
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            return process, int(match.group(1))
    raise RuntimeError("sculpt serve did not start")


def completion_body(tokens: int, steps: int, stream: bool) -> bytes:
    return json.dumps({"prompt": "def f(x):", "max_tokens": tokens, "steps": steps,
                       "stream": stream}).encode()


def request_bytes(body: bytes) -> bytes:
    return (b"POST /v1/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)) + body


async def one_completion(port: int) -> float:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes(completion_body(8, 8, False)))
    await writer.drain()
    reply = await reader.read()
    writer.close()
    if not reply.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(reply[:200])
    return (time.perf_counter() - start) * 1000


async def latencies(port: int, count: int) -> list[float]:
    return [await one_completion(port) for _ in range(count)]


async def open_streams(port: int, count: int, pid: int) -> dict:
    opened = 0
    all_open = asyncio.Event()
    release = asyncio.Event()
    done = 0

    async def stream():
        nonlocal opened, done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes(completion_body(32, 32, True)))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:200])
        opened += 1
        if opened == count:
            all_open.set()
        await release.wait()
        body = await reader.read()
        writer.close()
        if b"[DONE]" in body:
            done += 1

    tasks = [asyncio.create_task(stream()) for _ in range(count)]
    start = time.perf_counter()
    await asyncio.wait_for(all_open.wait(), timeout=600)
    during = proc_status(pid)
    opened_s = time.perf_counter() - start
    release.set()
    await asyncio.gather(*tasks)
    return {"open": during, "seconds_to_open_all": round(opened_s, 2),
            "seconds_to_finish_all": round(time.perf_counter() - start, 2), "completed": done}


async def slowloris(port: int, size: int, stop: asyncio.Event) -> None:
    async def attacker():
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                while not stop.is_set():
                    await asyncio.sleep(1)
                    writer.write(b"X")
                    await writer.drain()
                    if reader.at_eof():
                        break
            except OSError:
                await asyncio.sleep(0.1)

    await asyncio.gather(*[attacker() for _ in range(size)])


def run_crowd(port: int, size: int) -> None:
    asyncio.run(slowloris(port, size, asyncio.Event()))


async def main_async(args) -> dict:
    process, port = start_server(args)
    try:
        await latencies(port, 5)  # warm-up
        idle = proc_status(process.pid)
        streams = await open_streams(port, args.streams, process.pid)
        idle_ms = await latencies(port, args.samples)
        # The crowd runs in a process of its own, so that its thousand sockets do not slow the
        # event loop that times the completions.
        crowd = multiprocessing.Process(target=run_crowd, args=(port, args.crowd), daemon=True)
        crowd.start()
        await asyncio.sleep(3)
        under_crowd = proc_status(process.pid)
        crowd_ms = await latencies(port, args.samples)
        crowd.terminate()
        crowd.join()
        return {
            "machine": os.uname().machine,
            "idle": idle,
            "streams": args.streams,
            "with_streams_open": streams,
            "crowd": args.crowd,
            "with_crowd": under_crowd,
            "completion_p50_ms_idle": round(statistics.median(idle_ms), 2),
            "completion_p50_ms_with_crowd": round(statistics.median(crowd_ms), 2),
            "p50_ratio_crowd_vs_idle": round(statistics.median(crowd_ms) /
                                             statistics.median(idle_ms), 3),
        }
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sculpt", default="build/sculpt")
    parser.add_argument("--model", default="tests/models/tiny-llada-text")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--crowd", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
