"""The access log of `sculpt serve`: one JSON line per HTTP request and per gRPC call, with the
client's request id honoured and echoed (X-Request-Id / x-request-id metadata), else made."""

from __future__ import annotations

import json
import pathlib
import subprocess
import tempfile
import time
import unittest

import grpc
import httpx

from sculpt_server import TINY_TEXT_MODEL, Server, pb, sculpt_binary


def read_lines(path: pathlib.Path, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


class AccessLogTest(unittest.TestCase):
    def test_http_and_grpc_calls_are_logged_with_their_request_ids(self):
        with tempfile.TemporaryDirectory() as scratch:
            log = pathlib.Path(scratch) / "access.jsonl"
            server = Server("--access-log", str(log))
            try:
                http = httpx.Client(base_url=server.http_url, timeout=60)
                named = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 4},
                                  headers={"X-Request-Id": "client-42"})
                self.assertEqual(named.status_code, 200, named.text)
                self.assertEqual(named.headers["x-request-id"], "client-42")
                self.assertEqual(named.json()["id"], "cmpl-client-42")
                unnamed = http.get("/v1/nothing")
                self.assertEqual(unnamed.status_code, 404)
                made = unnamed.headers["x-request-id"]
                self.assertTrue(made)
                # A request id with a line break or a space is not used: one is made instead.
                bad = http.get("/health", headers={"X-Request-Id": "a b"})
                self.assertNotEqual(bad.headers["x-request-id"], "a b")

                result, call = server.stub.Complete.with_call(
                    pb.GenerateRequest(prompt="x", gen_length=4),
                    metadata=[("x-request-id", "grpc-7")], timeout=60)
                self.assertEqual(result.request_id, "grpc-7")
                self.assertEqual(dict(call.initial_metadata())["x-request-id"], "grpc-7")
                with self.assertRaises(grpc.RpcError):
                    server.stub.Complete(pb.GenerateRequest(prompt="x", gen_length=0), timeout=60)

                lines = read_lines(log, 5)
                self.assertEqual(len(lines), 5, lines)
                by_id = {line["request_id"]: line for line in lines}
                first = by_id["client-42"]
                self.assertEqual((first["protocol"], first["method"], first["path"],
                                  first["status"]), ("http", "POST", "/v1/completions", 200))
                self.assertEqual(first["bytes"], len(named.content))
                self.assertGreater(first["duration_ms"], 0)
                self.assertTrue(first["client"].startswith("127.0.0.1:"))
                self.assertEqual(by_id[made]["status"], 404)
                grpc_line = by_id["grpc-7"]
                self.assertEqual((grpc_line["protocol"], grpc_line["method"], grpc_line["status"]),
                                 ("grpc", "/sculpt.v1.TextDiffusion/Complete", 0))
                refused = [line for line in lines if line["protocol"] == "grpc"
                           and line["status"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]]
                self.assertEqual(len(refused), 1, lines)
                for line in lines:
                    self.assertRegex(line["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
                http.close()
            finally:
                server.stop()

    def test_an_access_log_that_cannot_be_opened_is_refused_at_start(self):
        run = subprocess.run(
            [str(sculpt_binary()), "serve", "--model", str(TINY_TEXT_MODEL), "--grpc-port", "0",
             "--http-port", "0", "--access-log", "/nonexistent/dir/access.jsonl"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertIn("--access-log", run.stderr)


if __name__ == "__main__":
    unittest.main()
