"""Triton's own model-config schema for the tests: tritonclient's generated ``model_config_pb2``.

It ships inside ``tritonclient.grpc``, whose ``__init__`` needs grpcio; tritonclient's grpc extra
pins protobuf < 7, which would downgrade the protobuf onnx uses here. The module itself needs
only protobuf, so it is loaded from its file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def model_config_pb2() -> ModuleType:
    """The module, or a skip saying how to install tritonclient."""
    tritonclient = pytest.importorskip("tritonclient", reason="pip install fer_edge[triton] (tritonclient[http])")
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert spec is not None and spec.loader is not None, f"tritonclient has no {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse(pb2: ModuleType, path: Path) -> Any:
    """``config.pbtxt`` parsed into ``inference.ModelConfig``; an unknown field or enum raises ParseError."""
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), pb2.ModelConfig())
