"""A server's life: open the port, start the live source, and on stop undo both in order.

:meth:`Server.run` is the command (blocks; SIGINT/SIGTERM stop it); :meth:`Server.start` runs
the same thing on a background thread for tests and for programs that embed the service.
Stopping releases the camera first (no new events), then tells socket clients the server is
going away, then closes the port and the request workers: nothing is left running.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from fer_edge.recognizer import DetectionPolicy, Recognizer
from fer_edge.serve.app import Service, create_app
from fer_edge.serve.camera import LiveSource, LiveStream
from fer_edge.serve.config import ServeConfig
from fer_edge.serve.hub import EventHub
from fer_edge.serve.metrics import Metrics


class Server:
    """``recognizer`` behind HTTP on ``config.host:config.port``; ``source`` adds the live stream.

    After start, ``port`` is the bound port (useful with ``port=0``) and ``url`` the page's address.
    """

    def __init__(self, recognizer: Recognizer, config: ServeConfig | None = None, source: LiveSource | None = None,
                 loop: bool = False, policy: DetectionPolicy | None = None) -> None:
        self.recognizer, self.config = recognizer, config or ServeConfig()
        self.source, self.loop_video, self.policy = source, loop, policy
        self.port = self.config.port
        self.metrics = Metrics()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}"

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down cleanly."""
        loop = asyncio.get_running_loop()
        config = self.config
        hub = EventHub(loop, self.metrics, config.client_buffer, config.jpeg_quality)
        executor = ThreadPoolExecutor(config.workers, thread_name_prefix="fer-edge-recognize-request")
        live = None if self.source is None else LiveStream(self.recognizer, self.source, hub.publish, self.metrics,
                                                            config.frame_queue, self.loop_video, self.policy,
                                                            hub.source_ended)
        service = Service(self.recognizer, config, self.metrics, hub, executor, live)
        self.metrics.gauges.update({
            "queue_depth": ("frames waiting for the recognizer", lambda: len(live.queue) if live else 0),
            "socket_clients": ("connected /v1/events clients", lambda: len(hub.clients)),
            "pending_requests": ("/v1/recognize requests in progress or waiting", lambda: service.pending),
        })
        runner = web.AppRunner(create_app(service), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.host, config.port)
            await site.start()
            self.port = runner.addresses[0][1]
            if live is not None:
                live.start()
            self._ready.set()
            await stop.wait()
        finally:
            if live is not None:
                await asyncio.to_thread(live.stop)
            await runner.cleanup()
            executor.shutdown(wait=True, cancel_futures=True)

    def run(self) -> None:
        """Serve in this thread until SIGINT or SIGTERM."""
        async def main() -> None:
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await self.serve(stop)

        asyncio.run(main())

    def start(self, timeout: float = 30.0) -> Server:
        """Serve on a background thread; returns once the port is open (raises what stopped it otherwise)."""
        self._thread = threading.Thread(target=self._background, name="fer-edge-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the server did not start within {timeout} s")
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Shut a :meth:`start`-ed server down and wait until its threads are gone."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def _background(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await self.serve(self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it in the caller
            self._failure = exc
        finally:
            self._ready.set()
