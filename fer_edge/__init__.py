"""fer_edge: facial-expression recognition for robots and kiosks.

``from fer_edge import Recognizer`` is the entry point. Heavy modules (the Recognizer and its
engines) load on first use so ``import fer_edge`` stays fast and needs neither torch nor TensorRT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fer_edge._version import __version__
from fer_edge.constants import EXPRESSIONS_7, EXPRESSIONS_8

if TYPE_CHECKING:
    from fer_edge.recognizer import FaceResult, Recognizer

__all__ = ["EXPRESSIONS_7", "EXPRESSIONS_8", "FaceResult", "Recognizer", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Recognizer", "FaceResult"):
        from fer_edge import recognizer

        return getattr(recognizer, name)
    raise AttributeError(f"module 'fer_edge' has no attribute {name!r}")
