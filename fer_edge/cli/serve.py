"""``fer-edge serve [--source 0|video|rtsp://...]``: the Recognizer as a local HTTP/WebSocket service.

With ``--source`` a live page (``/``) and an event socket (``/v1/events``) follow that source;
``/v1/recognize``, ``/v1/info``, ``/healthz`` and ``/metrics`` are always there. Binds
127.0.0.1 unless told otherwise, and then only with a token. Ctrl-C or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import sys

from fer_edge.cli.run import add_model_arguments, add_policy_arguments, policy_of, recognizer_of
from fer_edge.errors import FerEdgeError
from fer_edge.recognizer.sources import stream_source
from fer_edge.serve.config import TOKEN_ENV, ServeConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", help="camera index (e.g. 0), video file or stream URL (rtsp://...); "
                                         "without it only the request endpoints are served")
    parser.add_argument("--loop", action="store_true", help="restart a video file --source at its end")
    parser.add_argument("--host", default=ServeConfig.host, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=ServeConfig.port, help="port (default %(default)s; 0: any free)")
    parser.add_argument("--token", help=f"needed by every request except the page and /healthz; required when --host "
                                        f"is not loopback (default: ${TOKEN_ENV})")
    parser.add_argument("--max-body-mb", type=float, default=ServeConfig.max_body / 2**20,
                        help="largest /v1/recognize body in MiB (default %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=ServeConfig.max_pixels,
                        help="largest uploaded image, width x height (default %(default)s)")
    parser.add_argument("--rate", type=float, default=ServeConfig.rate,
                        help="requests per second per client address, 0 for no limit (default %(default)s)")
    parser.add_argument("--workers", type=int, default=ServeConfig.workers,
                        help="threads running /v1/recognize; fewer leave more CPU to the live stream "
                             "(default %(default)s)")
    add_model_arguments(parser)
    add_policy_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = ServeConfig(host=args.host, port=args.port, token=ServeConfig.token_from_env(args.token),
                         max_body=int(args.max_body_mb * 2**20), max_pixels=args.max_pixels, rate=args.rate,
                         workers=args.workers)
    source = stream_source(args.source) if args.source else None  # bad settings fail before the model loads
    policy = policy_of(args)
    try:
        from fer_edge.serve.server import Server
    except ModuleNotFoundError as exc:
        if exc.name != "aiohttp":
            raise
        raise FerEdgeError('fer-edge serve needs the serve extra: pip install "fer_edge[serve]"') from None
    server = Server(recognizer_of(args), config, source, args.loop, policy)
    print(f"fer-edge serve: {server.url}/ (page), {server.url}/v1/events (socket), {server.url}/v1/recognize; "
          "Ctrl-C stops", file=sys.stderr)
    server.run()
    return 0
