"""`sculpt serve` end to end: a real server process on 127.0.0.1, real grpcio clients.

Run by ctest (label integration) with SCULPT_BINARY set; `python3 grpc_server_test.py -v`
works the same by hand.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import signal
import tempfile
import threading
import time
import unittest

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sculpt_server import TINY_TEXT_MODEL, Server, pb, pb_grpc, run_cli

MODEL_NAME = TINY_TEXT_MODEL.name
PROMPT = "def add(a, b):"


def request(**fields) -> pb.GenerateRequest:
    fields.setdefault("prompt", PROMPT)
    return pb.GenerateRequest(**fields)


def result_key(result) -> tuple:
    """What must be identical between a batched and an alone run."""
    return (result.finish_reason, tuple(result.token_ids), result.text, result.usage.steps)


class GenerateStreamTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_drafts_shrink_the_masks_then_final_equals_the_cli(self):
        events = list(
            self.server.stub.Generate(
                request(gen_length=24, steps=12, block_length=8, seed=3), timeout=60
            )
        )
        kinds = [event.WhichOneof("event") for event in events]
        self.assertEqual(kinds[0], "accepted")
        self.assertEqual(kinds[-1], "final")
        self.assertEqual(kinds.count("block"), 3)
        accepted = events[0].accepted
        self.assertEqual(accepted.gen_length, 24)
        self.assertEqual(accepted.total_steps, 12)
        # Rebuild the answer from the drafts alone: every position is committed exactly once.
        canvas = [None] * 24
        masks_left = 24
        drafts = [event.step for event in events if event.WhichOneof("event") == "step"]
        # One draft per step, unless this client read slower than the engine stepped: then
        # drafts are merged, never lost.
        self.assertLessEqual(len(drafts), 12)
        self.assertEqual(drafts[-1].step, 12)
        steps = [draft.step for draft in drafts]
        self.assertEqual(steps, sorted(set(steps)))
        for draft in drafts:
            self.assertEqual(draft.total_steps, 12)
            self.assertLessEqual(draft.masks_left, masks_left)
            masks_left = draft.masks_left
            for span in draft.changed:
                for offset, token in enumerate(span.token_ids):
                    self.assertIsNone(canvas[span.position + offset])
                    canvas[span.position + offset] = token
            self.assertEqual(draft.masks_left, canvas.count(None))
        self.assertEqual(masks_left, 0)
        final = events[-1].final
        self.assertEqual(list(final.token_ids), canvas)
        # Blocks carry their committed tokens.
        blocks = [event.block for event in events if event.WhichOneof("event") == "block"]
        for block in blocks:
            start = block.tokens.position
            self.assertEqual(list(block.tokens.token_ids), canvas[start : start + 8])
        cli = run_cli(
            "--model", str(TINY_TEXT_MODEL), "--prompt", PROMPT, "--gen-length", "24",
            "--steps", "12", "--block-length", "8", "--seed", "3",
        )
        self.assertEqual(list(final.token_ids), cli["token_ids"])
        self.assertEqual(final.text, cli["text"])
        self.assertEqual(final.finish_reason, cli["finish_reason"])
        self.assertEqual(final.usage.prompt_tokens, cli["prompt_tokens"])
        self.assertEqual(final.usage.steps, 12)
        self.assertEqual(final.model, MODEL_NAME)
        self.assertGreater(final.timings.total_ms, 0)
        self.assertGreaterEqual(final.timings.total_ms, final.timings.first_step_ms)

    def test_complete_equals_the_cli_for_infill_chat_and_stop(self):
        cases = [
            (
                dict(infill="def f(x):\n    return <|mask:6|>\n", seed=1),
                ["--infill", "def f(x):\n    return <|mask:6|>\n", "--seed", "1"],
            ),
            (
                dict(prompt="hello", gen_length=16, remasking="threshold",
                     confidence_threshold=0.5, temperature=0.7, seed=9),
                ["--prompt", "hello", "--gen-length", "16", "--remasking", "threshold",
                 "--confidence-threshold", "0.5", "--temperature", "0.7", "--seed", "9"],
            ),
            (
                dict(prompt="x = 1", gen_length=16, stop=["e"], cfg_scale=1.0),
                ["--prompt", "x = 1", "--gen-length", "16", "--stop", "e", "--cfg-scale", "1"],
            ),
        ]
        for fields, flags in cases:
            with self.subTest(fields=fields):
                if "infill" in fields:
                    message = pb.GenerateRequest(**fields)
                else:
                    message = request(**fields)
                result = self.server.stub.Complete(message, timeout=60)
                cli = run_cli("--model", str(TINY_TEXT_MODEL), *flags)
                self.assertEqual(list(result.token_ids), cli["token_ids"])
                self.assertEqual(result.text, cli.get("text", ""))
                self.assertEqual(result.finish_reason, cli["finish_reason"])
                if "infill" in fields:
                    self.assertEqual(
                        [(s.position, list(s.token_ids), s.text) for s in result.filled],
                        [(s["start"], s["token_ids"], s["text"]) for s in cli["spans"]],
                    )

    def test_a_client_that_stops_reading_never_holds_the_engine(self):
        # A client whose HTTP/2 window holds a few messages (no automatic window growth) reads
        # the first event and then nothing until the server has finished the request: a server
        # that waited for its client would never finish it.
        channel = grpc.insecure_channel(
            self.server.address,
            options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)],
        )
        stub = pb_grpc.TextDiffusionStub(channel)
        call = stub.Generate(request(gen_length=128, steps=128, request_id="stalled-reader"),
                             timeout=300)
        events = [next(call)]
        self.server.wait_log("request_id=stalled-reader finish_reason=length", timeout=240)
        events += list(call)
        channel.close()
        final = events[-1].final
        drafts = [e.step for e in events if e.WhichOneof("event") == "step"]
        self.assertLess(len(drafts), 128, "no draft was merged")
        canvas = [None] * 128
        for draft in drafts:
            for span in draft.changed:
                for offset, token in enumerate(span.token_ids):
                    canvas[span.position + offset] = token
        self.assertEqual(canvas, list(final.token_ids))
        self.assertEqual(drafts[-1].step, 128)
        self.assertEqual(drafts[-1].masks_left, 0)

    def test_stream_modes(self):
        def kinds(mode, **options):
            events = self.server.stub.Generate(
                request(gen_length=16, steps=8, block_length=4,
                        stream_options=pb.StreamOptions(mode=mode, **options)),
                timeout=60,
            )
            return [event.WhichOneof("event") for event in events]

        self.assertEqual(kinds(pb.StreamOptions.FINAL_ONLY), ["accepted", "final"])
        self.assertEqual(kinds(pb.StreamOptions.BLOCKS), ["accepted"] + ["block"] * 4 + ["final"])
        every_4 = kinds(pb.StreamOptions.STEPS, every_n_steps=4)
        self.assertEqual(every_4.count("step"), 2)
        no_text = list(
            self.server.stub.Generate(
                request(gen_length=8, stream_options=pb.StreamOptions(include_text=False)),
                timeout=60,
            )
        )
        self.assertEqual(no_text[-1].final.text, "")
        self.assertEqual(len(no_text[-1].final.token_ids), 8)

    def test_tokenize_detokenize_list_models_and_info(self):
        tokens = self.server.stub.Tokenize(pb.TokenizeRequest(text="def f(): pass"))
        self.assertGreater(len(tokens.token_ids), 0)
        self.assertEqual(len(tokens.tokens), len(tokens.token_ids))
        text = self.server.stub.Detokenize(pb.DetokenizeRequest(token_ids=tokens.token_ids))
        self.assertEqual(text.text, "def f(): pass")
        with self.assertRaises(grpc.RpcError) as error:
            self.server.stub.Detokenize(pb.DetokenizeRequest(token_ids=[10**6]))
        self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        models = self.server.stub.ListModels(pb.ListModelsRequest())
        self.assertEqual([m.name for m in models.models], [MODEL_NAME])
        self.assertEqual(models.models[0].context_length, 512)
        self.assertEqual(models.models[0].family, "llada")
        # Another test's cancelled stream frees its slot at the next step boundary: wait for it
        # (a slot that never comes back fails the wait).
        info, _ = self.server.wait_for(lambda i: i.free_slots == 16)
        self.assertEqual(info.limits.max_num_seqs, 16)
        self.assertFalse(info.draining)

    def test_health_and_reflection(self):
        health = health_pb2_grpc.HealthStub(self.server.channel)
        for service in ("", "sculpt.v1.TextDiffusion"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING)
        reflection = reflection_pb2_grpc.ServerReflectionStub(self.server.channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        services = {s.name for reply in replies for s in reply.list_services_response.service}
        self.assertIn("sculpt.v1.TextDiffusion", services)
        self.assertIn("grpc.health.v1.Health", services)

    def test_reflection_v1_describes_the_api_well_enough_to_call_it(self):
        """grpc.reflection.v1 as grpcurl and ghz use it, with upstream's messages: v1 is
        v1alpha's wire format under a new package, so grpcio-reflection's v1alpha classes are
        an independent reference for the bytes."""
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        call = self.server.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        Request = reflection_pb2.ServerReflectionRequest
        replies = list(call(iter([
            Request(list_services=""),
            Request(file_containing_symbol="sculpt.v1.TextDiffusion.Complete"),
            Request(file_by_filename="no/such.proto"),
            Request(file_containing_symbol="sculpt.v1.NoSuchMessage"),
            Request(all_extension_numbers_of_type="sculpt.v1.GenerateRequest"),
            Request(host="example"),
        ]), timeout=10))
        self.assertEqual(len(replies), 6)
        # Answers come in request order and echo their request.
        self.assertEqual(replies[1].original_request.file_containing_symbol,
                         "sculpt.v1.TextDiffusion.Complete")
        self.assertEqual([s.name for s in replies[0].list_services_response.service], [
            "sculpt.v1.TextDiffusion", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"])
        for reply, fragment in ((replies[2], "no/such.proto"),
                                (replies[3], "sculpt.v1.NoSuchMessage")):
            self.assertEqual(reply.WhichOneof("message_response"), "error_response")
            self.assertEqual(reply.error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
            self.assertIn(fragment, reply.error_response.error_message)
        self.assertEqual(replies[4].all_extension_numbers_response.base_type_name,
                         "sculpt.v1.GenerateRequest")
        self.assertEqual(list(replies[4].all_extension_numbers_response.extension_number), [])
        self.assertEqual(replies[5].error_response.error_code,
                         grpc.StatusCode.INVALID_ARGUMENT.value[0])

        # Build the API from the reflected descriptors alone and call Complete with it.
        pool = descriptor_pool.DescriptorPool()
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in replies[1].file_descriptor_response.file_descriptor_proto]
        self.assertEqual(files[0].name, "sculpt/v1/text_diffusion.proto")
        pending = {file.name: file for file in files}
        while pending:  # each file after its dependencies, as a client's pool needs them
            ready = [f for f in pending.values() if not set(f.dependency) & pending.keys()]
            self.assertTrue(ready, f"the reply lacks a dependency of {sorted(pending)}")
            for file in ready:
                pool.Add(file)
                del pending[file.name]
        method = pool.FindMethodByName("sculpt.v1.TextDiffusion.Complete")
        RequestType = message_factory.GetMessageClass(method.input_type)
        ResultType = message_factory.GetMessageClass(method.output_type)
        complete = self.server.channel.unary_unary(
            "/sculpt.v1.TextDiffusion/Complete",
            request_serializer=RequestType.SerializeToString,
            response_deserializer=ResultType.FromString,
        )
        fields = dict(prompt=PROMPT, gen_length=8, steps=4, block_length=8, seed=1)
        reflected = complete(RequestType(**fields), timeout=60)
        compiled = self.server.stub.Complete(request(**fields), timeout=60)
        self.assertEqual(result_key(reflected), result_key(compiled))
        self.assertEqual(len(reflected.token_ids), 8)


class LoadRecipeTest(unittest.TestCase):
    """deploy/: the ghz configs speak our proto, and the h2load recipe really drives Complete."""

    DEPLOY = pathlib.Path(__file__).resolve().parents[3] / "deploy"

    def test_ghz_configs_parse_as_requests(self):
        from google.protobuf import json_format

        for name in ("complete.json", "generate.json"):
            config = json.loads((self.DEPLOY / "ghz" / name).read_text())
            self.assertTrue(config["call"].startswith("sculpt.v1.TextDiffusion."))
            message = json_format.ParseDict(config["data"], pb.GenerateRequest())
            self.assertEqual(message.prompt, "def fibonacci(n):")

    def test_h2load_frame_and_run(self):
        import shutil
        import subprocess

        with tempfile.TemporaryDirectory() as tmp:
            frame = pathlib.Path(tmp) / "complete.frame"
            subprocess.run([str(self.DEPLOY / "h2load/make_frame.sh"),
                            str(self.DEPLOY / "h2load/complete.txtpb"), str(frame)],
                           check=True, capture_output=True)
            data = frame.read_bytes()
            self.assertEqual(data[0], 0)
            self.assertEqual(int.from_bytes(data[1:5], "big"), len(data) - 5)
            message = pb.GenerateRequest.FromString(data[5:])
            self.assertEqual(message.gen_length, 32)
        if shutil.which("h2load") is None:
            self.skipTest("h2load (Debian nghttp2-client) is not installed")
        server = Server()
        try:
            out = subprocess.run([str(self.DEPLOY / "h2load/run.sh"), server.address, "8", "2"],
                                 check=True, capture_output=True, text=True, timeout=300)
            self.assertIn("8 succeeded", out.stdout)
            for _ in range(8):
                server.wait_log("status=OK")
            finished = [l for l in server.log_lines if "request finished" in l]
            self.assertEqual(len(finished), 8)
            self.assertTrue(all("finish_reason=length status=OK" in l for l in finished))
        finally:
            server.stop()


class InvalidInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--max-request-bytes", "65536")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def expect(self, message, code, fragment):
        for call in (self.server.stub.Complete, self.server.stub.Generate):
            with self.assertRaises(grpc.RpcError, msg=str(message)) as error:
                reply = call(message, timeout=30)
                if call is self.server.stub.Generate:
                    list(reply)
            self.assertEqual(error.exception.code(), code, error.exception.details())
            self.assertIn(fragment, error.exception.details())

    def test_text_that_is_not_utf8_is_invalid_argument_naming_the_field(self):
        channel = self.server.channel

        def raw_call(method, message, replace=b"AB"):
            data = message.SerializeToString().replace(replace, b"\xff\xfe")
            if method == "Generate":
                call = channel.unary_stream(f"/sculpt.v1.TextDiffusion/{method}",
                                            request_serializer=lambda x: x,
                                            response_deserializer=lambda x: x)
                with self.assertRaises(grpc.RpcError) as error:
                    list(call(data, timeout=30))
            else:
                call = channel.unary_unary(f"/sculpt.v1.TextDiffusion/{method}",
                                           request_serializer=lambda x: x,
                                           response_deserializer=lambda x: x)
                with self.assertRaises(grpc.RpcError) as error:
                    call(data, timeout=30)
            return error.exception

        for method in ("Complete", "Generate"):
            for message, field in [
                (pb.GenerateRequest(prompt="AB", gen_length=8), "prompt"),
                (pb.GenerateRequest(messages=[pb.ChatMessage(role="user", content="ok"),
                                              pb.ChatMessage(role="user", content="AB")],
                                    gen_length=8), "messages[1].content"),
                (pb.GenerateRequest(prompt="x", stop=["AB"], gen_length=8), "stop[0]"),
            ]:
                with self.subTest(method=method, field=field):
                    error = raw_call(method, message)
                    self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT)
                    self.assertIn(field + " is not valid UTF-8", error.details())
        error = raw_call("Tokenize", pb.TokenizeRequest(text="AB"))
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("text is not valid UTF-8", error.details())
        # Bytes that are not a message at all.
        call = channel.unary_unary("/sculpt.v1.TextDiffusion/Complete",
                                   request_serializer=lambda x: x,
                                   response_deserializer=lambda x: x)
        with self.assertRaises(grpc.RpcError) as error:
            call(b"\xff\xff\xff", timeout=30)
        self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("not a valid sculpt.v1.GenerateRequest", error.exception.details())

    def test_every_invalid_field_is_named(self):
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        cases = [
            (pb.GenerateRequest(gen_length=8), "exactly one of prompt"),
            (pb.GenerateRequest(prompt="a", prompt_ids=[1], gen_length=8), "exactly one of"),
            (request(gen_length=0), "gen_length"),
            (request(gen_length=600), "gen_length"),
            (request(gen_length=511), "max_sequence_length"),
            (request(gen_length=16, steps=0), "steps"),
            (request(gen_length=16, steps=5, block_length=8), "steps"),
            (request(gen_length=16, block_length=5), "block_length"),
            (request(gen_length=16, block_length=-1), "block_length"),
            (request(gen_length=8, remasking="best"), "remasking"),
            (request(gen_length=8, remasking="threshold", confidence_threshold=1.5),
             "confidence_threshold"),
            (request(gen_length=8, confidence_threshold=-0.1), "confidence_threshold"),
            (request(gen_length=8, temperature=-1), "temperature"),
            (request(gen_length=8, temperature=float("nan")), "temperature"),
            (request(gen_length=8, top_p=0), "top_p"),
            (request(gen_length=8, top_p=1.5), "top_p"),
            (request(gen_length=8, top_k=-2), "top_k"),
            (request(gen_length=8, cfg_scale=-1), "cfg_scale"),
            (request(gen_length=8, factor=0), "factor"),
            (request(gen_length=8, stop=[""]), "stop[0]"),
            (request(gen_length=8, stop=["x"] * 17), "stop"),
            (request(gen_length=8, stop=["x" * 300]), "stop[0]"),
            (pb.GenerateRequest(prompt_ids=[1, 99999], gen_length=8), "prompt_ids[1]"),
            (pb.GenerateRequest(prompt_ids=[-1], gen_length=8), "prompt_ids[0]"),
            (pb.GenerateRequest(infill="no masks here"), "no masked span"),
            (pb.GenerateRequest(infill="<|mask:0|>"), "mask"),
            (pb.GenerateRequest(infill="x<|mask:600|>"), "context"),
            (request(gen_length=8, request_id="r" * 200), "request_id"),
            (request(gen_length=8, stream_options=pb.StreamOptions(min_interval_ms=10**6)),
             "min_interval_ms"),
            (pb.GenerateRequest(messages=[pb.ChatMessage(role="robot", content="hi")],
                                gen_length=8), "messages[0].role"),
        ]
        for message, fragment in cases:
            with self.subTest(fragment=fragment, message=str(message)[:80]):
                self.expect(message, invalid, fragment)

    def test_unknown_model_is_not_found(self):
        self.expect(request(model="llama", gen_length=8), grpc.StatusCode.NOT_FOUND, "llama")
        with self.assertRaises(grpc.RpcError) as error:
            self.server.stub.Tokenize(pb.TokenizeRequest(model="llama", text="x"))
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_oversized_message_is_resource_exhausted(self):
        with self.assertRaises(grpc.RpcError) as error:
            self.server.stub.Complete(request(prompt="x" * 100_000, gen_length=8), timeout=30)
        self.assertEqual(error.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_invalid_utf8_is_rejected_and_the_server_lives_on(self):
        # Python's protobuf refuses to encode such a string, so the bytes are written by hand:
        # field 3 (prompt), wire type 2, length 2, then an invalid UTF-8 sequence.
        raw = bytes([0x1A, 0x02, 0xC3, 0x28])
        call = self.server.channel.unary_unary(
            "/sculpt.v1.TextDiffusion/Complete",
            request_serializer=lambda payload: payload,
            response_deserializer=pb.GenerateResult.FromString,
        )
        with self.assertRaises(grpc.RpcError) as error:
            call(raw + bytes([0x50, 0x08]), timeout=30)  # gen_length (field 10) = 8
        # protobuf refuses to parse the message, so gRPC answers before our code sees it
        # (grpc 1.51 says UNIMPLEMENTED); what matters is an error, and a server that lives on.
        self.assertNotEqual(error.exception.code(), grpc.StatusCode.OK)
        self.assertEqual(self.server.stub.Complete(request(gen_length=4)).finish_reason, "length")


class ConcurrencyTest(unittest.TestCase):
    """Batching never changes a result: 32 concurrent streams, each against its run alone."""

    def settings(self):
        policies = ["low_confidence", "random", "threshold", "factor", "margin", "entropy",
                    "maskgit_plus", "origin"]
        out = []
        for i in range(32):
            gen_length = [8, 16, 24, 32][i % 4]
            blocks = [1, 2, 4, 8][(i // 4) % 4]
            out.append(dict(
                prompt=["def f(x):", "import os", "class A:", "# add two numbers"][i % 4] * (1 + i % 3),
                gen_length=gen_length,
                block_length=gen_length // blocks if gen_length % blocks == 0 else gen_length,
                steps=gen_length,
                remasking=policies[i % len(policies)],
                temperature=[0.0, 0.8][i % 2],
                seed=1000 + i,
                cfg_scale=1.0 if i % 7 == 0 else 0.0,
                early_stop=i % 5 == 0,
                stream_options=pb.StreamOptions(mode=pb.StreamOptions.STEPS),
            ))
        return out

    def test_32_concurrent_streams_equal_their_alone_runs(self):
        settings = self.settings()
        server = Server("--max-num-seqs", "32")
        try:
            alone = [result_key(server.stub.Complete(pb.GenerateRequest(**s), timeout=120))
                     for s in settings]
            steps_before = server.info().steps_total
            barrier = threading.Barrier(len(settings))

            def stream(s):
                barrier.wait()
                events = list(server.stub.Generate(pb.GenerateRequest(**s), timeout=300))
                return events

            with concurrent.futures.ThreadPoolExecutor(len(settings)) as pool:
                streams = list(pool.map(stream, settings))
            batched = [result_key(events[-1].final) for events in streams]
            # They really shared steps: far fewer engine steps than the requests' steps.
            shared_steps = server.info().steps_total - steps_before
            own_steps = sum(events[-1].final.usage.steps for events in streams)
            self.assertLess(shared_steps, own_steps / 4)
            for i, (a, b) in enumerate(zip(alone, batched)):
                self.assertEqual(a, b, f"request {i} changed when batched: {settings[i]}")
            # Slots are freed at the end of the step that finished the requests.
            server.wait_for(lambda i: i.running == 0 and i.waiting == 0)
            # Negative control: the same comparison catches a one-setting difference.
            changed = dict(settings[1], seed=settings[1]["seed"] + 1)
            self.assertNotEqual(
                result_key(server.stub.Complete(pb.GenerateRequest(**changed), timeout=120)),
                alone[1],
            )
        finally:
            server.stop()


class LifecycleTest(unittest.TestCase):
    LONG = dict(prompt="def long():", gen_length=256, steps=256)

    def test_cancel_frees_the_slot_within_a_step(self):
        server = Server("--max-num-seqs", "1")
        try:
            call = server.stub.Generate(request(**self.LONG), timeout=120)
            for event in call:
                if event.WhichOneof("event") == "step" and event.step.step >= 3:
                    break
            info = server.info()
            self.assertEqual(info.running, 1)
            self.assertEqual(info.free_slots, 0)
            step_ms = info.recent_step_ms
            call.cancel()
            info, waited = server.wait_for(lambda i: i.running == 0 and i.free_slots == 1)
            # One step plus polling and RPC overhead.
            self.assertLess(waited, 1.0 + 5 * step_ms / 1000, f"step {step_ms:.1f} ms")
            server.wait_log("finish_reason=cancelled")
            # The freed slot serves the next request.
            self.assertEqual(server.stub.Complete(request(gen_length=8), timeout=60).finish_reason,
                             "length")
        finally:
            server.stop()

    def test_deadlines(self):
        server = Server("--max-num-seqs", "1")
        try:
            # Running past its deadline: the client sees DEADLINE_EXCEEDED, the slot frees.
            with self.assertRaises(grpc.RpcError) as error:
                server.stub.Complete(request(**self.LONG), timeout=0.3)
            self.assertEqual(error.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            server.wait_for(lambda i: i.running == 0 and i.waiting == 0)
            # Logged and counted as a deadline, not as a cancellation.
            server.wait_log("finish_reason=deadline")
            self.assertNotIn("finish_reason=cancelled", "\n".join(server.log_lines))
            # Queued behind a long request with a deadline the queue makes impossible: refused
            # without running.
            blocker = server.stub.Generate(request(**self.LONG), timeout=120)
            next(iter(blocker))
            server.wait_for(lambda i: i.running == 1)
            start = time.monotonic()
            with self.assertRaises(grpc.RpcError) as error:
                server.stub.Complete(request(gen_length=8), timeout=0.5)
            self.assertEqual(error.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            self.assertLess(time.monotonic() - start, 5)
            blocker.cancel()
            server.wait_for(lambda i: i.running == 0 and i.waiting == 0)
            steps_before = server.info().steps_total
            self.assertGreater(steps_before, 0)
        finally:
            server.stop()

    def test_queue_full_is_resource_exhausted(self):
        server = Server("--max-num-seqs", "1", "--max-queued-requests", "1")
        try:
            running = server.stub.Generate(request(**self.LONG), timeout=120)
            next(iter(running))
            server.wait_for(lambda i: i.running == 1)
            queued = server.stub.Generate(request(**self.LONG), timeout=120)
            next(iter(queued))
            server.wait_for(lambda i: i.waiting == 1)
            with self.assertRaises(grpc.RpcError) as error:
                server.stub.Complete(request(gen_length=8), timeout=30)
            self.assertEqual(error.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("queue is full", error.exception.details())
            running.cancel()
            queued.cancel()
            server.wait_for(lambda i: i.running == 0 and i.waiting == 0)
        finally:
            server.stop()

    def test_sigterm_drains(self):
        server = Server("--shutdown-timeout", "600")
        try:
            # Long enough that the drain is still going on while the test looks at it.
            in_flight = server.stub.Generate(request(gen_length=480, steps=480), timeout=600)
            first = next(iter(in_flight))
            self.assertEqual(first.WhichOneof("event"), "accepted")
            server.process.send_signal(signal.SIGTERM)
            health = health_pb2_grpc.HealthStub(server.channel)
            deadline = time.monotonic() + 10
            while True:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                self.assertLess(time.monotonic(), deadline, "health never turned NOT_SERVING")
                time.sleep(0.01)
            with self.assertRaises(grpc.RpcError) as error:
                server.stub.Complete(request(gen_length=8), timeout=10)
            self.assertEqual(error.exception.code(), grpc.StatusCode.UNAVAILABLE)
            rest = list(in_flight)
            self.assertEqual(rest[-1].final.finish_reason, "length")
            self.assertEqual(server.process.wait(timeout=60), 0)
        finally:
            server.stop()

    def test_shutdown_timeout_cancels_what_is_left(self):
        server = Server("--shutdown-timeout", "0.2")
        try:
            in_flight = server.stub.Generate(request(**self.LONG), timeout=120)
            next(iter(in_flight))
            server.wait_for(lambda i: i.running == 1)
            server.process.send_signal(signal.SIGTERM)
            events = list(in_flight)
            self.assertEqual(events[-1].final.finish_reason, "cancelled")
            self.assertEqual(server.process.wait(timeout=60), 0)
        finally:
            server.stop()


class ConfigurationTest(unittest.TestCase):
    def test_flags_beat_environment_beat_config_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
            json.dump({"max_num_seqs": 5, "max-queued-requests": 7, "log_format": "json"}, config)
        try:
            server = Server("--config", config.name, env={"SCULPT_MAX_NUM_SEQS": "3"})
            try:
                limits = server.info().limits
                self.assertEqual(limits.max_num_seqs, 3)  # environment over file
                self.assertEqual(limits.max_queued_requests, 7)  # file over default
                server.stub.Complete(request(gen_length=8, request_id="json-log-1"), timeout=60)
            finally:
                server.stop()
            # JSON log lines: every line one object; the finished request is described.
            records = [json.loads(line) for line in server.log_lines if line.strip()]
            finished = [r for r in records if "request_id=json-log-1" in r["message"]]
            self.assertEqual(len(finished), 1)
            self.assertIn("finish_reason=length", finished[0]["message"])
            self.assertIn("total_ms=", finished[0]["message"])
            server = Server("--config", config.name, "--max-num-seqs", "2",
                            env={"SCULPT_MAX_NUM_SEQS": "3"})
            try:
                self.assertEqual(server.info().limits.max_num_seqs, 2)  # flag over all
            finally:
                server.stop()
        finally:
            os.unlink(config.name)

    def test_bad_configuration_exits_with_a_message(self):
        import subprocess
        from sculpt_server import sculpt_binary

        for args, env, fragment in [
            (["--max-num-seqs", "0"], {}, "--max-num-seqs"),
            (["--bogus"], {}, "unknown flag --bogus"),
            ([], {"SCULPT_MAX_NUM_SEQS": "many"}, "--max-num-seqs"),
            (["--model", "/nonexistent"], {}, "/nonexistent"),
            (["--log-format", "xml"], {}, "--log-format"),
        ]:
            with self.subTest(args=args, env=env):
                out = subprocess.run([str(sculpt_binary()), "serve", "--grpc-port", "0",
                                      "--http-port", "0", *args],
                                     capture_output=True, text=True, timeout=60,
                                     env=dict(os.environ, **env))
                self.assertNotEqual(out.returncode, 0)
                self.assertIn(fragment, out.stderr)


if __name__ == "__main__":
    unittest.main()
