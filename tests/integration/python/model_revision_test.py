"""Model names and revisions end to end: a real `sculpt serve`, real grpcio and HTTP clients.

The revision is recomputed here from the files, independently of the server's code, as
docs/serving.md defines it; a changed weight byte must change it, a changed model card must not.
Run by ctest (label integration) with SCULPT_BINARY set.
"""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import struct
import tempfile
import unittest

import grpc
import httpx

from sculpt_server import TINY_TEXT_MODEL, Server, pb, start_error

DECIDING = {
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
}


def expected_revision(model_dir: pathlib.Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(model_dir.iterdir(), key=lambda p: p.name):
        name = path.name
        deciding = name in DECIDING or name.endswith((".safetensors", ".safetensors.index.json"))
        if not path.is_file() or not deciding:
            continue
        data = path.read_bytes()
        digest.update(name.encode() + b"\0" + struct.pack("<Q", len(data)) + data)
    return digest.hexdigest()[:16]


def copy_model(into: pathlib.Path) -> pathlib.Path:
    target = into / TINY_TEXT_MODEL.name
    shutil.copytree(TINY_TEXT_MODEL, target)
    return target


class ModelRevisionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.revision = expected_revision(TINY_TEXT_MODEL)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_every_answer_names_the_revision(self):
        self.assertRegex(self.revision, r"^[0-9a-f]{16}$")
        models = self.server.stub.ListModels(pb.ListModelsRequest(), timeout=10)
        self.assertEqual(models.models[0].revision, self.revision)
        self.assertEqual(models.models[0].card_revision, "")
        self.assertEqual(self.server.info().model.revision, self.revision)
        result = self.server.stub.Complete(pb.GenerateRequest(prompt="x", gen_length=4), timeout=30)
        self.assertEqual(result.model_revision, self.revision)
        listed = httpx.get(self.server.http_url + "/v1/models", timeout=10).json()
        self.assertEqual(listed["data"][0]["revision"], self.revision)
        native = httpx.post(
            self.server.http_url + "/v1/generate", json={"prompt": "x", "gen_length": 4}, timeout=30
        ).json()
        self.assertEqual(native["model_revision"], self.revision)
        line = self.server.wait_log(f"request_id={result.request_id} ")
        self.assertIn(f"model_revision={self.revision}", line)

    def test_a_pinned_revision_must_be_the_one_served(self):
        ok = self.server.stub.Complete(
            pb.GenerateRequest(prompt="x", gen_length=4, model_revision=self.revision), timeout=30
        )
        self.assertEqual(ok.finish_reason, "length")
        with self.assertRaises(grpc.RpcError) as refused:
            self.server.stub.Complete(
                pb.GenerateRequest(prompt="x", gen_length=4, model_revision="0123456789abcdef"),
                timeout=30,
            )
        self.assertEqual(refused.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn(self.revision, refused.exception.details())
        for path, body in [
            ("/v1/generate", {"prompt": "x", "gen_length": 4, "model_revision": "stale"}),
            ("/v1/completions", {"prompt": "x", "max_tokens": 4, "model_revision": "stale"}),
        ]:
            response = httpx.post(self.server.http_url + path, json=body, timeout=30)
            self.assertEqual(response.status_code, 409, response.text)
            error = response.json()["error"]
            self.assertEqual(error["param"], "model_revision")
            self.assertIn(self.revision, error["message"])


class ModelContentTest(unittest.TestCase):
    def serve(self, model_dir: pathlib.Path, *flags: str):
        server = Server(*flags, model=model_dir)
        self.addCleanup(server.stop)
        return server

    def test_weights_change_the_revision_and_the_card_does_not(self):
        with tempfile.TemporaryDirectory() as scratch:
            model = copy_model(pathlib.Path(scratch))
            (model / "README.md").write_text("---\nrevision: v2.1\n---\n# a card\n")
            server = self.serve(model)
            info = server.stub.ListModels(pb.ListModelsRequest(), timeout=10).models[0]
            self.assertEqual(info.revision, expected_revision(TINY_TEXT_MODEL))
            self.assertEqual(info.card_revision, "v2.1")
            server.stop()
            # One byte of the tensor data (past the safetensors header), flipped.
            weights = model / "model.safetensors"
            data = bytearray(weights.read_bytes())
            header = struct.unpack("<Q", data[:8])[0]
            data[8 + header + 7] ^= 0x01
            weights.write_bytes(bytes(data))
            changed = self.serve(model)
            revision = (
                changed.stub.ListModels(pb.ListModelsRequest(), timeout=10).models[0].revision
            )
            self.assertNotEqual(revision, expected_revision(TINY_TEXT_MODEL))
            self.assertEqual(revision, expected_revision(model))

    def test_served_model_name(self):
        server = self.serve(TINY_TEXT_MODEL, "--served-model-name", "code-model")
        listed = server.stub.ListModels(pb.ListModelsRequest(), timeout=10)
        self.assertEqual([m.name for m in listed.models], ["code-model"])
        result = server.stub.Complete(
            pb.GenerateRequest(model="code-model", prompt="x", gen_length=4), timeout=30
        )
        self.assertEqual(result.model, "code-model")
        with self.assertRaises(grpc.RpcError) as refused:
            server.stub.Complete(
                pb.GenerateRequest(model=TINY_TEXT_MODEL.name, prompt="x", gen_length=4),
                timeout=30,
            )
        self.assertEqual(refused.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("code-model", refused.exception.details())

    def test_a_bad_served_model_name_is_a_start_error(self):
        message = start_error("--served-model-name", "org/model")
        self.assertIn("--served-model-name", message)
        self.assertIn("'/'", message)


if __name__ == "__main__":
    unittest.main()
