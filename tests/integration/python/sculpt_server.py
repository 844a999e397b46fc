"""A real `sculpt serve` process for integration tests, and stubs generated from our proto.

The stubs are generated at import time with grpc_tools (from requirements-dev.txt) into a
temporary directory, so the tests always speak the proto in the tree.
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from grpc_tools import protoc

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[3]
PROTO_DIR = SOURCE_DIR / "proto"

_stub_dir = tempfile.mkdtemp(prefix="sculpt-stubs-")
atexit.register(shutil.rmtree, _stub_dir, ignore_errors=True)
_rc = protoc.main(
    [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={_stub_dir}",
        f"--grpc_python_out={_stub_dir}",
        str(PROTO_DIR / "sculpt/v1/text_diffusion.proto"),
    ]
)
if _rc != 0:
    raise RuntimeError("grpc_tools.protoc failed on proto/sculpt/v1/text_diffusion.proto")
sys.path.insert(0, _stub_dir)
from sculpt.v1 import text_diffusion_pb2 as pb  # noqa: E402
from sculpt.v1 import text_diffusion_pb2_grpc as pb_grpc  # noqa: E402

TINY_TEXT_MODEL = SOURCE_DIR / "tests/models/tiny-llada-text"


def sculpt_binary() -> pathlib.Path:
    path = os.environ.get("SCULPT_BINARY")
    if not path:
        raise RuntimeError("set SCULPT_BINARY to the built sculpt binary")
    return pathlib.Path(path)


class Server:
    """`sculpt serve` on 127.0.0.1 and a free port; stderr (the log) is collected.

    With TLS flags, `credentials` (grpc.ssl_channel_credentials) make the test's own channel, and
    http_url says https.
    """

    def __init__(
        self,
        *flags: str,
        model: pathlib.Path = TINY_TEXT_MODEL,
        env=None,
        threads: int = 1,
        credentials=None,
    ):
        command = [
            str(sculpt_binary()),
            "serve",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--threads",
            str(threads),
            *flags,
        ]
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        self.log_lines: list[str] = []
        self._port_found = threading.Event()
        self.port = None
        self.http_port = None
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._port_found.wait(60) or self.port is None:
            self.stop()
            raise RuntimeError("sculpt serve did not start:\n" + "\n".join(self.log_lines))
        self.address = f"127.0.0.1:{self.port}"
        scheme = "https" if any("over HTTPS on" in line for line in self.log_lines) else "http"
        self.http_url = f"{scheme}://127.0.0.1:{self.http_port}"
        self.channel = (
            grpc.secure_channel(self.address, credentials)
            if credentials is not None
            else grpc.insecure_channel(self.address)
        )
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = pb_grpc.TextDiffusionStub(self.channel)

    def _read_log(self) -> None:
        for line in self.process.stderr:
            line = line.rstrip("\n")
            self.log_lines.append(line)
            http = re.search(r"over HTTPS? on [^ ]+:(\d+)", line)
            if http and self.http_port is None:
                self.http_port = int(http.group(1))
            match = re.search(r"over gRPC(?: with m?TLS)? on [^ ]+:(\d+)", line)
            if match and self.port is None:
                self.port = int(match.group(1))
                self._port_found.set()
        self._port_found.set()

    def info(self):
        return self.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10)

    def wait_for(self, predicate, timeout: float = 30.0, interval: float = 0.005):
        """Polls GetServerInfo until predicate(info) holds; returns (info, seconds waited)."""
        start = time.monotonic()
        while True:
            info = self.info()
            if predicate(info):
                return info, time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"server never reached the state; last info: {info}")
            time.sleep(interval)

    def wait_log(self, fragment: str, timeout: float = 10.0) -> str:
        """The first log line containing `fragment`, waiting for it to be written."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            for line in list(self.log_lines):
                if fragment in line:
                    return line
            time.sleep(0.01)
        raise AssertionError(f"no log line with {fragment!r}:\n" + "\n".join(self.log_lines))

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "channel"):
            self.channel.close()
        self._reader.join(timeout=10)
        self.process.stderr.close()


def run_cli(*args: str) -> dict:
    """`sculpt generate --json ...`: the reference a served request must reproduce."""
    out = subprocess.run(
        [str(sculpt_binary()), "generate", "--json", "--threads", "1", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(out.stdout)


def start_error(*flags: str) -> str:
    """The log of a `sculpt serve` that must refuse to start: it exits non-zero, quickly."""
    done = subprocess.run(
        [
            str(sculpt_binary()),
            "serve",
            "--model",
            str(TINY_TEXT_MODEL),
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, f"the server started with {flags}:\n{done.stderr}"
    return done.stderr
