"""The HTTP gateway of `sculpt serve` end to end: the official `openai` SDK, raw HTTP with
httpx, and Prometheus' own parser for /metrics. Results are compared with the gRPC API of the
same server, which the gRPC tests compare with `sculpt generate`.
"""

from __future__ import annotations

import json
import math
import threading
import time
import unittest

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from sculpt_server import TINY_TEXT_MODEL, Server, pb

MODEL = TINY_TEXT_MODEL.name


def derived_seed(seed: int, index: int) -> int:
    """Sample `index`'s seed of an n > 1 request: SplitMix64 of (seed, index), written here from
    its definition."""
    if index == 0:
        return seed
    mask = (1 << 64) - 1
    z = (seed + 0x9E3779B97F4A7C15 * index) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def metric_samples(text: str) -> dict:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted((k, v) for k, v in sample.labels.items())))
            samples[key] = sample.value
    return samples


class HttpGatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--payload-limit", "4096")
        cls.client = openai.OpenAI(base_url=cls.server.http_url + "/v1", api_key="unused",
                                   max_retries=0, timeout=120)
        cls.http = httpx.Client(base_url=cls.server.http_url, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.http.close()
        cls.server.stop()

    def grpc_result(self, **fields):
        return self.server.stub.Complete(pb.GenerateRequest(**fields), timeout=120)

    def test_completion_equals_grpc_and_stream_sends_only_stable_text(self):
        extra = dict(steps=8, block_length=8, remasking="low_confidence")
        completion = self.client.completions.create(
            model=MODEL, prompt="def add(a, b):", max_tokens=16, temperature=0.5, seed=7,
            extra_body=extra,
        )
        expected = self.grpc_result(prompt="def add(a, b):", gen_length=16, temperature=0.5,
                                    seed=7, **extra)
        self.assertEqual(completion.choices[0].text, expected.text)
        self.assertEqual(completion.choices[0].finish_reason, "length")
        self.assertEqual(completion.usage.completion_tokens, 16)
        self.assertEqual(completion.usage.prompt_tokens, expected.usage.prompt_tokens)
        self.assertEqual(completion.model, MODEL)

        stream = self.client.completions.create(
            model=MODEL, prompt="def add(a, b):", max_tokens=16, temperature=0.5, seed=7,
            extra_body=extra, stream=True, stream_options={"include_usage": True},
        )
        deltas, finish, usage = [], None, None
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                deltas.append(choice.text)
                finish = choice.finish_reason or finish
        self.assertEqual("".join(deltas), expected.text)
        self.assertGreater(len([d for d in deltas if d]), 1, "the text came in one piece")
        self.assertEqual(finish, "length")
        self.assertEqual(usage.completion_tokens, 16)

    def test_chat_equals_grpc_streaming_or_not(self):
        messages = [{"role": "user", "content": "Say hi"}]
        chat = self.client.chat.completions.create(model=MODEL, messages=messages,
                                                   max_tokens=12, seed=3)
        expected = self.grpc_result(messages=[pb.ChatMessage(role="user", content="Say hi")],
                                    gen_length=12, seed=3)
        self.assertEqual(chat.choices[0].message.content, expected.text)
        self.assertEqual(chat.choices[0].message.role, "assistant")
        text, roles = "", []
        for chunk in self.client.chat.completions.create(model=MODEL, messages=messages,
                                                         max_tokens=12, seed=3, stream=True):
            for choice in chunk.choices:
                if choice.delta.role:
                    roles.append(choice.delta.role)
                text += choice.delta.content or ""
        self.assertEqual(text, expected.text)
        self.assertEqual(roles, ["assistant"])

    def test_stop_strings_are_never_streamed_past(self):
        expected = self.grpc_result(prompt="x = 1", gen_length=24, stop=["e"])
        text = "".join(
            choice.text
            for chunk in self.client.completions.create(model=MODEL, prompt="x = 1",
                                                        max_tokens=24, stop="e", stream=True)
            for choice in chunk.choices
        )
        self.assertEqual(text, expected.text)
        self.assertNotIn("e", text)

    def test_errors_surface_as_the_sdks_typed_exceptions(self):
        with self.assertRaises(openai.BadRequestError) as error:
            self.client.completions.create(model=MODEL, prompt="x", n=17)
        self.assertEqual(error.exception.body["param"], "n")
        with self.assertRaises(openai.BadRequestError) as error:
            self.client.completions.create(model=MODEL, prompt="x", max_tokens=16,
                                           extra_body={"steps": 5, "block_length": 8})
        self.assertIn("steps", error.exception.message)
        with self.assertRaises(openai.BadRequestError) as error:
            self.client.completions.create(model=MODEL, prompt="x", temperature="hot")
        self.assertEqual(error.exception.body["param"], "temperature")
        with self.assertRaises(openai.NotFoundError) as error:
            self.client.completions.create(model="gpt-4", prompt="x")
        self.assertEqual(error.exception.body["param"], "model")
        with self.assertRaises(openai.BadRequestError):
            self.client.chat.completions.create(model=MODEL, messages=[])
        with self.assertRaises(openai.BadRequestError) as error:
            self.client.completions.create(model=MODEL, prompt="x", max_tokens=100000)
        self.assertIn("gen_length", error.exception.message)

    def test_unsupported_fields_are_refused_by_name_unless_neutral(self):
        for field, value in [("presence_penalty", 0.5), ("logit_bias", {"5": 10}),
                             ("made_up_field", 1), ("logprobs", 21), ("best_of", 17),
                             ("top_logprobs", 2)]:
            with self.subTest(field=field):
                with self.assertRaises(openai.BadRequestError) as error:
                    self.client.completions.create(model=MODEL, prompt="x", max_tokens=4,
                                                   extra_body={field: value})
                self.assertEqual(error.exception.body["param"], field)
                self.assertEqual(error.exception.body["type"], "invalid_request_error")
                self.assertIn(field, error.exception.message)
        with self.assertRaises(openai.BadRequestError) as error:
            self.client.chat.completions.create(model=MODEL, max_tokens=4, tools=[{
                "type": "function", "function": {"name": "f", "parameters": {}}}],
                messages=[{"role": "user", "content": "x"}])
        self.assertEqual(error.exception.body["param"], "tools")
        # What client libraries send by default, meaning "off", is accepted.
        reply = self.client.completions.create(
            model=MODEL, prompt="x", max_tokens=4, echo=False, best_of=1, presence_penalty=0,
            frequency_penalty=0, logit_bias={}, logprobs=None, suffix=None)
        self.assertEqual(reply.choices[0].finish_reason, "length")

    def test_n_samples_are_requests_with_derived_seeds(self):
        extra = dict(steps=12, block_length=12)
        reply = self.client.completions.create(model=MODEL, prompt="def f(x):", max_tokens=12,
                                               n=3, temperature=0.9, seed=11, extra_body=extra)
        self.assertEqual([c.index for c in reply.choices], [0, 1, 2])
        texts = [c.text for c in reply.choices]
        for index, text in enumerate(texts):
            expected = self.grpc_result(prompt="def f(x):", gen_length=12, temperature=0.9,
                                        seed=derived_seed(11, index), **extra)
            self.assertEqual(text, expected.text, f"choice {index}")
        self.assertGreater(len(set(texts)), 1, "the samples are not separate sequences")
        self.assertEqual(reply.usage.completion_tokens, 36)
        self.assertEqual(reply.usage.prompt_tokens, expected.usage.prompt_tokens)
        # Streamed, each choice's deltas add up to its text.
        streamed = {}
        for chunk in self.client.completions.create(model=MODEL, prompt="def f(x):",
                                                    max_tokens=12, n=3, temperature=0.9, seed=11,
                                                    extra_body=extra, stream=True):
            for choice in chunk.choices:
                streamed[choice.index] = streamed.get(choice.index, "") + choice.text
        self.assertEqual([streamed[i] for i in range(3)], texts)

    def test_logprobs_in_both_shapes_streamed_or_not(self):
        extra = dict(steps=16, block_length=16, remasking="low_confidence")
        reply = self.client.completions.create(model=MODEL, prompt="def add(a, b):",
                                               max_tokens=16, logprobs=3, extra_body=extra)
        choice = reply.choices[0]
        logprobs = choice.logprobs
        self.assertEqual("".join(logprobs.tokens), choice.text)
        self.assertEqual(len(logprobs.tokens), 16)
        offsets = [sum(len(t) for t in logprobs.tokens[:i]) for i in range(16)]
        self.assertEqual(logprobs.text_offset, offsets)
        for value, top in zip(logprobs.token_logprobs, logprobs.top_logprobs):
            self.assertLessEqual(value, 0.0)
            self.assertLessEqual(len(top), 3)
            # Temperature 0 commits the argmax: the token is the likeliest alternative.
            self.assertAlmostEqual(value, max(top.values()), places=12)
            self.assertLessEqual(sum(math.exp(v) for v in top.values()), 1.0 + 1e-9)
        # The native result: one record per token, each committed at a step of the run.
        native = self.grpc_result(prompt="def add(a, b):", gen_length=16, logprobs=3, **extra)
        self.assertEqual([t.token_id for t in native.logprobs], list(native.token_ids))
        self.assertEqual([t.logprob for t in native.logprobs], logprobs.token_logprobs)
        steps = [t.step for t in native.logprobs]
        self.assertTrue(all(1 <= step <= native.usage.steps for step in steps), steps)
        self.assertGreater(len(set(steps)), 1)

        messages = [{"role": "user", "content": "Say hi"}]
        chat = self.client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8,
                                                   logprobs=True, top_logprobs=2)
        content = chat.choices[0].logprobs.content
        self.assertEqual("".join(t.token for t in content), chat.choices[0].message.content)
        for token in content:
            self.assertEqual(bytes(token.bytes).decode(), token.token)
            self.assertEqual(len(token.top_logprobs), 2)
            self.assertGreaterEqual(token.top_logprobs[0].logprob, token.top_logprobs[1].logprob)
        streamed = []
        for chunk in self.client.chat.completions.create(model=MODEL, messages=messages,
                                                         max_tokens=8, logprobs=True,
                                                         top_logprobs=2, stream=True):
            for c in chunk.choices:
                if c.logprobs is not None:
                    streamed.extend(c.logprobs.content)
        self.assertEqual([(t.token, t.logprob) for t in streamed],
                         [(t.token, t.logprob) for t in content])

    def test_best_of_returns_the_sample_of_highest_mean_logprob(self):
        extra = dict(steps=10, block_length=10)
        reply = self.client.completions.create(model=MODEL, prompt="x =", max_tokens=10,
                                               best_of=4, temperature=1.0, seed=5,
                                               extra_body=extra)
        self.assertEqual(len(reply.choices), 1)
        self.assertIsNone(reply.choices[0].logprobs)
        samples = [self.grpc_result(prompt="x =", gen_length=10, temperature=1.0,
                                    seed=derived_seed(5, i), logprobs=0, **extra)
                   for i in range(4)]
        means = [sum(t.logprob for t in s.logprobs) / len(s.logprobs) for s in samples]
        self.assertEqual(reply.choices[0].text, samples[means.index(max(means))].text)
        self.assertEqual(reply.usage.completion_tokens, 40)
        for fields in [dict(n=3, best_of=2), dict(best_of=2, stream=True)]:
            with self.subTest(**fields):
                with self.assertRaises(openai.BadRequestError) as error:
                    self.client.completions.create(model=MODEL, prompt="x", max_tokens=4,
                                                   **fields)
                self.assertEqual(error.exception.body["param"], "best_of")

    def test_echo_and_suffix(self):
        reply = self.client.completions.create(model=MODEL, prompt="y = 2", max_tokens=8,
                                               echo=True, logprobs=0)
        expected = self.grpc_result(prompt="y = 2", gen_length=8)
        self.assertEqual(reply.choices[0].text, "y = 2" + expected.text)
        prompt_part = [v for v in reply.choices[0].logprobs.token_logprobs if v is None]
        self.assertEqual(len(prompt_part), expected.usage.prompt_tokens)
        self.assertEqual(reply.choices[0].logprobs.text_offset[len(prompt_part)], len("y = 2"))

        reply = self.client.completions.create(model=MODEL, prompt="def f(", max_tokens=6,
                                               suffix="):\n    return 1")
        infill = self.grpc_result(infill="def f(<|mask:6|>):\n    return 1")
        self.assertEqual(reply.choices[0].text, infill.filled[0].text)
        self.assertEqual(reply.usage.completion_tokens, 6)
        streamed = "".join(
            c.text for chunk in self.client.completions.create(
                model=MODEL, prompt="def f(", max_tokens=6, suffix="):\n    return 1",
                stream=True) for c in chunk.choices)
        self.assertEqual(streamed, infill.filled[0].text)
        with self.assertRaises(openai.BadRequestError) as error:
            self.client.completions.create(model=MODEL, prompt=[1, 2], max_tokens=4, suffix="x")
        self.assertEqual(error.exception.body["param"], "suffix")

    def test_models_health_version(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], [MODEL])
        self.assertEqual(self.client.models.retrieve(MODEL).id, MODEL)
        with self.assertRaises(openai.NotFoundError) as error:
            self.client.models.retrieve("gpt-4")
        self.assertEqual(error.exception.body["code"], "model_not_found")
        missing = self.http.get("/v1/nothing")
        self.assertEqual(missing.status_code, 404)
        self.assertEqual(missing.json()["error"]["type"], "not_found_error")
        self.assertIsNone(missing.json()["error"]["code"])
        self.assertEqual(self.http.get("/health").status_code, 200)
        self.assertEqual(self.http.get("/live").status_code, 200)
        self.assertIn("version", self.http.get("/version").json())

    def test_native_generate_is_the_proto_mapping(self):
        body = {"prompt": "def f():", "gen_length": 12, "steps": 6, "block_length": 6, "seed": 4}
        reply = self.http.post("/v1/generate", json=body)
        self.assertEqual(reply.status_code, 200, reply.text)
        result = reply.json()
        expected = self.grpc_result(prompt="def f():", gen_length=12, steps=6, block_length=6,
                                    seed=4)
        self.assertEqual(result["token_ids"], list(expected.token_ids))
        self.assertEqual(result["text"], expected.text)
        self.assertEqual(result["usage"]["steps"], 6)
        self.assertGreaterEqual(float(reply.headers["x-queue-time"]), 0)
        self.assertGreater(float(reply.headers["x-inference-time"]), 0)

        events = []
        with self.http.stream("POST", "/v1/generate", json=dict(body, stream=True)) as stream:
            self.assertEqual(stream.headers["content-type"], "text/event-stream")
            self.assertEqual(stream.headers["x-accel-buffering"], "no")
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[len("data: "):])))
        kinds = [kind for kind, _ in events]
        self.assertEqual(kinds[0], "accepted")
        self.assertEqual(kinds.count("block"), 2)
        self.assertEqual(kinds[-1], "final")
        self.assertEqual(events[-1][1]["token_ids"], list(expected.token_ids))
        # Drafts may be merged behind a slow reader, never lost: they rebuild the answer.
        drafts = [data for kind, data in events if kind == "step"]
        self.assertLessEqual(len(drafts), 6)
        self.assertEqual(drafts[-1]["step"], 6)
        masks = [draft["masks_left"] for draft in drafts]
        self.assertEqual(masks, sorted(masks, reverse=True))
        canvas = [None] * 12
        for draft in drafts:
            for span in draft["changed"]:
                for offset, token in enumerate(span["token_ids"]):
                    canvas[span["position"] + offset] = token
        self.assertEqual(canvas, list(expected.token_ids))

    def test_tokenize_and_detokenize(self):
        ids = self.http.post("/v1/tokenize", json={"text": "def f(): pass"}).json()["token_ids"]
        self.assertGreater(len(ids), 0)
        text = self.http.post("/v1/detokenize", json={"token_ids": ids}).json()["text"]
        self.assertEqual(text, "def f(): pass")

    def test_bad_requests_get_the_right_status(self):
        cases = [
            (self.http.post("/v1/completions", content=b"{not json"), 400),
            (self.http.post("/v1/completions", content=b"[1, 2]"), 400),
            (self.http.post("/v1/generate", json={"prompt": "x", "gen_length": "many"}), 400),
            (self.http.post("/v1/generate", json={"prompt": "x", "bogus": 1}), 400),
            (self.http.post("/v1/generate", json={"prompt": "x", "model": "nope"}), 404),
            (self.http.post("/v1/completions", json={"prompt": "x" * 10000}), 413),
            (self.http.get("/v1/nothing"), 404),
            (self.http.get("/v1/completions"), 405),
            (self.http.post("/health"), 405),
        ]
        for reply, status in cases:
            with self.subTest(url=str(reply.url), status=status):
                self.assertEqual(reply.status_code, status, reply.text)
                self.assertIn("message", reply.json()["error"])
        field = self.http.post("/v1/generate", json={"prompt": "x", "gen_length": "many"})
        self.assertIn("gen_length", field.json()["error"]["message"])
        # Every error about one field names it in `param`, native and OpenAI alike.
        for path, body, param in [
            ("/v1/generate", {"prompt": "x", "gen_length": "many"}, "gen_length"),
            ("/v1/generate", {"prompt": "x", "bogus": 1}, "bogus"),
            ("/v1/generate", {"prompt": "x", "gen_length": 0}, "gen_length"),
            ("/v1/generate", {"prompt": "x", "gen_length": 16, "steps": 5, "block_length": 8},
             "steps"),
            ("/v1/generate", {"prompt": "x", "gen_length": 8, "top_p": 1.5}, "top_p"),
            ("/v1/generate", {"prompt": "x", "gen_length": 8, "remasking": "best"}, "remasking"),
            ("/v1/generate", {"prompt": "x", "model": "nope"}, "model"),
            ("/v1/completions", {"prompt": "x", "max_tokens": 100000}, "max_tokens"),
            ("/v1/completions", {"prompt": "x", "steps": 5, "max_tokens": 16,
                                 "block_length": 8}, "steps"),
        ]:
            with self.subTest(path=path, body=body):
                reply = self.http.post(path, json=body)
                self.assertIn(reply.status_code, (400, 404), reply.text)
                self.assertEqual(reply.json()["error"]["param"], param, reply.text)
                self.assertEqual(reply.json()["error"]["type"], "invalid_request_error")
        # CORS stays off unless origins are allowed.
        reply = self.http.get("/health", headers={"Origin": "http://example.com"})
        self.assertNotIn("access-control-allow-origin", reply.headers)

    def test_metrics_parse_and_count(self):
        before = metric_samples(self.http.get("/metrics").text)
        self.client.completions.create(model=MODEL, prompt="a", max_tokens=8)
        self.server.stub.Complete(pb.GenerateRequest(prompt="b", gen_length=8), timeout=60)
        reply = self.http.get("/metrics")
        self.assertTrue(reply.headers["content-type"].startswith("text/plain"))
        after = metric_samples(reply.text)
        model = (("model", MODEL),)
        length = (("finished_reason", "length"), ("model", MODEL))

        def delta(name, labels=model):
            return after.get((name, labels), 0) - before.get((name, labels), 0)

        self.assertEqual(delta("sculpt_request_success_total", length), 2)
        self.assertEqual(delta("sculpt_generation_tokens_total"), 16)
        self.assertGreater(delta("sculpt_prompt_tokens_total"), 0)
        self.assertGreaterEqual(delta("sculpt_denoising_steps_total"), 8)
        self.assertGreaterEqual(delta("sculpt_forward_passes_total"), 16)
        self.assertEqual(delta("sculpt_e2e_request_latency_seconds_count"), 2)
        self.assertEqual(delta("sculpt_request_queue_time_seconds_count"), 2)
        self.assertEqual(delta("sculpt_time_to_first_step_seconds_count"), 2)
        self.assertGreater(delta("sculpt_step_latency_seconds_count"), 0)
        self.assertGreater(delta("sculpt_tokens_committed_per_step_count"), 0)
        for name in ("sculpt_num_requests_running", "sculpt_num_requests_waiting"):
            self.assertIn((name, model), after)
        inf = (("le", "+Inf"), ("model", MODEL))
        self.assertEqual(after[("sculpt_e2e_request_latency_seconds_bucket", inf)],
                         after[("sculpt_e2e_request_latency_seconds_count", model)])

        # HTTP requests by route and status: the completion above, and routes that are none.
        completions = (("model", MODEL), ("route", "/v1/completions"), ("status", "200"))
        self.assertEqual(delta("sculpt_http_requests_total", completions), 1)
        self.http.get("/no/such/route")
        self.http.get("/v1/models/nope")
        latest = metric_samples(self.http.get("/metrics").text)
        other = ("sculpt_http_requests_total",
                 (("model", MODEL), ("route", "other"), ("status", "404")))
        self.assertEqual(latest.get(other, 0) - after.get(other, 0), 1)
        models = ("sculpt_http_requests_total",
                  (("model", MODEL), ("route", "/v1/models/*"), ("status", "404")))
        self.assertEqual(latest.get(models, 0) - after.get(models, 0), 1)
        # The process's own figures, against /proc read here.
        pid = self.server.process.pid
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        rss = int(fields["VmRSS"].split()[0]) * 1024
        self.assertLess(abs(latest[("process_resident_memory_bytes", ())] - rss), 0.5 * rss)
        self.assertEqual(latest[("process_threads", ())], int(fields["Threads"]))
        self.assertGreater(latest[("process_open_fds", ())], 3)
        self.assertGreater(latest[("process_cpu_seconds_total", ())], 0)
        self.assertLess(abs(latest[("process_start_time_seconds", ())] - time.time()), 3600)


