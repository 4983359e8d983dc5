"""Inference engines behind one interface (:class:`Engine`), one registered manager per backend.

Importing this package registers every backend without importing any framework; each manager's
``is_available()`` says whether its framework can run here.
"""

from fer_edge.engines import onnxruntime, tensorrt, torch, triton  # noqa: F401  (registers the managers)
from fer_edge.engines.base import BACKENDS, BackendManager, Engine, get_backend, register_backend

__all__ = ["BACKENDS", "BackendManager", "Engine", "get_backend", "register_backend"]
