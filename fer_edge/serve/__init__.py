"""``fer-edge serve``: the Recognizer as a local service for kiosk pages and robot processes.

A kiosk's UI is a web page and a robot's behaviour engine another process, often in another
language: both want expressions as a stream of events, not a Python import. Endpoints: ``GET /``
(live page), ``GET /v1/events`` (WebSocket, one ``fer_edge.result`` message per frame),
``POST /v1/recognize``, ``GET /v1/info``, ``GET /healthz``, ``GET /metrics``.

Built on aiohttp rather than FastAPI + uvicorn: one maintained library gives the server, the
WebSocket, multipart parsing, body-size limits and the client our tests and benchmark use,
with no ASGI layer or validation framework to install on an edge device. This package sits
above :mod:`fer_edge.recognizer` and below the CLI; it never touches an engine.
"""

from typing import Any

from fer_edge.serve.config import TOKEN_ENV, ServeConfig

__all__ = ["TOKEN_ENV", "ServeConfig", "Server"]


def __getattr__(name: str) -> Any:
    """``Server`` is imported on first use: it needs aiohttp (the ``serve`` extra), ``ServeConfig`` does not."""
    if name == "Server":
        from fer_edge.serve.server import Server

        return Server
    raise AttributeError(f"module 'fer_edge.serve' has no attribute {name!r}")
