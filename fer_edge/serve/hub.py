"""Fan-out of each processed frame to the ``/v1/events`` socket clients.

Each client has its own bounded buffer and its own sender task, so a client that reads slowly
(or not at all) fills only its own buffer; when that is full it is disconnected with close code
1013 ("try again later") and counted, and nobody else waits for it. The recognition thread
never waits on a client either: it hands each message to the event loop and returns. Clients
are told why a socket ends: 1000 when a video ended, 1011 with the error when the source failed,
1001 when the server stops (each after the messages already queued for it are sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

import cv2
import numpy as np
from aiohttp import WSCloseCode, web

from fer_edge.recognizer import FrameResult
from fer_edge.serve.camera import LiveStream
from fer_edge.serve.metrics import Metrics

CLOSE_TIMEOUT = 2.0  # seconds a closing handshake may take before the connection is cut
# kernel send buffer per client: Linux would grow it to 4 MB (100 frames) before a stalled
# client's sends block, so it would be dropped only after seconds and megabytes
SEND_BUFFER = 256 * 1024


@dataclass(eq=False)
class Client:
    """One socket: ``video`` clients also get each frame as a binary JPEG message before its JSON."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    video: bool
    queue: asyncio.Queue[str | bytes]
    sender: asyncio.Task[None] | None = None
    closing: asyncio.Task[None] | None = field(default=None, repr=False)


class EventHub:
    """The socket clients of one server; :meth:`publish` may be called from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: Metrics, buffer: int, jpeg_quality: int) -> None:
        self.loop, self.metrics, self.buffer, self.jpeg_quality = loop, metrics, buffer, jpeg_quality
        self.clients: set[Client] = set()
        self.ended: tuple[int, str] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._video_clients = 0

    def publish(self, result: FrameResult, frame: np.ndarray) -> None:
        """Queue ``result`` (and the frame as JPEG when a client wants video) for every client."""
        jpeg = None
        if self._video_clients:
            ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            jpeg = data.tobytes() if ok else None
        with contextlib.suppress(RuntimeError):  # the loop already closed: nobody is listening
            self.loop.call_soon_threadsafe(self._broadcast, result.to_json(), jpeg)

    def join(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, video: bool) -> Client:
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        client = Client(ws, transport, video, asyncio.Queue(self.buffer))
        client.sender = asyncio.ensure_future(self._send(client))
        self.clients.add(client)
        self._video_clients += video
        if self.ended is not None:
            self._end(client, *self.ended)
        return client

    def leave(self, client: Client) -> None:
        """The client is gone: no more messages for it."""
        self._forget(client)
        if client.sender is not None:
            client.sender.cancel()

    def _forget(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self._video_clients -= client.video

    def source_ended(self, live: LiveStream) -> None:
        """From any thread: close every socket because the source ended (1000) or failed (1011, with why)."""
        code = WSCloseCode.INTERNAL_ERROR if live.state == "failed" else WSCloseCode.OK
        reason = f"the live source {live.state}" + (f": {live.error}" if live.error else "")
        with contextlib.suppress(RuntimeError):  # the loop already closed
            self.loop.call_soon_threadsafe(self._finish, code, reason[:120])

    def _finish(self, code: int, reason: str) -> None:
        self.ended = (code, reason)  # a client joining from now on is closed at once, with the same reason
        for client in list(self.clients):
            self._end(client, code, reason, flush=True)

    async def close_all(self, code: int = WSCloseCode.GOING_AWAY, reason: str = "server shutting down") -> None:
        """Tell every client why it is being disconnected and wait until each is gone."""
        for client in list(self.clients):
            self._end(client, code, reason, flush=True)
        await asyncio.gather(*self._closing, return_exceptions=True)

    def _broadcast(self, text: str, jpeg: bytes | None) -> None:
        for client in list(self.clients):
            items: list[str | bytes] = [jpeg, text] if client.video and jpeg is not None else [text]
            if self.buffer - client.queue.qsize() < len(items):
                self.metrics.add("dropped_clients_total")
                self._end(client, WSCloseCode.TRY_AGAIN_LATER, "client too slow: its buffer is full")
                continue
            for item in items:
                client.queue.put_nowait(item)

    def _end(self, client: Client, code: int, reason: str, flush: bool = False) -> None:
        """Close ``client`` with ``code``; ``flush`` sends what is queued for it first (a slow client gets no flush)."""
        self._forget(client)
        if client.closing is None:
            client.closing = asyncio.ensure_future(self._close(client, code, reason, flush))
            self._closing.add(client.closing)
            client.closing.add_done_callback(self._closing.discard)

    async def _close(self, client: Client, code: int, reason: str, flush: bool) -> None:
        try:
            if flush:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(client.queue.join(), CLOSE_TIMEOUT)
            if client.sender is not None:
                client.sender.cancel()
            await asyncio.wait_for(client.ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError):
            if client.transport is not None:  # a client that stopped reading never completes the handshake
                client.transport.abort()

    @staticmethod
    async def _send(client: Client) -> None:
        try:
            while True:
                item = await client.queue.get()
                try:
                    if isinstance(item, bytes):
                        await client.ws.send_bytes(item)
                    else:
                        await client.ws.send_str(item)
                finally:
                    client.queue.task_done()
        except ConnectionError:
            pass
        finally:  # whatever is left will never be sent: a flush must not wait for it
            while not client.queue.empty():
                client.queue.get_nowait()
                client.queue.task_done()
