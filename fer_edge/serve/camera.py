"""The live source: one thread reads the camera, another runs ``Recognizer.stream`` on its frames.

Two threads because a camera must be read at its own pace: when recognition falls behind, the
driver's buffer would fill and every result would come later and later. Between them sits a
queue of a few frames that drops the oldest (and counts it), so results stay current. A video
file stands in for a camera: it is played at its own frame rate, and ``loop`` restarts it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator

import numpy as np

from fer_edge.recognizer import DetectionPolicy, FrameResult, Recognizer
from fer_edge.recognizer.sources import frames_from, is_stream_url
from fer_edge.serve.metrics import Metrics

log = logging.getLogger(__name__)

LiveSource = int | str | os.PathLike[str]


class FrameQueue:
    """A bounded frame queue between two threads; ``put`` never blocks, it drops the oldest frame."""

    def __init__(self, size: int, on_drop: Callable[[], None]) -> None:
        self._frames: deque[np.ndarray] = deque(maxlen=size)
        self._ready = threading.Condition()
        self._closed = False
        self._on_drop = on_drop

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: np.ndarray) -> None:
        with self._ready:
            if len(self._frames) == self._frames.maxlen:
                self._on_drop()
            self._frames.append(frame)
            self._ready.notify()

    def close(self, discard: bool = False) -> None:
        """No more frames; the reader still gets those queued unless ``discard``."""
        with self._ready:
            self._closed = True
            if discard:
                self._frames.clear()
            self._ready.notify_all()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._frames or self._closed)
                if not self._frames:
                    return
                frame = self._frames.popleft()
            yield frame


class LiveStream:
    """``source`` recognised continuously; each result and its frame go to ``publish``.

    ``state`` is "running", then "ended" (a video without ``loop`` reached its end) or
    "failed" (``error`` says why: a camera that cannot open, a corrupt file); either calls
    ``on_end(self)`` from the recognition thread, so listeners can be told (not on :meth:`stop`).
    """

    def __init__(self, recognizer: Recognizer, source: LiveSource, publish: Callable[[FrameResult, np.ndarray], None],
                 metrics: Metrics, queue_size: int = 2, loop: bool = False, policy: DetectionPolicy | None = None,
                 on_end: Callable[[LiveStream], None] | None = None) -> None:
        self.recognizer, self.source, self.publish, self.metrics = recognizer, source, publish, metrics
        self.loop, self.policy, self.on_end = loop, policy or DetectionPolicy(), on_end
        self.queue = FrameQueue(queue_size, lambda: metrics.add("dropped_frames_total"))
        self.state, self.error = "running", ""
        self._stop = threading.Event()
        self._stopping = False  # stop() was called: the end is the server's, nobody needs telling
        self._threads = [threading.Thread(target=self._capture, name="fer-edge-capture", daemon=True),
                         threading.Thread(target=self._recognize, name="fer-edge-recognize", daemon=True)]

    @property
    def is_file(self) -> bool:
        return not isinstance(self.source, int) and not is_stream_url(str(self.source))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads and release the camera; returns once they have ended."""
        self._stopping = True
        self._stop.set()
        self.queue.close(discard=True)
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout)

    def _fail(self, exc: Exception) -> None:
        log.error("fer-edge serve: live source %s failed: %s", self.source, exc)
        self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"

    def _capture(self) -> None:
        try:
            while not self._stop.is_set():
                frames = frames_from(self.source)
                start = time.monotonic()
                try:
                    for frame, stamp in frames:
                        if self.is_file and self._stop.wait(max(0.0, start + stamp - time.monotonic())):
                            break
                        if self._stop.is_set():
                            break
                        self.queue.put(frame)
                finally:
                    if isinstance(frames, Generator):
                        frames.close()  # releases the capture device now, not when garbage-collected
                if not (self.loop and self.is_file):
                    break
        except Exception as exc:  # noqa: BLE001 - any failure ends the source; it is reported, not raised
            self._fail(exc)
        finally:
            self.queue.close()

    def _recognize(self) -> None:
        try:
            stream = self.recognizer.stream(self.queue, policy=self.policy)
            for result in stream:
                self.metrics.add("frames_total")
                self.metrics.add("faces_total", len(result.faces))
                for stage, seconds in stream.stage_seconds.items():
                    self.metrics.observe(stage, seconds)
                self.publish(result, stream.frame)
        except Exception as exc:  # noqa: BLE001 - as above: the server keeps answering requests
            self._fail(exc)
            self._stop.set()
        if self.state == "running":
            self.state = "ended"
        if self.on_end is not None and not self._stopping:
            self.on_end(self)