class HttpLifecycleTest(unittest.TestCase):
    def test_client_gone_cancels_and_queue_full_is_429(self):
        server = Server("--max-num-seqs", "1", "--max-queued-requests", "1")
        try:
            client = openai.OpenAI(base_url=server.http_url + "/v1", api_key="unused",
                                   max_retries=0, timeout=120)
            stream = client.completions.create(model=MODEL, prompt="x", max_tokens=256,
                                               extra_body={"steps": 256}, stream=True)
            next(iter(stream))
            server.wait_for(lambda i: i.running == 1)
            waiting = client.completions.create(model=MODEL, prompt="w", max_tokens=256,
                                                extra_body={"steps": 256}, stream=True)
            server.wait_for(lambda i: i.waiting == 1)
            with self.assertRaises(openai.RateLimitError):
                client.completions.create(model=MODEL, prompt="y", max_tokens=8)
            waiting.close()
            stream.close()  # the client goes away mid-stream
            server.wait_for(lambda i: i.running == 0 and i.waiting == 0, timeout=30)
            server.wait_log("finish_reason=cancelled")
            metrics = metric_samples(httpx.get(server.http_url + "/metrics").text)
            self.assertEqual(metrics[("sculpt_request_failure_total",
                                      (("model", MODEL), ("reason", "cancelled")))], 2)
            self.assertEqual(metrics[("sculpt_request_failure_total",
                                      (("model", MODEL), ("reason", "queue_full")))], 1)
        finally:
            server.stop()

    def test_client_gone_cancels_a_non_streaming_request(self):
        server = Server()
        try:
            with self.assertRaises(httpx.TimeoutException):
                httpx.post(server.http_url + "/v1/completions",
                           json={"prompt": "x", "max_tokens": 500, "steps": 500}, timeout=0.5)
            # The connection is closed; the server notices and frees the slot long before the
            # 500 steps would be done.
            server.wait_for(lambda i: i.running == 0 and i.waiting == 0, timeout=30)
            line = server.wait_log("finish_reason=cancelled")
            self.assertNotIn("steps=500", line)
        finally:
            server.stop()

    def test_draining_answers_503(self):
        server = Server("--shutdown-timeout", "600")
        try:
            client = openai.OpenAI(base_url=server.http_url + "/v1", api_key="unused",
                                   max_retries=0, timeout=600)
            # Long enough that the drain is still going on while the test looks at it.
            stream = client.completions.create(model=MODEL, prompt="x", max_tokens=480,
                                               extra_body={"steps": 480}, stream=True)
            next(iter(stream))
            server.process.send_signal(15)
            deadline = time.monotonic() + 10
            while httpx.get(server.http_url + "/health").status_code != 503:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
            with self.assertRaises(openai.InternalServerError) as error:
                client.completions.create(model=MODEL, prompt="y", max_tokens=8)
            self.assertEqual(error.exception.status_code, 503)
            # The stream is read only once the engine is done with it: the server must still
            # deliver every queued event before it stops.
            server.wait_log("finish_reason=length", timeout=300)
            finish = [c.choices[0].finish_reason for c in stream if c.choices]
            self.assertEqual(finish[-1], "length")
            self.assertEqual(server.process.wait(timeout=60), 0)
        finally:
            server.stop()

    def test_cors_when_allowed(self):
        server = Server("--allowed-origins", "http://app.example")
        try:
            allowed = httpx.options(server.http_url + "/v1/completions",
                                    headers={"Origin": "http://app.example",
                                             "Access-Control-Request-Method": "POST"})
            self.assertEqual(allowed.status_code, 204)
            self.assertEqual(allowed.headers["access-control-allow-origin"], "http://app.example")
            other = httpx.get(server.http_url + "/health", headers={"Origin": "http://evil.example"})
            self.assertNotIn("access-control-allow-origin", other.headers)
        finally:
            server.stop()

    def test_256_concurrent_streams(self):
        server = Server("--max-num-seqs", "64", "--max-queued-requests", "512")
        try:
            results = [None] * 256
            barrier = threading.Barrier(256)

            def run(i):
                with httpx.Client(base_url=server.http_url, timeout=300) as http:
                    barrier.wait()
                    text = []
                    with http.stream("POST", "/v1/completions",
                                     json={"prompt": "x", "max_tokens": 8, "seed": i,
                                           "stream": True}) as reply:
                        for line in reply.iter_lines():
                            if line.startswith("data: ") and line != "data: [DONE]":
                                chunk = json.loads(line[6:])
                                text += [c["text"] for c in chunk["choices"]]
                            if line == "data: [DONE]":
                                results[i] = "".join(text)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(256)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            self.assertTrue(all(r is not None for r in results), "a stream did not finish")
            for i in (0, 17, 255):
                expected = server.stub.Complete(
                    pb.GenerateRequest(prompt="x", gen_length=8, seed=i), timeout=60)
                self.assertEqual(results[i], expected.text)
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
