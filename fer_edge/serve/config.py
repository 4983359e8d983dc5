"""What a server may accept and whom it answers: bind address, token, request and buffer limits.

Checked once at start, so a bad setting fails before the model loads or a port opens. Binding
anything but loopback without a token is refused: a kiosk's camera must not become a stream
anyone on the network can read.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from fer_edge.errors import InvalidInputError

TOKEN_ENV = "FER_EDGE_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine ("localhost", 127.x, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one server; the defaults suit one kiosk page plus a few local processes.

    ``max_body`` bytes and ``max_pixels`` per uploaded image bound memory per request (a small
    PNG can decode to gigabytes); ``rate``/``burst`` are requests per second per client address
    (0 turns the limit off); ``frame_queue`` frames wait between camera and recognizer (the
    oldest is dropped); ``client_buffer`` messages wait per socket client before it is dropped;
    ``workers`` threads run ``/v1/recognize`` and ``max_pending`` requests may wait for them.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_body: int = 4 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    rate: float = 20.0
    burst: int = 40
    frame_queue: int = 2
    client_buffer: int = 16
    workers: int = 2
    max_pending: int = 16
    jpeg_quality: int = 80

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise InvalidInputError(f"binding {self.host} exposes the camera to the network: give --token "
                                    f"(or set {TOKEN_ENV}), or bind 127.0.0.1")
        if not 0 <= self.port <= 65535:
            raise InvalidInputError(f"port must be 0-65535, got {self.port}")
        for name in ("max_body", "max_pixels", "frame_queue", "client_buffer", "workers", "max_pending"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rate < 0 or (self.rate > 0 and self.burst < 1):
            raise InvalidInputError(f"rate must be >= 0 and burst >= 1, got {self.rate}, {self.burst}")
        if not 1 <= self.jpeg_quality <= 100:
            raise InvalidInputError(f"jpeg_quality must be 1-100, got {self.jpeg_quality}")

    @staticmethod
    def token_from_env(token: str | None) -> str | None:
        """The token given, else ``$FER_EDGE_TOKEN`` (so it stays out of ``ps`` output), else None."""
        return token or os.environ.get(TOKEN_ENV) or None
