"""Uploaded bytes -> a BGR frame, refusing what would hurt the server before decoding it.

The size of a JPEG or PNG is read from its header first: a 40 kB PNG can declare 30,000 x 30,000
pixels and decode to 2.7 GB, so the pixel limit must hold before ``cv2.imdecode`` runs. Every
refusal is a :class:`RequestError` naming the problem, which the app turns into a 4xx JSON body.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from fer_edge.errors import RequestError

CONTENT_TYPES = ("image/jpeg", "image/png", "application/octet-stream")
JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) do not
SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in SOF_MARKERS and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG or PNG header, without decoding the pixels."""
    if data.startswith(PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise RequestError(400, "corrupt_image", "the PNG header is truncated or corrupt")
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(JPEG_MAGIC):
        size = _jpeg_size(data)
        if size is None:
            raise RequestError(400, "corrupt_image", "the JPEG has no readable frame header (truncated or corrupt)")
        return size
    raise RequestError(400, "not_an_image", "the body is neither a JPEG nor a PNG image")


def decode_upload(data: bytes, content_type: str, max_pixels: int) -> np.ndarray:
    """The uploaded image as BGR uint8; ``content_type`` is the body's (or the multipart part's)."""
    if content_type not in CONTENT_TYPES:
        raise RequestError(415, "unsupported_content_type",
                           f"content type {content_type or 'none'!r} is not accepted; send {', '.join(CONTENT_TYPES)} "
                           "or multipart/form-data with an 'image' part")
    if not data:
        raise RequestError(400, "empty_body", "the request has no image (empty body)")
    width, height = image_size(data)
    if width < 1 or height < 1:
        raise RequestError(400, "corrupt_image", f"the image header declares {width}x{height} pixels")
    if width * height > max_pixels:
        raise RequestError(413, "too_many_pixels",
                           f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RequestError(400, "corrupt_image", "the image could not be decoded (truncated or corrupt)")
    return image
