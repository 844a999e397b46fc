"""The approximate KV cache through a real `sculpt serve`: the `cache` field over gRPC, native JSON
and the OpenAI routes (answers equal to `sculpt generate --cache` in another process), bad values
refused by name, the arena's memory shown in GetServerInfo and /metrics, a request whose cache
does not fit waiting for one that holds the rows, and cancelled or finished requests giving their
rows back at once.
"""

from __future__ import annotations

import threading
import time
import unittest

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from sculpt_server import TINY_TEXT_MODEL, Server, pb, run_cli

PROMPT = "def add(a, b):"
# The tiny text model: 2 layers of 3 heads of 32 dims; one row is 2 layers x (keys + values)
# x 96 floats.
ROW_BYTES = 2 * 2 * 96 * 4


def settings(cache: str) -> dict:
    return dict(prompt=PROMPT, gen_length=32, block_length=8, steps=32, remasking="threshold",
                confidence_threshold=0.5, cache=cache)


def cli_flags(cache: str) -> list[str]:
    return ["--model", str(TINY_TEXT_MODEL), "--prompt", PROMPT, "--gen-length", "32",
            "--block-length", "8", "--steps", "32", "--remasking", "threshold",
            "--confidence-threshold", "0.5", "--cache", cache]


def metric(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"no {name} in /metrics")


class KvCacheServedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.http = httpx.Client(base_url=cls.server.http_url, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.http.close()
        cls.server.stop()

    def test_every_front_end_serves_the_cache_as_the_cli_computes_it(self):
        answers = {}
        for cache in ("none", "prefix", "dual"):
            with self.subTest(cache=cache):
                cli = run_cli(*cli_flags(cache))
                result = self.server.stub.Complete(pb.GenerateRequest(**settings(cache)),
                                                   timeout=120)
                self.assertEqual(list(result.token_ids), cli["token_ids"])
                self.assertEqual(result.usage.steps, cli["steps"])
                native = self.http.post("/v1/generate", json=settings(cache))
                self.assertEqual(native.status_code, 200, native.text)
                self.assertEqual(native.json()["token_ids"], cli["token_ids"])
                body = settings(cache)
                body["max_tokens"] = body.pop("gen_length")
                openai = self.http.post("/v1/completions", json=body)
                self.assertEqual(openai.status_code, 200, openai.text)
                self.assertEqual(openai.json()["choices"][0]["text"], cli["text"])
                answers[cache] = cli["token_ids"]
        # On this prompt both caches commit other tokens than none: a front end that dropped the
        # field would fail the comparisons above.
        self.assertNotEqual(answers["prefix"], answers["none"])
        self.assertNotEqual(answers["dual"], answers["none"])
        # The default (--cache none) is no cache.
        default = self.server.stub.Complete(
            pb.GenerateRequest(**{k: v for k, v in settings("none").items() if k != "cache"}),
            timeout=120)
        self.assertEqual(list(default.token_ids), answers["none"])

    def test_a_bad_cache_is_refused_by_name(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.server.stub.Complete(pb.GenerateRequest(**settings("full")), timeout=30)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("cache must be none, prefix or dual", caught.exception.details())
        for path in ("/v1/generate", "/v1/completions"):
            with self.subTest(path=path):
                reply = self.http.post(path, json={"prompt": "x", "cache": "full"})
                self.assertEqual(reply.status_code, 400, reply.text)
                self.assertEqual(reply.json()["error"]["param"], "cache")

    def test_info_and_metrics_show_the_arena(self):
        info = self.server.info()
        # auto: as many rows as a step forwards tokens (--max-num-batched-tokens 8192).
        self.assertEqual(info.kv_cache_bytes, 8192 * ROW_BYTES)
        self.assertEqual(info.kv_cache_bytes_used, 0)
        self.assertEqual(info.default_cache, "none")
        text = self.http.get("/metrics").text
        self.assertEqual(metric(text, "sculpt_kv_cache_bytes"), 8192 * ROW_BYTES)
        self.assertEqual(metric(text, "sculpt_kv_cache_bytes_used"), 0)


class KvCacheBudgetTest(unittest.TestCase):
    """An arena of 300 rows, dual by default: one 256-token answer to a short prompt at a time."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--kv-cache-memory", str(300 * ROW_BYTES), "--cache", "dual")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def long_request(self, request_id: str) -> pb.GenerateRequest:
        return pb.GenerateRequest(prompt=PROMPT, gen_length=256, steps=256, block_length=256,
                                  request_id=request_id)

    def test_a_request_whose_cache_does_not_fit_waits_then_runs(self):
        info = self.server.info()
        self.assertEqual(info.kv_cache_bytes, 300 * ROW_BYTES)
        self.assertEqual(info.default_cache, "dual")
        first = self.server.stub.Generate(self.long_request("holder"), timeout=300)
        next(first)  # accepted
        holding, _ = self.server.wait_for(lambda i: i.running == 1 and i.kv_cache_bytes_used > 0)
        canvas_rows = holding.kv_cache_bytes_used // ROW_BYTES
        self.assertGreater(canvas_rows, 256)
        results = {}
        waiter = threading.Thread(target=lambda: results.update(
            second=self.server.stub.Complete(self.long_request("waiter"), timeout=300)))
        waiter.start()
        # The second needs the rows the first holds: queued, not running, while the first runs.
        info, _ = self.server.wait_for(lambda i: i.waiting == 1)
        self.assertEqual(info.running, 1)
        self.assertEqual(info.kv_cache_bytes_used, canvas_rows * ROW_BYTES)
        list(first)
        waiter.join(timeout=300)
        self.assertEqual(results["second"].finish_reason, "length")
        info, _ = self.server.wait_for(lambda i: i.running == 0 and i.waiting == 0)
        self.assertEqual(info.kv_cache_bytes_used, 0)

    def test_a_cancelled_request_gives_its_rows_back_at_once(self):
        call = self.server.stub.Generate(self.long_request("cancelled"), timeout=300)
        next(call)
        self.server.wait_for(lambda i: i.kv_cache_bytes_used > 0)
        call.cancel()
        _, waited = self.server.wait_for(lambda i: i.kv_cache_bytes_used == 0 and i.running == 0)
        self.assertLess(waited, 10)

    def test_a_cache_larger_than_the_arena_is_refused_with_what_to_do(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.server.stub.Complete(pb.GenerateRequest(prompt=PROMPT, gen_length=320, steps=8,
                                                         block_length=320), timeout=30)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("--kv-cache-memory", caught.exception.details())
        # cfg doubles the rows: a 256-token answer with guidance does not fit either.
        with self.assertRaises(grpc.RpcError) as caught:
            self.server.stub.Complete(pb.GenerateRequest(prompt=PROMPT, gen_length=256, steps=8,
                                                         block_length=256, cfg_scale=1.0),
                                      timeout=30)
        self.assertIn("x2 for cfg_scale", caught.exception.details())
        # Without a cache the same request runs.
        result = self.server.stub.Complete(pb.GenerateRequest(prompt=PROMPT, gen_length=320,
                                                              steps=8, block_length=320,
                                                              cache="none"), timeout=120)
        self.assertEqual(len(result.token_ids), 320)


if __name__ == "__main__":
    unittest.main()
