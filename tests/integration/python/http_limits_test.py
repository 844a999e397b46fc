"""The HTTP server of `sculpt serve` against abuse, with raw sockets: every limit is enforced while
reading (before the body or header is buffered), deadlines close slow connections, the
connection cap refuses cleanly, and open streams do not cost a thread each.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import unittest

import httpx

from sculpt_server import Server

PAYLOAD_LIMIT = 4096


def exchange(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Sends `data` (from a thread, so that a server answering early does not block us) and
    returns everything the server sends until it closes or `timeout` passes."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)

    def send():
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server answered and closed before the end: what is tested

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    sock.close()
    return received


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else -1


def error_of(reply: bytes) -> dict:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


class HttpLimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--payload-limit", str(PAYLOAD_LIMIT), "--http-header-timeout", "1",
                            "--http-idle-timeout", "2", "--max-num-seqs", "64",
                            "--max-queued-requests", "512")
        cls.port = cls.server.http_port

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def post(self, headers: bytes, body: bytes = b"") -> bytes:
        return exchange(self.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\n" + headers + b"\r\n" + body)

    def test_a_chunked_body_over_the_limit_is_413_before_it_is_read(self):
        chunk = b"a" * 1024
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(16 << 10))  # 16 MiB
        start = time.monotonic()
        reply = self.post(b"Transfer-Encoding: chunked\r\n", body + b"0\r\n\r\n")
        self.assertEqual(status_of(reply), 413, reply[:200])
        self.assertIn(str(PAYLOAD_LIMIT), error_of(reply)["message"])
        self.assertEqual(error_of(reply)["type"], "invalid_request_error")
        self.assertLess(time.monotonic() - start, 10)
        # Within the limit, a chunked body is read and served.
        small = json.dumps({"prompt": "x", "max_tokens": 4}).encode()
        reply = self.post(b"Transfer-Encoding: chunked\r\nConnection: close\r\n",
                          b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
        self.assertEqual(status_of(reply), 200, reply[:300])

    def test_a_declared_length_over_the_limit_is_413_at_once(self):
        reply = self.post(b"Content-Length: 99999999\r\n")
        self.assertEqual(status_of(reply), 413, reply[:200])

    def test_header_size_count_and_target_length(self):
        huge = exchange(self.port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (10 << 20)
                        + b"\r\n\r\n")
        self.assertEqual(status_of(huge), 431, huge[:200])
        many = exchange(self.port, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                        + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n")
        self.assertEqual(status_of(many), 431, many[:200])
        self.assertIn("header fields", error_of(many)["message"])
        long_target = exchange(self.port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_of(long_target), 414, long_target[:200])
        # Negative control: the same request with ordinary headers is served.
        fine = exchange(self.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        + b"".join(b"X-%d: 1\r\n" % i for i in range(20)) + b"\r\n")
        self.assertEqual(status_of(fine), 200, fine[:200])

    def test_a_post_without_a_body_is_answered_at_once(self):
        start = time.monotonic()
        reply = self.post(b"Connection: close\r\n")
        self.assertEqual(status_of(reply), 400, reply[:200])
        self.assertEqual(error_of(reply)["type"], "invalid_request_error")
        self.assertLess(time.monotonic() - start, 2)

    def test_a_keep_alive_connection_serves_every_request_after_errors(self):
        # Immediate answers (400) and answers that wait on the engine, alternating on one
        # connection: a request must never find it closed (a hang-up watch left from an earlier
        # request once closed connections this way).
        with httpx.Client(base_url=self.server.http_url, timeout=60) as http:
            for i in range(150):
                body = {"prompt": "x", "max_tokens": 2}
                if i % 3 != 2:
                    body["presence_penalty"] = 1  # refused at once
                reply = http.post("/v1/completions", json=body)
                self.assertEqual(reply.status_code, 200 if i % 3 == 2 else 400, (i, reply.text))

    def test_malformed_requests_are_400(self):
        reply = exchange(self.port, b"HELLO\r\n\r\n")
        self.assertEqual(status_of(reply), 400, reply[:200])

    def test_a_slow_header_and_an_idle_connection_are_closed(self):
        start = time.monotonic()
        reply = exchange(self.port, b"GET /health HTTP/1.1\r\nHost: x\r\n", timeout=30)
        self.assertEqual(reply, b"")
        self.assertLess(time.monotonic() - start, 10)  # --http-header-timeout 1
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(30)
        start = time.monotonic()
        self.assertEqual(sock.recv(1), b"")  # closed by the server, idle
        self.assertLess(time.monotonic() - start, 10)  # --http-idle-timeout 2
        sock.close()

    def test_a_slowloris_crowd_does_not_delay_normal_requests(self):
        crowd = []
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.sendall(b"GET /health HTTP/1.1\r\n")  # and never the rest
            crowd.append(sock)
        try:
            with httpx.Client(base_url=self.server.http_url, timeout=30) as http:
                start = time.monotonic()
                reply = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 4})
                self.assertEqual(reply.status_code, 200, reply.text)
                self.assertLess(time.monotonic() - start, 5)
        finally:
            for sock in crowd:
                sock.close()

    def test_open_streams_hold_no_thread_each(self):
        pid = self.server.process.pid
        before = thread_count(pid)
        streams = []
        release = threading.Event()
        opened = threading.Barrier(101)

        def stream(i):
            with httpx.Client(base_url=self.server.http_url, timeout=120) as http:
                with http.stream("POST", "/v1/completions",
                                 json={"prompt": "x", "max_tokens": 64, "steps": 64, "seed": i,
                                       "stream": True}) as reply:
                    lines = reply.iter_lines()
                    next(lines)
                    opened.wait()
                    release.wait()
                    for _ in lines:
                        pass

        for i in range(100):
            thread = threading.Thread(target=stream, args=(i,), daemon=True)
            thread.start()
            streams.append(thread)
        opened.wait(timeout=120)
        during = thread_count(pid)
        release.set()
        for thread in streams:
            thread.join(timeout=120)
        self.assertLessEqual(during - before, 2, f"{before} threads before, {during} with 100 streams")


class HttpConnectionCapTest(unittest.TestCase):
    def test_connections_beyond_the_cap_get_503(self):
        server = Server("--http-max-connections", "4")
        try:
            held = [socket.create_connection(("127.0.0.1", server.http_port)) for _ in range(4)]
            time.sleep(0.2)
            reply = exchange(server.http_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(status_of(reply), 503, reply[:200])
            self.assertIn("--http-max-connections", error_of(reply)["message"])
            for sock in held:
                sock.close()
            time.sleep(0.2)
            reply = exchange(server.http_port,
                             b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertEqual(status_of(reply), 200, reply[:200])
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
