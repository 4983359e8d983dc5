"""What the two fleet exports (Triton repository, DeepStream config) share.

Both read one model package and write files; neither imports a GPU SDK (ARCHITECTURE.md), so a
repository for a GPU server can be prepared on any laptop or CI machine. Shared here: which
package of a model to export, what its ONNX graph really declares (the sidecar is checked
against it, so a mixed-up package fails here rather than in the server's log), the plugin
library a package needs, and atomic file writes.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fer_edge.engines.resolve import find_packages
from fer_edge.engines.tensorrt import needs_plugin_library
from fer_edge.errors import BackendUnavailableError, ExportError, PackageError, PluginLibraryError
from fer_edge.fileio import atomic_path, atomic_write
from fer_edge.package import ModelPackage

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(name: str) -> str:
    """A model name becomes a folder or file name: letters, digits, '_', '.', '-' only."""
    if not NAME.match(name):
        raise ExportError(f"model name {name!r} must be letters, digits, '_', '.', '-' (it names files)")
    return name


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: name, numpy dtype name, dims (a str for a symbolic dim)."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]


def select_package(model: str | os.PathLike[str], precision: str | None = None) -> ModelPackage:
    """The ONNX or engine package of ``model`` (id or path) to export, checksum verified.

    A path names exactly one package. An id may have several (FP32, INT8, an engine): ``precision``
    picks one; without it FP32 ONNX is preferred, then the only candidate. PyTorch packages are
    refused: servers run ONNX or TensorRT, and ``fer-edge build`` makes those.
    """
    packages = [p for p in find_packages(model) if p.sidecar.format in ("onnx", "tensorrt")]
    if not packages:
        raise PackageError(f"{os.fspath(model)!r} has no ONNX or TensorRT package (only a PyTorch checkpoint); "
                           f"build one first: fer-edge build --model {os.fspath(model)}")
    if precision is not None:
        packages = [p for p in packages if p.sidecar.precision == precision]
        if not packages:
            raise PackageError(f"{os.fspath(model)!r} has no {precision} ONNX/TensorRT package; build it with "
                               f"`fer-edge build --model {os.fspath(model)}`")
    preferred = [p for p in packages if p.sidecar.format == "onnx" and p.sidecar.precision == "fp32"]
    if not preferred and len(packages) > 1:
        names = ", ".join(f"{p.sidecar_path.name} ({p.sidecar.format} {p.sidecar.precision})" for p in packages)
        raise PackageError(f"{os.fspath(model)!r} has several packages ({names}); pass --precision or a package path")
    package = (preferred or packages)[0]
    package.verify_checksum()
    return package


def onnx_io(path: Path) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Inputs (initializers excluded) and outputs the ONNX file at ``path`` declares."""
    try:
        import onnx
        from onnx import helper
    except ImportError as exc:
        raise BackendUnavailableError(f"reading {path.name} needs the onnx package: pip install fer_edge[build] "
                                      f"({exc})") from exc
    try:
        graph = onnx.load(os.fspath(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not a model
        raise PackageError(f"{path} is not a readable ONNX model: {exc}") from exc
    weights = {t.name for t in graph.initializer}

    def info(value: onnx.ValueInfoProto) -> TensorInfo:
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
        return TensorInfo(value.name, helper.tensor_dtype_to_np_dtype(tensor.elem_type).name, dims)

    return [info(v) for v in graph.input if v.name not in weights], [info(v) for v in graph.output]


def check_onnx_matches(package: ModelPackage) -> tuple[TensorInfo, TensorInfo]:
    """The graph's (input, output) after checking them against the sidecar; PackageError if they differ.

    The batch dimension must be symbolic: servers batch requests together, and a fixed-batch
    graph would reject every batch but one.
    """
    side, name = package.sidecar, package.model_path.name
    inputs, outputs = onnx_io(package.model_path)
    if len(inputs) != 1:
        raise PackageError(f"{name} has {len(inputs)} inputs; fer_edge models take exactly one image batch")
    given = inputs[0]
    expected = (3, *side.input.size)
    if given.name != side.input.name or len(given.dims) != 4 or tuple(given.dims[1:]) != expected:
        raise PackageError(f"{name} takes {given.name!r} {given.dims}, but its sidecar says {side.input.name!r} "
                           f"(N, {', '.join(map(str, expected))}): the sidecar belongs to another model")
    if isinstance(given.dims[0], int):
        raise PackageError(f"{name} has a fixed batch dimension {given.dims[0]}; export it again with a dynamic "
                           "batch (fer-edge build does)")
    found = [o for o in outputs if o.name == side.output_name]
    if not found:
        raise PackageError(f"{name} has outputs {[o.name for o in outputs]}, not {side.output_name!r} from its sidecar")
    if found[0].dims[-1] != len(side.classes):
        raise PackageError(f"{name} outputs {found[0].dims} but its sidecar lists {len(side.classes)} classes")
    return given, found[0]


def plugin_library_for(package: ModelPackage) -> Path | None:
    """The fer_edge plugin library ``package`` needs (plugin-form graph or engine), else None."""
    if not needs_plugin_library(package.sidecar):
        return None
    from fer_edge.plugins import plugin_library_path

    path = plugin_library_path()
    if path is None:
        raise PluginLibraryError(f"{package.model_path.name} uses fer_edge TensorRT plugins, but the plugin library "
                                 "was not built here; build it (pip install -e . with CUDA and TensorRT headers) or "
                                 "set FER_EDGE_PLUGIN_LIBRARY to one built for the server's TensorRT")
    return path


def copy_atomic(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so that a reader never sees half a file."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def write_text_atomic(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_write(target, "w") as handle:
        handle.write(text)
