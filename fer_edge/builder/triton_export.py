"""``fer-edge export-triton``: a model package -> a Triton Inference Server model repository.

Layout (what Triton requires): ``<out>/<name>/config.pbtxt`` and ``<out>/<name>/1/model.onnx``
(ONNX Runtime backend) or ``model.plan`` (TensorRT backend, from an engine package), plus
``labels.txt`` (Triton's classification extension reads it) and, for engines with fer_edge
plugins, the plugin library beside the config. The model folder is assembled in a temporary
folder and renamed into place, so a failed export never leaves half a model for a server to load.

Preprocessing stays on the client (:mod:`fer_edge.engines.triton`), not in a Python-backend model
plus ensemble: the model needs an *aligned* crop, and alignment needs the whole frame and the
detector's landmarks, which only the client has; what is left (resize, colour, normalise) is
the one :func:`fer_edge.vision.preprocess` everything else uses, so a server-side copy could
only drift from it, and would need numpy and OpenCV inside the server's Python stub. The cost is
float32 on the wire (4x the bytes of a uint8 crop; 27 KB per 48x48 face), small next to a frame.

Nothing here runs Triton: the config is written from the sidecar and checked against the ONNX
graph; the tests parse it with tritonclient's own ``ModelConfig`` protobuf schema.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fer_edge.builder.fleet import (
    check_name,
    check_onnx_matches,
    copy_atomic,
    plugin_library_for,
    select_package,
    write_text_atomic,
)
from fer_edge.errors import ExportError
from fer_edge.package import ModelPackage
from fer_edge.trt_compat import TrtVersion

# How long Triton may hold a request to batch it with others. A client already sends all faces
# of a frame as one request and a 48x48 batch is little GPU work, so a longer wait would mostly
# add latency (a judgement, not measured here: no GPU).
DEFAULT_QUEUE_DELAY_US = 100
PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}
DOCKER_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"


@dataclass(frozen=True)
class TritonExport:
    """What was written and the command that serves it."""

    model_dir: Path
    package: ModelPackage
    config: str
    plugin_library: Path | None
    start_command: str
    warnings: tuple[str, ...]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dims(values: Sequence[int]) -> str:
    return "[ " + ", ".join(str(v) for v in values) + " ]"


def render_config(package: ModelPackage, name: str, max_batch: int, instances: int, gpus: Sequence[int] | None,
                  cpu: bool, queue_delay_us: int) -> str:
    """``config.pbtxt`` in protobuf text format (``inference.ModelConfig``), from the sidecar."""
    side = package.sidecar
    platform, _ = PLATFORMS[side.format]
    batching = [f"  max_queue_delay_microseconds: {queue_delay_us}"]
    if side.format == "tensorrt":  # the engine's optimisation profile was tuned for its opt batch
        batching.insert(0, f"  preferred_batch_size: {_dims([min(side.batch.opt, max_batch)])}")
    group = [f"    count: {instances}", f"    kind: {'KIND_CPU' if cpu else 'KIND_GPU'}"]
    if gpus and not cpu:
        group.append(f"    gpus: {_dims(gpus)}")
    lines = [
        (f"# written by fer_edge {side.fer_edge_version or ''} from {package.sidecar_path.name}: {side.model_id} "
         f"{side.variant}, {side.format} {side.precision}, sha256 {side.sha256[:12]}"),
        f"name: {_quote(name)}",
        f"platform: {_quote(platform)}",
        f"max_batch_size: {max_batch}",
        "input [", "  {", f"    name: {_quote(side.input.name)}", "    data_type: TYPE_FP32",
        f"    dims: {_dims([3, *side.input.size])}", "  }", "]",
        "output [", "  {", f"    name: {_quote(side.output_name)}", "    data_type: TYPE_FP32",
        f"    dims: {_dims([len(side.classes)])}", '    label_filename: "labels.txt"', "  }", "]",
        "dynamic_batching {", *batching, "}",
        "instance_group [", "  {", *group, "  }", "]",
    ]
    return "\n".join(lines) + "\n"


def start_command(out: Path, name: str, plugin: Path | None) -> str:
    """The docker command that serves the repository (not run here: no GPU, no docker)."""
    flags = "" if plugin is None else f" --backend-config=tensorrt,plugins=/models/{name}/{plugin.name}"
    return (f"docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v {out.resolve()}:/models "
            f"{DOCKER_IMAGE} tritonserver --model-repository=/models{flags}")


def _max_batch(package: ModelPackage, requested: int | None, notes: list[str]) -> int:
    """``max_batch_size``: the sidecar's batch max, or ``requested``; an engine cannot exceed its profile."""
    side = package.sidecar
    if requested is None:
        return side.batch.max
    if requested < 1:
        raise ExportError(f"--max-batch must be >= 1, got {requested}")
    if side.format == "tensorrt" and requested > side.batch.max:
        notes.append(f"--max-batch {requested} exceeds the engine's profile (max {side.batch.max}); using "
                     f"{side.batch.max} (rebuild with --batch MIN:OPT:{requested} for more)")
        return side.batch.max
    return requested


