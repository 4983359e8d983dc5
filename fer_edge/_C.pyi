# ruff: noqa: N999  (the private native module is conventionally named _C, as in torch)
"""Stub of the native extension built from cpp/python/bindings.cpp (use fer_edge.plugins)."""

import numpy as np
import numpy.typing as npt

PLUGIN_LIBRARY_VERSION: str
TENSORRT_HEADERS_VERSION: str

def simam(x: npt.ArrayLike, lambda_: float) -> npt.NDArray[np.float32]: ...
def cc_attention(
    x: npt.ArrayLike, q: npt.ArrayLike, k: npt.ArrayLike, v: npt.ArrayLike
) -> npt.NDArray[np.float32]: ...
