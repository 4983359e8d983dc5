"""Load benchmark of ``fer-edge serve``: concurrent clients on ``/v1/recognize`` and on the event socket.

    python bench/serve_bench.py            # uploads by 1/4/16 clients, sockets 1/8/32, then mixed; 10 s each
    python bench/serve_bench.py --quick    # 2 s phases: checks the script runs

The server is a real ``fer-edge serve`` process (its own interpreter, as deployed) on a loopback
port, following a synthetic 640x480 clip at 30 frames/s with ``--loop`` (the astronaut moving over
a textured background, :mod:`fer_edge.bench.video`); the clients are aiohttp coroutines here.
``--rate 0``: the per-address rate limit is off, since every client here shares 127.0.0.1.

- recognize: N clients each POST a 640x480 JPEG frame of the clip back to back: requests/s,
  latency p50/p99, answers other than 200 (503 ``busy`` when the queue is full).
- events: M socket clients (one of them the page's ``?video=1`` kind) read for the phase:
  events/s per client, frames missed (gaps in ``frame_index``), clients dropped, and the p99 of
  each event's delay beyond the fastest one seen (arrival minus the frame's timestamp, less its
  minimum; both processes read the same monotonic clock).
- mixed: 16 upload clients and 8 socket clients at once: does the stream keep its pace.

Each phase lasts ``--seconds``; the run is bounded by phases x seconds plus start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np

from fer_edge.bench.stats import LatencyStats
from fer_edge.bench.video import astronaut_head, moving_face_video
from fer_edge.recognizer.sources import read_image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FPS = 30


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--uploaders", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--listeners", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serve.json")
    parser.add_argument("--quick", action="store_true", help="2 s phases")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    return parser.parse_args()


def write_clip(path: Path) -> bytes:
    """A 10 s looping clip at 30 frames/s; returns one of its frames as the JPEG the uploaders send."""
    face = astronaut_head(read_image(REPO / "examples" / "astronaut.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (640, 480))
    frames = list(moving_face_video(face, 10 * FPS, (480, 640), seed=0))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return cv2.imencode(".jpg", frames[0], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.2)
    raise RuntimeError("fer-edge serve did not start")


async def uploader(session: aiohttp.ClientSession, url: str, body: bytes, until: float,
                   latencies: list[float], statuses: dict[int, int]) -> None:
    while time.monotonic() < until:
        start = time.monotonic()
        async with session.post(f"{url}/v1/recognize", data=body, headers={"Content-Type": "image/jpeg"}) as response:
            await response.read()
        if response.status == 200:
            latencies.append(time.monotonic() - start)
        statuses[response.status] = statuses.get(response.status, 0) + 1


async def listener(session: aiohttp.ClientSession, url: str, video: bool, until: float) -> dict[str, Any]:
    """Events one socket client got before ``until``: count, frames missed, delays, how it ended."""
    indices: list[int] = []
    delays: list[float] = []
    closed = None
    async with session.ws_connect(f"{url}/v1/events" + ("?video=1" if video else ""), max_msg_size=0) as ws:
        while (left := until - time.monotonic()) > 0:
            try:
                message = await ws.receive(timeout=left)
            except asyncio.TimeoutError:
                break
            if message.type == aiohttp.WSMsgType.TEXT:
                event = json.loads(message.data)
                indices.append(event["frame_index"])
                delays.append(time.monotonic() - event["timestamp"])
            elif message.type != aiohttp.WSMsgType.BINARY:
                closed = ws.close_code
                break
    missed = sum(b - a - 1 for a, b in itertools.pairwise(indices))
    return {"events": len(indices), "missed": missed, "delays": delays, "closed": closed}


async def counters(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """The server's frame counters from ``/metrics``."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    return {line.split()[0].removeprefix("fer_edge_"): float(line.split()[1]) for line in text.splitlines()
            if line.startswith(("fer_edge_dropped", "fer_edge_frames_total"))}


async def phase(url: str, body: bytes, uploaders: int, listeners: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        before = await counters(session, url)
        start = time.monotonic()
        until = start + seconds
        _, clients = await asyncio.gather(
            asyncio.gather(*(uploader(session, url, body, until, latencies, statuses) for _ in range(uploaders))),
            asyncio.gather(*(listener(session, url, i == 0, until) for i in range(listeners))))
        elapsed = time.monotonic() - start
        after = await counters(session, url)
    out: dict[str, Any] = {"uploaders": uploaders, "listeners": listeners, "seconds": round(elapsed, 2),
                           "server": {k: v - before.get(k, 0.0) for k, v in after.items()}}
    if uploaders:
        out["recognize"] = {"requests_per_s": round(len(latencies) / elapsed, 1), "statuses": statuses,
                            "latency": LatencyStats.from_seconds(latencies).to_dict() if latencies else None}
    if clients:
        delays = [d - min(c["delays"]) for c in clients if c["delays"] for d in c["delays"]]
        out["events"] = {"per_client_per_s": round(float(np.mean([c["events"] for c in clients])) / elapsed, 1),
                         "missed_frames": sum(c["missed"] for c in clients),
                         "dropped": sum(c["closed"] is not None for c in clients),
                         "delay_p99_ms": round(float(np.percentile(delays, 99)) * 1e3, 1) if delays else None}
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [("| upload clients | socket clients | requests/s | p50 ms | p99 ms | non-200 | frames/s processed "
              "| camera frames dropped | events/s per client | frames missed | sockets dropped | event delay p99 ms |"),
             "|" + "---|" * 12]
    for row in rows:
        rec, ev, server = row.get("recognize") or {}, row.get("events") or {}, row["server"]
        lat = rec.get("latency") or {}
        non_ok = sum(n for status, n in rec.get("statuses", {}).items() if int(status) != 200)
        lines.append(f"| {row['uploaders']} | {row['listeners']} | {rec.get('requests_per_s', '-')} "
                     f"| {_ms(lat.get('p50_ms'))} | {_ms(lat.get('p99_ms'))} | {non_ok if rec else '-'} "
                     f"| {server.get('frames_total', 0) / row['seconds']:.1f} "
                     f"| {server.get('dropped_frames_total', 0):g} "
                     f"| {ev.get('per_client_per_s', '-')} | {ev.get('missed_frames', '-')} "
                     f"| {ev.get('dropped', '-')} | {ev.get('delay_p99_ms', '-')} |")
    return "\n".join(lines)


def main() -> int:
    args = parse()
    seconds = 2.0 if args.quick else args.seconds
    plan = [(n, 0) for n in args.uploaders] + [(0, m) for m in args.listeners] + [(16, 8)]
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        body = write_clip(clip)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-c", "import sys; from fer_edge.cli import main; sys.exit(main())",
                                   "serve", "--source", str(clip), "--loop", "--port", str(port), "--rate", "0",
                                   "--model", args.model], cwd=REPO)
        try:
            asyncio.run(wait_healthy(url, server))
            rows = [asyncio.run(phase(url, body, n, m, seconds)) for n, m in plan]
        finally:
            server.terminate()
            server.wait(timeout=30)
    report = {"command": " ".join(sys.argv), "seconds_per_phase": seconds, "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "note": args.note, "phases": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(rows))
    print(f"\nload average at the end: {os.getloadavg()}; report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
