"""Frame sources for streams and the CLI: camera index, video file, stream URL, image files, or any iterator.

Every source yields ``(frame, timestamp_seconds)`` so results carry when each frame happened:
video files report their own position, cameras and live iterators the time since the first frame,
and iterators given an ``fps`` a synthetic ``index / fps`` (reproducible in tests).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fer_edge.errors import ImageReadError, InvalidInputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}

Source = int | str | os.PathLike[str] | Iterable[np.ndarray]


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to BGR uint8, or raise :class:`ImageReadError` saying why not."""
    file = Path(path)
    if not file.is_file():
        raise ImageReadError(f"{file} does not exist or is not a file")
    data = np.fromfile(file, dtype=np.uint8)  # imdecode (not imread): works with any path encoding
    if data.size == 0:
        raise ImageReadError(f"{file} is empty (0 bytes)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"{file} is not a decodable image (corrupt or unsupported format)")
    return image


def _capture_frames(capture: cv2.VideoCapture, what: str, live: bool) -> Iterator[tuple[np.ndarray, float]]:
    start = time.monotonic()
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                if index == 0:
                    raise ImageReadError(f"{what} opened but gave no frame (corrupt file or camera busy)")
                return
            if live:
                stamp = time.monotonic() - start
            else:
                msec = capture.get(cv2.CAP_PROP_POS_MSEC)
                stamp = msec / 1000.0 if msec > 0 or index == 0 else index / fps if fps > 0 else float(index)
            yield frame, stamp
            index += 1
    finally:
        capture.release()


def is_stream_url(text: str) -> bool:
    """Whether a source names a network stream (``rtsp://``, ``http://``, ...) rather than a file."""
    return "://" in text


def stream_source(text: str) -> int | str | Path:
    """A command-line source as a stream source: camera index ("0"), stream URL, or video file path.

    A digit string is a camera unless a file of that name exists, so ``./0`` still means the file.
    """
    path = Path(text)
    if text.isdigit() and not path.exists():
        return int(text)
    if is_stream_url(text):
        return text
    if not path.is_file():
        raise ImageReadError(f"{path} does not exist (give a camera index, a video file or a stream URL)")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise InvalidInputError(f"{path.name} is not a video ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return path


def frames_from(source: Source, fps: float | None = None) -> Iterator[tuple[np.ndarray, float]]:
    """Iterate ``(frame, timestamp)`` over a camera index, a video file path, a stream URL or an iterable of frames."""
    if isinstance(source, bool):
        raise InvalidInputError("a stream source must be a camera index, a video path or an iterable of frames")
    if isinstance(source, int):
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise ImageReadError(f"cannot open camera {source} (no such device, or it is in use)")
        return _capture_frames(capture, f"camera {source}", live=True)
    if isinstance(source, str) and is_stream_url(source):
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise ImageReadError(f"cannot open stream {source} (unreachable, or a codec OpenCV lacks)")
        return _capture_frames(capture, source, live=True)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageReadError(f"video {path} does not exist")
        if path.stat().st_size == 0:
            raise ImageReadError(f"video {path} is empty (0 bytes)")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ImageReadError(f"{path} is not a readable video (corrupt or unsupported codec)")
        return _capture_frames(capture, str(path), live=False)
    if isinstance(source, Iterable):
        return _iterable_frames(source, fps)
    raise InvalidInputError(f"unsupported stream source {type(source).__name__}; pass a camera index, "
                            "a video path or an iterable of frames")


def _iterable_frames(frames: Iterable[np.ndarray], fps: float | None) -> Iterator[tuple[np.ndarray, float]]:
    start = time.monotonic()
    for index, frame in enumerate(frames):
        yield frame, (index / fps if fps else time.monotonic() - start)
