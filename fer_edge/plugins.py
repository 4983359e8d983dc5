"""The native side of fer_edge: the TensorRT plugin library and the CPU reference of its kernels.

The plugin kernels (``SimAM_TRT``, ``CCAttention_TRT``) and ``fer_edge._C`` compile the same
per-plane math headers (``cpp/*/…Math.h``), so :func:`simam_reference` and
:func:`cc_attention_reference` compute what the GPU computes (up to reduction order): tests and
export checks compare the PyTorch layers and TensorRT engines against them. Float16 arrays are
computed in float32 and rounded once, as the kernels do. Nothing here imports torch or TensorRT.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from fer_edge.errors import InvalidInputError, PluginLibraryError

PLUGIN_LIBRARY_ENV = "FER_EDGE_PLUGIN_LIBRARY"
# (name, version, namespace) of every creator the library provides (cpp/*/…Plugin.h)
PLUGIN_CREATORS = (("SimAM_TRT", "1", ""), ("CCAttention_TRT", "1", ""))
PLUGIN_LIBRARY_NAME = "libfer_edge_plugins.so"
_BUILD_HINT = (
    "build it with `pip install -e .` from a source checkout (needs CMake >= 3.18 and a C++17 compiler; "
    "the plugin library also needs nvcc and TensorRT headers, found via TensorRT_ROOT)"
)


def _native() -> ModuleType:
    try:
        from fer_edge import _C
    except ImportError as exc:
        raise PluginLibraryError(f"the native extension fer_edge._C is not built ({exc}); {_BUILD_HINT}") from exc
    return _C


def plugin_library_path() -> Path | None:
    """The plugin library to load into TensorRT, or None when it was not built.

    ``$FER_EDGE_PLUGIN_LIBRARY`` overrides the packaged library (e.g. one built on a Jetson with its
    own CUDA); it must name an existing file.
    """
    override = os.environ.get(PLUGIN_LIBRARY_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise PluginLibraryError(f"${PLUGIN_LIBRARY_ENV} names {path}, which is not a file")
        return path
    path = Path(__file__).resolve().parent / PLUGIN_LIBRARY_NAME
    return path if path.is_file() else None


def plugin_library_version() -> str | None:
    """Version of the plugin library :func:`plugin_library_path` finds (recorded in sidecars), or None.

    The packaged library was built with ``fer_edge._C``, which records its version; a library named
    by ``$FER_EDGE_PLUGIN_LIBRARY`` is asked directly (it references no TensorRT symbol, so it opens
    anywhere; a TensorRT 8.x library should be loaded into TensorRT first, as it registers on load).
    """
    path = plugin_library_path()
    if path is None:
        return None
    if PLUGIN_LIBRARY_ENV not in os.environ:
        return str(_native().PLUGIN_LIBRARY_VERSION)
    return _library_version(path)


def _library_version(path: Path) -> str:
    try:
        lib = ctypes.CDLL(os.fspath(path))
    except OSError as exc:
        raise PluginLibraryError(f"cannot open the plugin library {path} to read its version: {exc}") from exc
    lib.ferEdgePluginVersion.restype = ctypes.c_char_p
    return str(lib.ferEdgePluginVersion().decode())


_LOADED: dict[str, str] = {}  # resolved path -> version, for this process
_LOAD_LOCK = threading.Lock()


def load_into_tensorrt(trt: Any, api: Any, path: Path) -> str:
    """Register the plugin library's creators with TensorRT, once per process; return its version.

    ``api`` is :func:`fer_edge.trt_compat.api_for`'s decision: TensorRT >= 10 loads it with
    ``IPluginRegistry.load_library`` (which calls the library's ``getCreators``), 8.x with ``dlopen``
    (it registers on load). Either way the creators must then be found in the registry; anything
    else is a :class:`PluginLibraryError` saying so, never a later "cannot deserialize" that reads
    like a stale engine. A second call with the same library is a no-op: TensorRT refuses to load a
    library whose creators are already registered.
    """
    if not path.is_file():
        raise PluginLibraryError(f"plugin library {path} does not exist; {_BUILD_HINT}")
    key = os.fspath(path.resolve())
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        registry = trt.get_plugin_registry()
        if api.registry_load_library:
            if registry.load_library(key) is None:
                raise PluginLibraryError(f"TensorRT {api.version} could not load the plugin library {path} (see "
                                         "TensorRT's log above); was it built against another TensorRT major version?")
        else:
            try:
                ctypes.CDLL(key, mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                raise PluginLibraryError(f"cannot load the plugin library {path}: {exc}") from exc
        find = getattr(registry, api.registry_get_creator)
        missing = [f"{name} v{version}" for name, version, namespace in PLUGIN_CREATORS
                   if find(name, version, namespace) is None]
        if missing:
            raise PluginLibraryError(f"{path} loaded, but TensorRT {api.version} has no creator for "
                                     f"{', '.join(missing)}: it was built for another TensorRT generation "
                                     "(8.x and 10+ plugin interfaces differ); rebuild fer_edge here")
        _LOADED[key] = _library_version(path)
        return _LOADED[key]


def _as_nchw(name: str, a: np.ndarray) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float16):
        kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise InvalidInputError(f"{name} must be a float32 or float16 numpy array, got {kind}")
    if a.ndim != 4:
        raise InvalidInputError(f"{name} must be NCHW (4-D), got shape {a.shape}")
    return a


def simam_reference(x: np.ndarray, lambda_: float = 1e-4) -> np.ndarray:
    """SimAM (``SimAM_TRT``'s arithmetic) on a float32/float16 NCHW array; returns x's dtype."""
    x = _as_nchw("x", x)
    if not np.isfinite(lambda_) or lambda_ <= 0:
        raise InvalidInputError(f"lambda_ must be finite and > 0, got {lambda_}")
    out = _native().simam(x.astype(np.float32, copy=False), float(lambda_))
    return np.asarray(out).astype(x.dtype, copy=False)


def cc_attention_reference(x: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``x + softmax_HW(k * mean_HW(x) + q) * v`` (``CCAttention_TRT``'s arithmetic); returns x's dtype."""
    arrays = [_as_nchw(name, a) for name, a in (("x", x), ("q", q), ("k", k), ("v", v))]
    for name, a in zip("qkv", arrays[1:]):
        if a.shape != x.shape or a.dtype != x.dtype:
            raise InvalidInputError(f"{name} must match x: {a.dtype}{a.shape} vs {x.dtype}{x.shape}")
    out = _native().cc_attention(*(a.astype(np.float32, copy=False) for a in arrays))
    return np.asarray(out).astype(x.dtype, copy=False)
