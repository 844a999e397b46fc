"""API keys, per-key limits and TLS through a real `sculpt serve`, with real clients: grpcio
(insecure and secure channels, mTLS), the official openai SDK (over https with a CA this test
makes with the openssl CLI), httpx and raw sockets.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import grpc
import httpx
import openai
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sculpt_server import TINY_TEXT_MODEL, Server, pb, start_error

ALPHA = "sk-alpha-0123456789abcdef"
BRAVO = "sk-bravo-0123456789abcdef"
CHARLIE = "sk-charlie-0123456789abcdef"
PROMPT = "def add(a, b):"


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def bearer(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def short_request(**fields) -> pb.GenerateRequest:
    fields.setdefault("prompt", PROMPT)
    fields.setdefault("gen_length", 8)
    fields.setdefault("steps", 4)
    return pb.GenerateRequest(**fields)


def long_request() -> pb.GenerateRequest:
    # Many steps, so that it is still running while the test sends more.
    return pb.GenerateRequest(prompt=PROMPT, gen_length=256, steps=256, block_length=256)


class ApiKeyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.TemporaryDirectory()
        cls.key_file = pathlib.Path(cls.scratch.name, "keys.txt")
        cls.key_file.write_text(f"# the test's keys\n{BRAVO}\n")
        cls.access_log = pathlib.Path(cls.scratch.name, "access.jsonl")
        cls.server = Server(
            "--api-key",
            ALPHA,
            "--api-key-file",
            str(cls.key_file),
            "--access-log",
            str(cls.access_log),
        )
        cls.http = httpx.Client(base_url=cls.server.http_url, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.http.close()
        cls.server.stop()
        cls.scratch.cleanup()

    def openai_client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.server.http_url + "/v1", api_key=key, max_retries=0, timeout=60
        )

    def test_http_needs_a_valid_key_and_says_nothing_of_which_was_wrong(self):
        body = {"model": TINY_TEXT_MODEL.name, "prompt": PROMPT, "max_tokens": 8}
        missing = self.http.post("/v1/completions", json=body)
        wrong = self.http.post(
            "/v1/completions",
            json=body,
            headers={"Authorization": "Bearer sk-not-a-key-0123456789"},
        )
        no_scheme = self.http.post("/v1/completions", json=body, headers={"Authorization": ALPHA})
        for response in (missing, wrong, no_scheme):
            self.assertEqual(response.status_code, 401, response.text)
            self.assertEqual(response.headers["www-authenticate"], "Bearer")
            self.assertEqual(
                response.json()["error"]["message"], missing.json()["error"]["message"]
            )
        for path in ("/v1/models", "/v1/tokenize", "/v1/generate", "/v1/refine"):
            method = self.http.get if path == "/v1/models" else self.http.post
            kwargs = {} if path == "/v1/models" else {"json": {"prompt": PROMPT}}
            self.assertEqual(method(path, **kwargs).status_code, 401, path)

        for key in (ALPHA, BRAVO):
            completion = self.openai_client(key).completions.create(
                model=TINY_TEXT_MODEL.name, prompt=PROMPT, max_tokens=8
            )
            self.assertEqual(completion.choices[0].finish_reason in ("stop", "length"), True)
        with self.assertRaises(openai.AuthenticationError):
            self.openai_client("sk-wrong-0123456789abcdef").completions.create(
                model=TINY_TEXT_MODEL.name, prompt=PROMPT, max_tokens=8
            )

    def test_probes_version_and_metrics_stay_open(self):
        for path in (
            "/health",
            "/live",
            "/v2/health/live",
            "/v2/health/ready",
            "/version",
            "/metrics",
            "/",
        ):
            self.assertEqual(self.http.get(path).status_code, 200, path)
        self.assertEqual(self.http.get("/v2/health/ready").json()["status"], "ok")

    def test_grpc_needs_a_valid_key_and_health_and_reflection_do_not(self):
        stub = self.server.stub
        calls = {
            "Complete": lambda metadata: stub.Complete(
                short_request(), metadata=metadata, timeout=60
            ),
            "Generate": lambda metadata: list(
                stub.Generate(short_request(), metadata=metadata, timeout=60)
            ),
            "Refine": lambda metadata: list(
                stub.Refine(
                    iter([pb.RefineRequest(open=short_request())]), metadata=metadata, timeout=60
                )
            ),
            "Tokenize": lambda metadata: stub.Tokenize(
                pb.TokenizeRequest(text="x"), metadata=metadata, timeout=10
            ),
            "ListModels": lambda metadata: stub.ListModels(
                pb.ListModelsRequest(), metadata=metadata, timeout=10
            ),
            "GetServerInfo": lambda metadata: stub.GetServerInfo(
                pb.GetServerInfoRequest(), metadata=metadata, timeout=10
            ),
        }
        details = set()
        for name, call in calls.items():
            for metadata in (None, bearer("sk-wrong-0123456789abcdef"), [("authorization", ALPHA)]):
                with self.assertRaises(grpc.RpcError, msg=name) as refused:
                    call(metadata)
                self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAUTHENTICATED, name)
                details.add(refused.exception.details())
            call(bearer(ALPHA))
            call(bearer(BRAVO))
        self.assertEqual(len(details), 1, details)
        health = health_pb2_grpc.HealthStub(self.server.channel)
        self.assertEqual(
            health.Check(
                health_pb2.HealthCheckRequest(service="sculpt.v1.TextDiffusion"), timeout=10
            ).status,
            health_pb2.HealthCheckResponse.SERVING,
        )

    def test_logs_name_the_key_by_its_id_and_never_print_it(self):
        self.server.stub.Complete(
            short_request(request_id="log-alpha"), metadata=bearer(ALPHA), timeout=60
        )
        self.http.post(
            "/v1/generate",
            json={"prompt": PROMPT, "gen_length": 8, "steps": 4},
            headers={"Authorization": f"Bearer {BRAVO}", "X-Request-Id": "log-bravo"},
        ).raise_for_status()
        self.server.wait_log("request_id=log-bravo")
        time.sleep(0.2)
        lines = [json.loads(line) for line in self.access_log.read_text().splitlines()]
        by_id = {line["request_id"]: line for line in lines if line["request_id"]}
        self.assertEqual(by_id["log-alpha"]["key_id"], key_id(ALPHA))
        self.assertEqual(by_id["log-alpha"]["protocol"], "grpc")
        self.assertEqual(by_id["log-bravo"]["key_id"], key_id(BRAVO))
        self.assertEqual(by_id["log-bravo"]["protocol"], "http")
        refused = [line for line in lines if line["status"] in (401, 16)]
        self.assertTrue(refused)
        self.assertTrue(all("key_id" not in line for line in refused))
        self.assertIn(f"key_id={key_id(ALPHA)}", self.server.wait_log("request_id=log-alpha"))
        everything = self.access_log.read_text() + "\n".join(self.server.log_lines)
        for key in (ALPHA, BRAVO):
            self.assertNotIn(key, everything)

    def test_unauthenticated_requests_are_counted(self):
        def count(protocol: str) -> float:
            for line in self.http.get("/metrics").text.splitlines():
                if line.startswith("sculpt_unauthenticated_requests_total{") and (
                    f'protocol="{protocol}"' in line
                ):
                    return float(line.rsplit(" ", 1)[1])
            raise AssertionError("no sculpt_unauthenticated_requests_total for " + protocol)

        before_http, before_grpc = count("http"), count("grpc")
        self.http.get("/v1/models")
        with self.assertRaises(grpc.RpcError):
            self.server.stub.ListModels(pb.ListModelsRequest(), timeout=10)
        self.assertEqual(count("http"), before_http + 1)
        self.assertEqual(count("grpc"), before_grpc + 1)


class KeyFileReloadTest(unittest.TestCase):
    def test_sighup_rereads_the_key_file_and_a_bad_one_keeps_the_keys(self):
        with tempfile.TemporaryDirectory() as scratch:
            key_file = pathlib.Path(scratch, "keys.txt")
            key_file.write_text(f"{ALPHA}\n{BRAVO}\n")
            server = Server("--api-key-file", str(key_file))
            try:

                def works(key: str) -> bool:
                    try:
                        server.stub.ListModels(
                            pb.ListModelsRequest(), metadata=bearer(key), timeout=10
                        )
                        return True
                    except grpc.RpcError as error:
                        self.assertEqual(error.code(), grpc.StatusCode.UNAUTHENTICATED)
                        return False

                self.assertEqual([works(ALPHA), works(BRAVO), works(CHARLIE)], [True, True, False])
                key_file.write_text(f"{ALPHA}\n{CHARLIE}\n")
                server.process.send_signal(signal.SIGHUP)
                server.wait_log("SIGHUP: 2 API keys accepted now")
                self.assertEqual([works(ALPHA), works(BRAVO), works(CHARLIE)], [True, False, True])
                key_file.write_text("# nothing left\n")
                server.process.send_signal(signal.SIGHUP)
                server.wait_log("the previous keys stay")
                self.assertEqual([works(ALPHA), works(BRAVO), works(CHARLIE)], [True, False, True])
                self.assertIsNone(server.process.poll(), "SIGHUP stopped the server")
            finally:
                server.stop()


class ProtectMetricsTest(unittest.TestCase):
    def test_metrics_need_a_key_when_protected(self):
        server = Server("--api-key", ALPHA, "--protect-metrics")
        try:
            with httpx.Client(base_url=server.http_url, timeout=30) as http:
                self.assertEqual(http.get("/metrics").status_code, 401)
                protected = http.get("/metrics", headers={"Authorization": f"Bearer {ALPHA}"})
                self.assertEqual(protected.status_code, 200)
                self.assertIn("sculpt_num_requests_waiting", protected.text)
                self.assertEqual(http.get("/health").status_code, 200)
        finally:
            server.stop()


class StartErrorTest(unittest.TestCase):
    def test_bad_keys_and_tls_files_are_start_errors_naming_the_flag(self):
        with tempfile.TemporaryDirectory() as scratch:
            empty = pathlib.Path(scratch, "empty.txt")
            empty.write_text("# no key\n")
            not_pem = pathlib.Path(scratch, "not.pem")
            not_pem.write_text("hello\n")
            cases = [
                (["--api-key-file", "/nonexistent/keys.txt"], "--api-key-file /nonexistent"),
                (["--api-key-file", str(empty)], "holds no key"),
                (["--api-key", "short"], "--api-key #1"),
                (["--max-requests-per-key", "2"], "give --api-key or --api-key-file"),
                (["--protect-metrics"], "--protect-metrics needs API keys"),
                (
                    ["--tls-cert", "/nonexistent/cert.pem", "--tls-key", str(not_pem)],
                    "--tls-cert /nonexistent/cert.pem",
                ),
                (["--tls-cert", str(not_pem)], "both --tls-cert and --tls-key"),
                (
                    ["--tls-cert", str(not_pem), "--tls-key", str(not_pem)],
                    "holds no PEM certificate",
                ),
            ]
            for flags, fragment in cases:
                self.assertIn(fragment, start_error(*flags), flags)


class PerKeyLimitTest(unittest.TestCase):
    def metric(self, server: Server, key: str, result: str) -> float:
        text = httpx.get(server.http_url + "/metrics", timeout=10).text
        wanted = f'key_id="{key_id(key)}",result="{result}"'
        for line in text.splitlines():
            if line.startswith("sculpt_key_requests_total{") and wanted in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def test_running_generations_per_key_are_capped_with_retry_after(self):
        server = Server("--api-key", ALPHA, "--api-key", BRAVO, "--max-requests-per-key", "1")
        try:
            stream = server.stub.Generate(long_request(), metadata=bearer(ALPHA), timeout=None)
            self.assertEqual(next(stream).WhichOneof("event"), "accepted")
            with self.assertRaises(grpc.RpcError) as refused:
                server.stub.Complete(short_request(), metadata=bearer(ALPHA), timeout=60)
            self.assertEqual(refused.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn(key_id(ALPHA), refused.exception.details())
            trailers = dict(refused.exception.trailing_metadata())
            self.assertEqual(trailers["retry-after"], "1")
            self.assertEqual(trailers["grpc-retry-pushback-ms"], "1000")
            http = httpx.post(
                server.http_url + "/v1/completions",
                timeout=60,
                headers={"Authorization": f"Bearer {ALPHA}"},
                json={"prompt": PROMPT, "max_tokens": 8},
            )
            self.assertEqual(http.status_code, 429, http.text)
            self.assertEqual(http.headers["retry-after"], "1")
            self.assertEqual(http.json()["error"]["type"], "rate_limit_error")
            self.assertEqual(http.json()["error"]["code"], "rate_limit_exceeded")
            # Another key is not held back by this one's generation.
            server.stub.Complete(short_request(), metadata=bearer(BRAVO), timeout=60)
            self.assertEqual(self.metric(server, ALPHA, "concurrency_limited"), 2)
            stream.cancel()
            # The cancelled generation's slot comes back.
            deadline = time.monotonic() + 30
            while True:
                try:
                    server.stub.Complete(short_request(), metadata=bearer(ALPHA), timeout=60)
                    break
                except grpc.RpcError as error:
                    self.assertEqual(error.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                    self.assertLess(time.monotonic(), deadline, "the slot never came back")
                    time.sleep(0.05)
            self.assertEqual(self.metric(server, ALPHA, "admitted"), 2)
            self.assertEqual(self.metric(server, BRAVO, "admitted"), 1)
        finally:
            server.stop()

    def test_rate_per_key_is_a_token_bucket_with_retry_after(self):
        server = Server("--api-key", ALPHA, "--api-key", BRAVO, "--rate-limit-per-key", "1")
        try:
            server.stub.Complete(short_request(), metadata=bearer(ALPHA), timeout=60)
            started = time.monotonic()
            with self.assertRaises(grpc.RpcError) as refused:
                server.stub.Complete(short_request(), metadata=bearer(ALPHA), timeout=60)
            self.assertEqual(refused.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(dict(refused.exception.trailing_metadata())["retry-after"], "1")
            server.stub.Complete(short_request(), metadata=bearer(BRAVO), timeout=60)
            time.sleep(max(0.0, 1.05 - (time.monotonic() - started)))
            server.stub.Complete(short_request(), metadata=bearer(ALPHA), timeout=60)
            self.assertEqual(self.metric(server, ALPHA, "rate_limited"), 1)
        finally:
            server.stop()


class RefineSessionKeyTest(unittest.TestCase):
    def test_only_the_key_that_opened_a_session_may_edit_it(self):
        server = Server("--api-key", ALPHA, "--api-key", BRAVO)
        try:
            with httpx.Client(base_url=server.http_url, timeout=60) as http:
                with http.stream(
                    "POST",
                    "/v1/refine",
                    headers={"Authorization": f"Bearer {ALPHA}"},
                    json={"prompt": PROMPT, "gen_length": 8, "steps": 4, "start_paused": True},
                ) as stream:
                    # The lines' iterator is kept: closing it would close the stream, and so
                    # the session.
                    lines = stream.iter_lines()
                    session = None
                    while session is None:
                        line = next(lines)
                        if line.startswith("data:") and "session_id" in line:
                            session = json.loads(line[5:])["session_id"]
                    edit = {"edits": [{"finish": {}}]}
                    path = f"/v1/refine/{session}/edits"
                    other = http.post(path, json=edit, headers={"Authorization": f"Bearer {BRAVO}"})
                    self.assertEqual(other.status_code, 404, other.text)
                    self.assertEqual(http.post(path, json=edit).status_code, 401)
                    own = http.post(path, json=edit, headers={"Authorization": f"Bearer {ALPHA}"})
                    self.assertEqual(own.status_code, 202, own.text)
        finally:
            server.stop()


# A new unencrypted P-256 key for `openssl req`.
NEW_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: str) -> None:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate it signed,
    and a second CA with a client certificate of its own (which the server must refuse)."""
    for ca in ("ca", "rogue-ca"):
        openssl(
            "req",
            "-x509",
            *NEW_EC_KEY,
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.crt",
            "-days",
            "2",
            "-subj",
            f"/CN=sculpt test {ca}",
            cwd=directory,
        )
    pathlib.Path(directory, "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    pathlib.Path(directory, "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (
        ("server", "ca", "server.ext"),
        ("client", "ca", "client.ext"),
        ("rogue", "rogue-ca", "client.ext"),
    ):
        openssl(
            "req",
            *NEW_EC_KEY,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=directory,
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            f"{ca}.crt",
            "-CAkey",
            f"{ca}.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            ext,
            cwd=directory,
        )


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.TemporaryDirectory()
        make_pki(cls.pki.name)

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def file(self, name: str) -> str:
        return os.path.join(self.pki.name, name)

    def read(self, name: str) -> bytes:
        return pathlib.Path(self.file(name)).read_bytes()

    def test_grpc_and_https_with_a_real_ca(self):
        credentials = grpc.ssl_channel_credentials(root_certificates=self.read("ca.crt"))
        server = Server(
            "--tls-cert",
            self.file("server.crt"),
            "--tls-key",
            self.file("server.key"),
            "--api-key",
            ALPHA,
            credentials=credentials,
        )
        try:
            self.assertTrue(server.http_url.startswith("https://"))
            result = server.stub.Complete(short_request(), metadata=bearer(ALPHA), timeout=60)
            self.assertEqual(len(result.token_ids) > 0, True)
            # The plain-text client reaches no service on a TLS port.
            with grpc.insecure_channel(server.address) as plain:
                with self.assertRaises(grpc.RpcError) as refused:
                    plain.unary_unary("/sculpt.v1.TextDiffusion/ListModels")(b"", timeout=5)
                self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAVAILABLE)

            with httpx.Client(verify=self.file("ca.crt"), timeout=60) as verified:
                client = openai.OpenAI(
                    base_url=server.http_url + "/v1",
                    api_key=ALPHA,
                    max_retries=0,
                    http_client=verified,
                )
                completion = client.completions.create(
                    model=TINY_TEXT_MODEL.name, prompt=PROMPT, max_tokens=8, extra_body={"steps": 4}
                )
                self.assertEqual(completion.choices[0].text, result.text)
                chunks = list(
                    client.completions.create(
                        model=TINY_TEXT_MODEL.name,
                        prompt=PROMPT,
                        max_tokens=8,
                        stream=True,
                        extra_body={"steps": 4},
                    )
                )
                self.assertEqual(
                    "".join(chunk.choices[0].text for chunk in chunks if chunk.choices), result.text
                )
                self.assertEqual(verified.get(server.http_url + "/health").status_code, 200)
            # A client that does not trust the CA refuses the server.
            with httpx.Client(timeout=10) as untrusting:
                with self.assertRaises(httpx.ConnectError):
                    untrusting.get(server.http_url + "/health")
            # Plain HTTP on the HTTPS port gets no HTTP answer.
            with socket.create_connection(
                ("127.0.0.1", int(server.http_url.rsplit(":", 1)[1])), timeout=10
            ) as raw:
                raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = raw.recv(4096)
                self.assertFalse(answer.startswith(b"HTTP/1.1 200"), answer)
        finally:
            server.stop()

    def test_mutual_tls_requires_a_client_certificate_from_the_ca(self):
        good = grpc.ssl_channel_credentials(
            root_certificates=self.read("ca.crt"),
            private_key=self.read("client.key"),
            certificate_chain=self.read("client.crt"),
        )
        server = Server(
            "--tls-cert",
            self.file("server.crt"),
            "--tls-key",
            self.file("server.key"),
            "--tls-client-ca",
            self.file("ca.crt"),
            credentials=good,
        )
        try:
            server.stub.Complete(short_request(), timeout=60)
            for credentials in (
                grpc.ssl_channel_credentials(root_certificates=self.read("ca.crt")),
                grpc.ssl_channel_credentials(
                    root_certificates=self.read("ca.crt"),
                    private_key=self.read("rogue.key"),
                    certificate_chain=self.read("rogue.crt"),
                ),
            ):
                with grpc.secure_channel(server.address, credentials) as channel:
                    with self.assertRaises(grpc.RpcError) as refused:
                        channel.unary_unary("/sculpt.v1.TextDiffusion/ListModels")(b"", timeout=5)
                    self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAVAILABLE)

            url = server.http_url + "/health"

            def context(client: str | None) -> ssl.SSLContext:
                tls = ssl.create_default_context(cafile=self.file("ca.crt"))
                if client:
                    tls.load_cert_chain(self.file(f"{client}.crt"), self.file(f"{client}.key"))
                return tls

            with httpx.Client(verify=context("client"), timeout=30) as client:
                self.assertEqual(client.get(url).status_code, 200)
            for name in (None, "rogue"):
                with httpx.Client(verify=context(name), timeout=10) as client:
                    with self.assertRaises(
                        (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
                    ):
                        client.get(url)
        finally:
            server.stop()

    def test_a_key_that_is_not_the_certificates_is_a_start_error(self):
        message = start_error(
            "--tls-cert", self.file("server.crt"), "--tls-key", self.file("client.key")
        )
        self.assertIn("is not the key of the certificate", message)
        message = start_error(
            "--tls-cert",
            self.file("server.crt"),
            "--tls-key",
            self.file("server.key"),
            "--tls-client-ca",
            "/nonexistent/ca.pem",
        )
        self.assertIn("--tls-client-ca /nonexistent/ca.pem", message)


if __name__ == "__main__":
    unittest.main(verbosity=2)