def _plugin_notes(package: ModelPackage, notes: list[str]) -> None:
    """Say when the copied plugin library cannot register with the server's TensorRT."""
    version = str((package.sidecar.tensorrt or {}).get("version", ""))
    if package.sidecar.format == "tensorrt" and version and TrtVersion.parse(version).major >= 10:
        notes.append(f"this engine was built with TensorRT {version}: Triton loads plugin libraries with dlopen "
                     "(LD_PRELOAD or --backend-config=tensorrt,plugins=), but fer_edge's TensorRT 10+ plugin library "
                     "registers its creators only through IPluginRegistry::loadLibrary (cpp/README.md), so the "
                     "server will likely not find SimAM_TRT/CCAttention_TRT; serve a portable-form engine or the "
                     "ONNX package instead (not verified here)")


@contextlib.contextmanager
def _staged_dir(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` that replaces it when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp's 0700 would hide the model from a server running as another user
    try:
        yield stage
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(stage, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def export_triton(model: str | os.PathLike[str], out: str | os.PathLike[str], name: str = "fer",
                  max_batch: int | None = None, instances: int = 1, gpus: Sequence[int] | None = None,
                  cpu: bool = False, precision: str | None = None,
                  queue_delay_us: int = DEFAULT_QUEUE_DELAY_US) -> TritonExport:
    """Write ``out/<name>/`` for ``model`` (id or package path); see the module docstring."""
    check_name(name)
    if instances < 1 or queue_delay_us < 0:
        raise ExportError(f"--instances must be >= 1 and the queue delay >= 0, got {instances}, {queue_delay_us}")
    package = select_package(model, precision)
    side = package.sidecar
    if side.format == "onnx":
        if side.graph_form == "plugin":
            raise ExportError(f"{package.model_path.name} is a plugin-form ONNX for TensorRT builds only; ONNX "
                              "Runtime cannot run it: build its engine and export that, or export the portable ONNX")
        check_onnx_matches(package)
    elif cpu:
        raise ExportError("--cpu needs an ONNX package: TensorRT plans run on GPUs only")
    notes: list[str] = []
    batch = _max_batch(package, max_batch, notes)
    plugin = plugin_library_for(package)
    if plugin is not None:
        _plugin_notes(package, notes)
    config = render_config(package, name, batch, instances, gpus, cpu, queue_delay_us)
    target = Path(out) / name
    with _staged_dir(target) as stage:
        copy_atomic(package.model_path, stage / "1" / PLATFORMS[side.format][1])
        write_text_atomic(stage / "config.pbtxt", config)
        write_text_atomic(stage / "labels.txt", "".join(f"{c}\n" for c in side.classes))
        if plugin is not None:
            copy_atomic(plugin, stage / plugin.name)
    copied = None if plugin is None else target / plugin.name
    return TritonExport(target, package, config, copied, start_command(Path(out), name, copied), tuple(notes))
