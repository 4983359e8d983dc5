"""Triton backend: the model runs on a remote Triton Inference Server, everything else stays here.

The server serves what ``fer-edge export-triton`` wrote. This engine sends the batch that
:func:`fer_edge.vision.preprocess` made (float32 NCHW, binary over Triton's HTTP/REST protocol,
with ``tritonclient``) and returns the logits, so ``Recognizer(backend="triton", url=...)``
detects, aligns and preprocesses exactly as with a local engine (why preprocessing is not a
server-side model: :mod:`fer_edge.builder.triton_export`).

``device`` is the server, ``[http[s]://]host:port[/v2/models/<name>]`` (the model name defaults
to ``fer``, as ``export-triton`` names it). The local package says the input size,
normalisation and classes; on load it is checked against the server's model metadata, so a
server serving another model fails at once instead of returning plausible nonsense.
tritonclient's HTTP client is not thread-safe, so each thread gets its own connection.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
from typing import Any

import numpy as np

from fer_edge.engines.base import BackendManager, Engine, register_backend
from fer_edge.errors import BackendUnavailableError, PackageError
from fer_edge.package import ModelPackage

DEFAULT_MODEL = "fer"
MODEL_PATH = "/v2/models/"
INSTALL_HINT = "pip install fer_edge[triton] (tritonclient[http])"


def parse_url(url: str) -> tuple[str, bool, str]:
    """``(host:port[/base], use TLS, model name)`` from ``[http[s]://]host:port[/v2/models/<name>]``.

    tritonclient wants the address without a scheme and TLS as a flag; the model's own REST path
    (what ``curl`` would fetch) is accepted so one string names server and model.
    """
    rest, ssl = url.strip(), False
    for scheme, tls in (("http://", False), ("https://", True)):
        if rest.startswith(scheme):
            rest, ssl = rest[len(scheme):], tls
    name = DEFAULT_MODEL
    if MODEL_PATH in rest:
        rest, name = rest.split(MODEL_PATH, 1)
        name = name.strip("/")
    rest = rest.rstrip("/")
    if not rest or not name or "/" in name or " " in rest:
        raise BackendUnavailableError(f"Triton url must be [http[s]://]host:port[/v2/models/<name>], got {url!r}")
    return rest, ssl, name


class TritonEngine(Engine):
    backend = "triton"

    def __init__(self, package: ModelPackage, url: str, timeout: float = 30.0) -> None:
        from tritonclient import http
        from tritonclient.utils import InferenceServerException

        self._http = http
        self._errors = (InferenceServerException, OSError)  # OSError: refused, reset, timed out
        self.url = url
        self._address, self._ssl, self.model_name = parse_url(url)
        self._timeout = float(timeout)
        self._local = threading.local()
        client = self._client()
        try:
            ready = client.is_server_live() and client.is_model_ready(self.model_name)
            metadata = client.get_model_metadata(self.model_name) if ready else {}
            config = client.get_model_config(self.model_name) if ready else {}
        except self._errors as exc:
            raise BackendUnavailableError(f"cannot reach Triton at {url}: {exc}; start it with the docker command "
                                          "`fer-edge export-triton` prints") from exc
        if not ready:
            raise BackendUnavailableError(f"Triton at {url} is up but model {self.model_name!r} is not ready (see "
                                          "the server log; export it with `fer-edge export-triton`)")
        max_batch = int(config.get("max_batch_size", 0))
        if max_batch < 1:
            raise PackageError(f"Triton model {self.model_name!r} does not batch (max_batch_size 0); export it with "
                               "`fer-edge export-triton`, which sets max_batch_size from the sidecar")
        super().__init__(package, max_batch)
        self._check(metadata)

    def _check(self, metadata: dict[str, Any]) -> None:
        """Refuse a served model whose input/output differ from the package's sidecar."""
        side, height, width = self.package.sidecar, *self.input_spec.size
        inputs, outputs = metadata.get("inputs", []), {o["name"]: o for o in metadata.get("outputs", [])}
        expected = [-1, 3, height, width]
        if len(inputs) != 1 or inputs[0].get("name") != self.input_spec.name or inputs[0].get("datatype") != "FP32" \
                or list(inputs[0].get("shape", [])) != expected:
            raise PackageError(f"Triton model {self.model_name!r} takes {inputs}, but {self.package.sidecar_path.name} "
                               f"says {self.input_spec.name!r} FP32 {expected}: the server serves another model")
        output = outputs.get(side.output_name)
        if output is None or list(output.get("shape", []))[-1:] != [len(self.classes)]:
            raise PackageError(f"Triton model {self.model_name!r} has outputs {list(outputs.values())}, not "
                               f"{side.output_name!r} with {len(self.classes)} classes from the sidecar")

    def _client(self) -> Any:
        """This thread's connection (created on first use)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._http.InferenceServerClient(self._address, ssl=self._ssl, connection_timeout=self._timeout,
                                                      network_timeout=self._timeout)
            self._local.client = client
        return client

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        request = self._http.InferInput(self.input_spec.name, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch, binary_data=True)
        wanted = self._http.InferRequestedOutput(self.package.sidecar.output_name, binary_data=True)
        try:
            result = self._client().infer(self.model_name, [request], outputs=[wanted])
        except self._errors as exc:
            raise BackendUnavailableError(f"Triton inference on {self.model_name!r} at {self.url} failed: {exc}") from exc
        return np.asarray(result.as_numpy(self.package.sidecar.output_name))

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "url": self.url, "model_name": self.model_name}


@register_backend
class TritonManager(BackendManager):
    name = "triton"
    formats = ("onnx", "tensorrt", "torch")  # the local package only describes what the server runs
    module = "tritonclient"

    @classmethod
    def is_available(cls) -> bool:
        """tritonclient with its HTTP extra (geventhttpclient) is installed."""
        return all(importlib.util.find_spec(m) is not None for m in ("tritonclient", "geventhttpclient"))

    @classmethod
    def version(cls) -> str | None:
        return importlib.metadata.version("tritonclient") if cls.is_available() else None

    @classmethod
    def load(cls, package: ModelPackage, device: str | None = None) -> Engine:
        """An engine for the Triton server at ``device`` (the url) serving ``package``'s model."""
        if not cls.is_available():
            raise BackendUnavailableError(f"the Triton backend needs tritonclient: {INSTALL_HINT}")
        if not device:
            raise BackendUnavailableError("backend='triton' needs the server: Recognizer(..., backend='triton', "
                                          "url='localhost:8000')")
        cls.check_format(package)
        return TritonEngine(package, device)
