"""THE one module that knows how TensorRT versions differ (STYLE.md: mmdeploy's TensorRT wrapper
decayed because its version checks were scattered). Builder and runtime ask :func:`api_for` which
API path to take; nothing else in fer_edge compares TensorRT version numbers.

Supported: 8.5 (JetPack 5.1), 8.6 (JetPack 6.0), 10.x (JetPack 6.1/6.2 = 10.3, Thor = 10.13,
desktop) and 11.x. Facts checked against the 10.3 and 11.1 headers (FACTS.md):

- 8.x networks need ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``; 10.x deprecates it
  (explicit batch is the only mode); 11.x removed it.
- 11.x is always strongly typed: no ``BuilderFlag.FP16``/``INT8``, no calibrators; precision comes
  from the ONNX (Q/DQ for INT8, FP16 tensors for FP16).
- ``IPluginCreator``-based registry calls (``get_plugin_creator``) are gone in 11; 10+ has
  ``get_creator`` (IPluginV3) and ``load_library``. 8.x loads a plugin library by ``dlopen``.
- ``IProgressMonitor`` exists from 10.0. ``build_engine`` was removed in 10; every supported
  version has ``build_serialized_network``, timing caches and name-based v3 execution.
- trtexec: precision flags ``--int8``/``--fp16`` up to 10.x (11 is strongly typed); a plugin library
  loads with ``--plugins`` (8.5), ``--staticPlugins`` (8.6) or, for fer_edge's IPluginV3 library,
  ``--dynamicPlugins`` (10+): :func:`trtexec_flags`.
- cuda-python: ``cuda.bindings.runtime`` from 12.6, ``cuda.cudart`` before (gone in 13):
  :func:`cuda_runtime` is the one place that knows.

This module imports no TensorRT, so its decisions are unit-tested everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fer_edge.errors import BackendUnavailableError

# (major, minor) pairs fer_edge is built and tested against; any 10.x / 11.x minor is accepted
SUPPORTED_MINORS_8 = (5, 6)
SUPPORTED_MAJORS = (8, 10, 11)


@dataclass(frozen=True, order=True)
class TrtVersion:
    """A parsed TensorRT version (``trt.__version__`` is e.g. ``"10.3.0.30"``)."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(text))
        if not match:
            raise BackendUnavailableError(f"cannot parse TensorRT version {text!r} (expected e.g. '10.3.0')")
        major, minor, patch = match.groups()
        return cls(int(major), int(minor), int(patch or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class TrtApi:
    """Which TensorRT API path to take for one version (every field is a decision, not a guess)."""

    version: TrtVersion
    explicit_batch_flag: bool  # create_network needs 1 << EXPLICIT_BATCH
    strongly_typed_only: bool  # precision comes only from the ONNX; no FP16/INT8 builder flags
    precision_flags: bool  # BuilderFlag.FP16 / BuilderFlag.INT8 exist
    calibrator: bool  # legacy IInt8EntropyCalibrator2 + calibration cache usable
    plugin_interface: str  # "IPluginV2" (8.x) | "IPluginV3" (10+)
    registry_get_creator: str  # registry method that finds a creator by name/version/namespace
    registry_load_library: bool  # IPluginRegistry.load_library exists (else dlopen the library)
    progress_monitor: bool  # trt.IProgressMonitor + config.progress_monitor
    strongly_typed_flag: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED may be requested

    def network_flags(self, trt: Any, strongly_typed: bool = False) -> int:
        """The ``create_network`` flags for this version (``trt`` is the imported module)."""
        flags = 0
        kinds = trt.NetworkDefinitionCreationFlag
        if self.explicit_batch_flag:
            flags |= 1 << int(kinds.EXPLICIT_BATCH)
        if strongly_typed and self.strongly_typed_flag:
            flags |= 1 << int(kinds.STRONGLY_TYPED)
        return flags


def is_supported(version: TrtVersion) -> bool:
    """True for 8.5, 8.6, 10.x and 11.x."""
    if version.major == 8:
        return version.minor in SUPPORTED_MINORS_8
    return version.major in SUPPORTED_MAJORS


def api_for(version: TrtVersion | str) -> TrtApi:
    """Decide the API path for ``version``; unsupported versions raise a typed error saying which work."""
    v = TrtVersion.parse(version) if isinstance(version, str) else version
    if not is_supported(v):
        raise BackendUnavailableError(
            f"TensorRT {v} is not supported by fer_edge; use 8.5 or 8.6 (JetPack 5.1/6.0), 10.x or 11.x"
        )
    legacy = v.major == 8
    modern_only = v.major >= 11
    return TrtApi(
        version=v,
        explicit_batch_flag=legacy,
        strongly_typed_only=modern_only,
        precision_flags=not modern_only,
        calibrator=not modern_only,
        plugin_interface="IPluginV2" if legacy else "IPluginV3",
        registry_get_creator="get_plugin_creator" if legacy else "get_creator",
        registry_load_library=not legacy,
        progress_monitor=not legacy,
        strongly_typed_flag=v.major == 10,
    )


def check_precision(api: TrtApi, precision: str) -> None:
    """Refuse a precision this version cannot build from fer_edge's graphs, before any work is done.

    TensorRT 11 is strongly typed: FP16 comes only from FP16 tensors in the ONNX, which fer_edge does
    not produce, so an ``--fp16`` build would silently be FP32 while its sidecar said fp16.
    """
    from fer_edge.errors import ExportError

    if precision == "fp16" and api.strongly_typed_only:
        raise ExportError(f"--fp16 is not available on TensorRT {api.version}: it is strongly typed (precision comes "
                          "only from the ONNX's tensor types) and fer_edge exports FP32 graphs; build --int8 (Q/DQ) "
                          "or FP32, or build FP16 with TensorRT 8.5-10.x")


def trtexec_flags(version: TrtVersion | str, precision: str, plugin_library: str | None) -> list[str]:
    """The ``trtexec`` flags that build ``precision`` (with fer_edge's plugin library, if given) on ``version``.

    INT8 means a Q/DQ graph: 8.x-10.x still need ``--int8`` to allow INT8 kernels (``--fp16`` lets
    the rest run in FP16, as ``fer-edge build`` does); 11.x is strongly typed and takes neither.
    The fer_edge library registers on load on 8.x and only through ``getCreators`` on 10+.
    """
    v = TrtVersion.parse(version) if isinstance(version, str) else version
    api = api_for(v)
    flags = []
    if api.precision_flags and precision in ("fp16", "int8"):
        flags += ["--int8", "--fp16"] if precision == "int8" else ["--fp16"]
    if api.strongly_typed_only and precision == "fp16":
        check_precision(api, precision)
    if plugin_library is not None:
        option = "--plugins" if (v.major, v.minor) == (8, 5) else "--staticPlugins" if v.major == 8 else "--dynamicPlugins"
        flags.append(f"{option}={plugin_library}")
    return flags


def cuda_runtime() -> Any:
    """cuda-python's runtime module under its current (``cuda.bindings.runtime``, cuda-python >= 12.6)
    or its older name (``cuda.cudart``)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # type: ignore[no-redef]
        except ImportError as exc:
            raise BackendUnavailableError("TensorRT needs cuda-python for CUDA memory and device queries: "
                                          "pip install 'fer_edge[tensorrt]'") from exc
    return runtime


def max_onnx_opset(version: TrtVersion | str) -> int:
    """Highest ONNX opset this version's parser reads (8.5/8.6 parse up to 17, FACTS.md)."""
    v = TrtVersion.parse(version) if isinstance(version, str) else version
    return 17 if v.major == 8 else 20


def installed_version() -> TrtVersion:
    """The importable TensorRT's version, or a typed error saying how to get TensorRT."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(
            "TensorRT is not installed: install it with `pip install fer_edge[tensorrt]` on a machine "
            "with an NVIDIA GPU (on Jetson it comes with JetPack), or build for ONNX Runtime with "
            f"`--target onnxruntime` ({exc})"
        ) from exc
    return TrtVersion.parse(trt.__version__)
