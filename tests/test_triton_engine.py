"""The Triton engine backend (``Recognizer(backend="triton", url=...)``), through tritonclient's real HTTP client.

No Triton server can run here. The live test runs only against a real server named by
``FER_EDGE_TRITON_URL`` (start one with the command ``fer-edge export-triton`` prints). The
others use a stand-in: a small HTTP server speaking the subset of Triton's HTTP/REST (KServe v2)
protocol the engine uses (health, model metadata and config, binary-tensor inference), answering
from an exported repository with ONNX Runtime. It checks that our engine and tritonclient talk
that protocol correctly; it is not Triton, and says nothing about Triton's own behaviour.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from fer_edge.builder.triton_export import export_triton
from fer_edge.engines import get_backend
from fer_edge.engines.onnxruntime import OnnxRuntimeManager
from fer_edge.engines.triton import TritonManager, parse_url
from fer_edge.errors import BackendUnavailableError, InvalidInputError, PackageError
from fer_edge.recognizer import Recognizer
from tests import triton_schema
from tests.tiny_package import make_package

pytestmark = pytest.mark.skipif(not TritonManager.is_available(), reason="pip install fer_edge[triton]")


class StandIn(BaseHTTPRequestHandler):
    """Answers the KServe v2 calls the engine makes, for one model of an exported repository."""

    models: ClassVar[dict[str, tuple[dict[str, Any], ort.InferenceSession]]] = {}

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, body: bytes = b"", header_length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream" if header_length else "application/json")
        if header_length is not None:
            self.send_header("Inference-Header-Content-Length", str(header_length))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts == ["v2", "health", "live"]:
            return self._send(200)
        if len(parts) < 3 or parts[:2] != ["v2", "models"] or parts[2] not in self.models:
            return self._send(400, json.dumps({"error": "unknown model"}).encode())
        config, _ = self.models[parts[2]]
        if parts[3:] == ["ready"]:
            return self._send(200)
        if parts[3:] == ["config"]:
            return self._send(200, json.dumps(config).encode())
        meta = {"name": parts[2], "platform": config["platform"],
                "inputs": [{"name": t["name"], "datatype": "FP32", "shape": [-1, *map(int, t["dims"])]}
                           for t in config["input"]],
                "outputs": [{"name": t["name"], "datatype": "FP32", "shape": [-1, *map(int, t["dims"])]}
                            for t in config["output"]]}
        return self._send(200, json.dumps(meta).encode())

    def do_POST(self) -> None:
        name = self.path.strip("/").split("/")[2]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        json_length = int(self.headers.get("Inference-Header-Content-Length", len(body)))
        request = json.loads(body[:json_length])
        (tensor,) = request["inputs"]
        assert tensor["datatype"] == "FP32" and tensor["parameters"]["binary_data_size"] == len(body) - json_length
        batch = np.frombuffer(body[json_length:], dtype=np.float32).reshape(tensor["shape"])
        _, session = self.models[name]
        (wanted,) = request["outputs"]
        (logits,) = session.run([wanted["name"]], {tensor["name"]: batch})
        data = np.ascontiguousarray(logits, dtype=np.float32).tobytes()
        header = json.dumps({"model_name": name, "outputs": [{"name": wanted["name"], "datatype": "FP32",
                             "shape": list(logits.shape), "parameters": {"binary_data_size": len(data)}}]}).encode()
        self._send(200, header + data, header_length=len(header))


@pytest.fixture()
def stand_in(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(url, package): the tiny package exported to a repository and served by the stand-in."""
    from google.protobuf.json_format import MessageToDict

    package = make_package(tmp_path, max_batch=4)
    export_triton(package.sidecar_path, tmp_path / "repo")
    pb2 = triton_schema.model_config_pb2()
    config = MessageToDict(triton_schema.parse(pb2, tmp_path / "repo" / "fer" / "config.pbtxt"),
                           preserving_proto_field_name=True)
    StandIn.models = {"fer": (config, ort.InferenceSession(str(tmp_path / "repo" / "fer" / "1" / "model.onnx")))}
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", package
    server.shutdown()
    server.server_close()


def test_urls() -> None:
    assert parse_url("localhost:8000") == ("localhost:8000", False, "fer")
    assert parse_url("http://gpu1:8000/v2/models/fer_tiny") == ("gpu1:8000", False, "fer_tiny")
    assert parse_url("https://edge.example/triton/v2/models/fer/") == ("edge.example/triton", True, "fer")
    for bad in ("", "http://", "host:8000/v2/models/", "host:8000/v2/models/a/versions/1"):
        with pytest.raises(BackendUnavailableError, match="Triton url"):
            parse_url(bad)


def test_registered_like_the_other_backends() -> None:
    assert get_backend("triton") is TritonManager
    assert TritonManager.version()


def test_recognizer_needs_a_url_and_the_url_needs_triton(tmp_path: Path) -> None:
    package = make_package(tmp_path)
    with pytest.raises(BackendUnavailableError, match="needs the server"):
        Recognizer(package.sidecar_path, backend="triton")
    with pytest.raises(InvalidInputError, match="backend='triton'"):
        Recognizer(package.sidecar_path, url="localhost:8000")


def test_unreachable_server_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="cannot reach Triton"):
        TritonManager.load(make_package(tmp_path), "127.0.0.1:9")


def test_engine_through_tritonclient_matches_local_inference(stand_in) -> None:  # type: ignore[no-untyped-def]
    url, package = stand_in
    engine = TritonManager.load(package, url)
    assert engine.max_batch == 4 and engine.describe()["model_name"] == "fer"
    batch = np.random.default_rng(0).normal(size=(9, 3, 48, 48)).astype(np.float32)  # 3 requests of <= 4
    np.testing.assert_allclose(engine.infer(batch), OnnxRuntimeManager.load(package, threads=1).infer(batch), atol=1e-6)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(engine.infer(batch[:2]))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(np.array_equal(r, results[0]) for r in results)


def test_recognizer_on_triton_matches_local(stand_in) -> None:  # type: ignore[no-untyped-def]
    url, package = stand_in
    crops = [np.random.default_rng(i).integers(0, 256, (60, 50, 3), dtype=np.uint8) for i in range(3)]
    remote = Recognizer(package.sidecar_path, backend="triton", url=f"http://{url}/v2/models/fer")
    local = Recognizer(package.sidecar_path, backend="onnxruntime", device="cpu")
    assert remote.info()["backend"] == "triton" and "Triton server" in remote.info()["reason"]
    for a, b in zip(remote.predict_faces(crops), local.predict_faces(crops)):
        assert a.label == b.label
        assert np.allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-6)


def test_served_model_that_differs_from_the_package_is_refused(stand_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fer_edge.package import InputSpec

    url, _ = stand_in
    (tmp_path / "other").mkdir()
    other = make_package(tmp_path / "other", spec=InputSpec(size=(64, 64)))
    with pytest.raises(PackageError, match="serves another model"):
        TritonManager.load(other, url)


@pytest.mark.skipif(not os.environ.get("FER_EDGE_TRITON_URL"),
                    reason="no Triton server here (no GPU, no docker); set FER_EDGE_TRITON_URL to a server "
                           "serving `fer-edge export-triton --model default` to run this")
def test_live_triton_server() -> None:
    from skimage import data

    recognizer = Recognizer("default", backend="triton", url=os.environ["FER_EDGE_TRITON_URL"])
    local = Recognizer("default", backend="onnxruntime", device="cpu", precision="fp32")
    frame = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    remote, here = recognizer(frame), local(frame)
    assert remote and [f.label for f in remote] == [f.label for f in here]
