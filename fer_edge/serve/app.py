"""The HTTP and WebSocket endpoints of ``fer-edge serve`` (aiohttp handlers and middlewares).

Every refusal is JSON ``{"error": code, "message": ...}`` with a 4xx status, including aiohttp's
own (unknown path, body too large); an unexpected failure is logged here and answered with a 500
that carries no traceback. Requests other than the page and ``/healthz`` need the token when one
is set; a request whose ``Origin`` is another site is refused, so a page on the kiosk's browser
cannot read the camera's events (there are no CORS headers at all).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from fer_edge.errors import FerEdgeError, RequestError
from fer_edge.recognizer import FrameResult, Recognizer
from fer_edge.serve.camera import LiveStream
from fer_edge.serve.config import ServeConfig
from fer_edge.serve.hub import EventHub
from fer_edge.serve.images import decode_upload
from fer_edge.serve.metrics import Metrics

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PUBLIC = {"/", "/healthz", "/static/app.js", "/static/style.css"}
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; connect-src 'self'",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


@dataclass
class Service:
    """What the handlers share: the model, the limits, the live stream (None without ``--source``)."""

    recognizer: Recognizer
    config: ServeConfig
    metrics: Metrics
    hub: EventHub
    executor: ThreadPoolExecutor
    live: LiveStream | None = None
    pending: int = 0
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # client -> (tokens, last time)


SERVICE = web.AppKey("service", Service)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestError as exc:
        return _error(exc.status, exc.code, str(exc))
    except FerEdgeError as exc:  # e.g. an image the recognizer cannot take
        return _error(400, "invalid_input", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("fer-edge serve: %s %s failed", request.method, request.path)
        return _error(500, "internal_error", "the server failed on this request; the log says why")


def _allow(service: Service, client: str) -> bool:
    """Token bucket per client address: ``rate`` per second, up to ``burst`` at once."""
    rate, burst, now = service.config.rate, service.config.burst, time.monotonic()
    tokens, last = service.buckets.get(client, (float(burst), now))
    tokens = min(float(burst), tokens + (now - last) * rate)
    if len(service.buckets) > 4096:  # forget idle clients so the table stays small
        service.buckets = {k: v for k, v in service.buckets.items() if now - v[1] < burst / rate}
    service.buckets[client] = (tokens - 1.0, now) if tokens >= 1.0 else (tokens, now)
    return tokens >= 1.0


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise RequestError(403, "cross_origin", f"requests from {origin} are refused; open the page from this server")
    token = service.config.token
    if token and request.path not in PUBLIC:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if request.path == "/v1/events":  # browsers cannot set headers on a WebSocket
            given = given or request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise RequestError(401, "unauthorized", "this server needs its token: 'Authorization: Bearer TOKEN' "
                                                    "(or ?token=TOKEN on /v1/events)")
    if service.config.rate > 0 and request.path != "/healthz" and not _allow(service, request.remote or ""):
        raise RequestError(429, "rate_limited", f"more than {service.config.rate:g} requests/s from this client")
    return await handler(request)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


async def events(request: web.Request) -> web.WebSocketResponse:
    """One ``FrameResult.to_json`` text message per frame; ``?video=1`` sends each frame as a JPEG before it."""
    service = request.app[SERVICE]
    if service.live is None:
        raise RequestError(404, "no_source", "this server has no live source (start it with --source)")
    if service.live.state != "running":
        raise RequestError(410, "source_ended", f"the live source {service.live.state}"
                                                + (f": {service.live.error}" if service.live.error else ""))
    ws = web.WebSocketResponse(compress=False, heartbeat=20.0)  # JPEGs do not compress; pings find dead peers
    await ws.prepare(request)
    client = service.hub.join(ws, request.transport, request.query.get("video") == "1")
    try:
        async for _ in ws:  # messages from clients are ignored; reading notices when they leave
            pass
    finally:
        service.hub.leave(client)
    return ws


async def _upload(request: web.Request) -> tuple[bytes, str]:
    """The image bytes and their content type; aiohttp stops reading at ``client_max_size``."""
    try:
        if request.content_type != "multipart/form-data":
            return await request.read(), request.content_type
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise RequestError(413, "too_large", f"the body is over {request.app[SERVICE].config.max_body} bytes") from None
    part = form.get("image")
    if not isinstance(part, web.FileField):
        raise RequestError(400, "no_image_part", "the multipart body has no file part named 'image'")
    return part.file.read(), part.content_type


async def recognize(request: web.Request) -> web.Response:
    """Faces of one uploaded JPEG/PNG (raw body or multipart part 'image'), as a ``fer_edge.result`` document."""
    service = request.app[SERVICE]
    config = service.config
    if service.pending >= config.workers + config.max_pending:
        raise RequestError(503, "busy", "too many images are waiting; retry shortly")
    service.pending += 1
    try:
        start = time.perf_counter()
        data, content_type = await _upload(request)
        image = decode_upload(data, content_type, config.max_pixels)
        faces = await asyncio.get_running_loop().run_in_executor(service.executor, service.recognizer, image)
        service.metrics.observe("recognize", time.perf_counter() - start)
        service.metrics.add("requests_total", status="200")
        return web.json_response(FrameResult(faces).to_dict(), dumps=_compact)
    except RequestError as exc:
        service.metrics.add("requests_total", status=str(exc.status))
        raise
    finally:
        service.pending -= 1


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


async def info(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].recognizer.info())


async def healthz(request: web.Request) -> web.Response:
    """200 while serving; 503 when the live source failed (the error says why)."""
    live = request.app[SERVICE].live
    body: dict[str, Any] = {"status": "ok", "source": None}
    if live is not None:
        body["source"] = {"state": live.state, "error": live.error or None}
        if live.state == "failed":
            body["status"] = "failed"
    return web.json_response(body, status=503 if body["status"] == "failed" else 200)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SERVICE].metrics.render().encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def create_app(service: Service) -> web.Application:
    app = web.Application(middlewares=[errors_as_json, guard], client_max_size=service.config.max_body)
    app[SERVICE] = service
    app.router.add_get("/", page)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/v1/events", events)
    app.router.add_post("/v1/recognize", recognize)
    app.router.add_get("/v1/info", info)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.on_shutdown.append(_close_sockets)
    return app


async def _close_sockets(app: web.Application) -> None:
    """Clients are told the server is going away (close code 1001) before it stops."""
    await app[SERVICE].hub.close_all()
