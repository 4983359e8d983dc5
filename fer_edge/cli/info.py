"""``fer-edge info``: what this machine can run (versions, GPU, plugin library) and the models found.

The first thing to paste into a bug report; it imports each framework only to read its version.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

from fer_edge._version import __version__
from fer_edge.errors import FerEdgeError
from fer_edge.package import load_package


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda() -> dict[str, Any]:
    """CUDA runtime/driver versions and the GPU, through the TensorRT backend's helpers."""
    from fer_edge.engines.tensorrt import TensorRTManager

    versions = TensorRTManager.cuda_versions()
    gpu = TensorRTManager.gpu()
    return {"cuda": None if versions is None else f"{versions[0]} (driver {versions[1]})",
            "gpu": None if gpu is None else f"{gpu[0]} (compute capability {gpu[1][0]}.{gpu[1][1]})"}


def _plugins() -> str:
    try:
        from fer_edge.plugins import plugin_library_path
    except ImportError as exc:
        return f"unavailable ({exc})"
    try:
        path = plugin_library_path()
    except FerEdgeError as exc:
        return f"unavailable ({exc})"
    return str(path) if path else "not built"


def _packages() -> list[dict[str, Any]]:
    from fer_edge.engines.resolve import DEFAULT_DIR, cache_dir

    found: list[dict[str, Any]] = []
    for folder in (DEFAULT_DIR, cache_dir()):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                side = load_package(path, verify=False).sidecar
            except FerEdgeError as exc:
                found.append({"path": str(path), "error": str(exc)})
                continue
            found.append({"path": str(path), "model_id": side.model_id, "format": side.format,
                          "precision": side.precision, "trained": bool(side.metrics),
                          "tensorrt": (side.tensorrt or {}).get("version")})
    return found


def collect() -> dict[str, Any]:
    """Everything ``fer-edge info`` reports, as a dict."""
    import cv2

    from fer_edge.engines import BACKENDS
    from fer_edge.engines.onnxruntime import OnnxRuntimeManager

    info: dict[str, Any] = {
        "fer_edge": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "numpy": _dist_version("numpy"), "opencv": cv2.__version__,
        "onnxruntime": OnnxRuntimeManager.version(),
        "onnxruntime_providers": OnnxRuntimeManager.providers() if OnnxRuntimeManager.is_available() else [],
        "tensorrt": BACKENDS["tensorrt"].version(), "torch": _dist_version("torch"),
        "cuda_python": _dist_version("cuda-python") or _dist_version("cuda-bindings"),
    }
    info.update(_cuda())
    info["plugin_library"] = _plugins()
    info["packages"] = _packages()
    return info


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key != "packages":
            print(f"{key:22s} {value if value not in (None, []) else 'not installed'}")
    print(f"model packages ({len(info['packages'])}):")
    for pkg in info["packages"]:
        details = pkg.get("error") or (f"{pkg['model_id']} {pkg['format']} {pkg['precision']}"
                                       f"{'' if pkg['trained'] else ' (untrained)'}")
        print(f"  {Path(pkg['path']).name}: {details}")
    return 0
