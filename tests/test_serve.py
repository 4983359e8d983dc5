"""`fer-edge serve` on a real loopback port: events over the socket, real uploads, limits, auth, shutdown.

Everything runs for real: the default embedded model, a video written here (skimage's astronaut
panned), aiohttp clients (and one raw TCP client that stops reading), a SIGTERM to a real
``fer-edge serve`` process, and headless Debian chromium loading the page. Set
``FER_EDGE_SERVE_SCREENSHOT=path.png`` to keep the browser's screenshot (the README's image).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
from skimage import data

from fer_edge.cli import main
from fer_edge.errors import InvalidInputError
from fer_edge.recognizer import RESULT_SCHEMA, FrameResult, Recognizer
from fer_edge.serve import ServeConfig, Server
from fer_edge.serve.camera import FrameQueue

FPS = 15
LIMITS = {"max_body": 512 * 1024, "max_pixels": 1000 * 1000, "rate": 0.0}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="module")
def video(astronaut: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of the astronaut panning right and back, 512x512 at 15 frames/s: it loops without a jump."""
    path = tmp_path_factory.mktemp("serve") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (512, 512))
    for i in range(2 * FPS):
        writer.write(np.roll(astronaut, 3 * min(i, 2 * FPS - i), axis=1))
    writer.release()
    return path


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer()


@pytest.fixture(scope="module")
def server(recognizer: Recognizer, video: Path) -> Iterator[Server]:
    live = Server(recognizer, ServeConfig(port=0, **LIMITS), source=video, loop=True).start()  # type: ignore[arg-type]
    yield live
    live.stop()


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


async def fetch(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as response:
        body = await response.read()
        is_json = response.content_type == "application/json"
        return response.status, json.loads(body) if is_json else body.decode()


def call(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    return asyncio.run(fetch(method, url, **kwargs))


async def read_events(url: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The next ``count`` JSON events of the socket at ``url`` (JPEG frames, with ``?video=1``, are skipped)."""
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while len(events) < count:
            message = await ws.receive(timeout=timeout)
            assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), message.type
            if message.type == aiohttp.WSMsgType.TEXT:
                events.append(json.loads(message.data))
    return events


def test_events_follow_the_video_in_the_result_schema(server: Server, recognizer: Recognizer) -> None:
    events = asyncio.run(read_events(f"{server.url}/v1/events", 12))
    assert {e["schema"] for e in events} == {RESULT_SCHEMA}
    indices = [e["frame_index"] for e in events]
    stamps = [e["timestamp"] for e in events]
    assert indices == list(range(indices[0], indices[0] + 12)) and stamps == sorted(stamps)
    faces = [face for e in events for face in e["faces"]]
    assert len(faces) == 12 and len({face["track_id"] for face in faces}) == 1
    for face in faces:
        assert len(face["box"]) == 4 and set(face["probabilities"]) == set(recognizer.classes)
        assert face["smoothed_label"] in recognizer.classes


def test_recognize_takes_jpeg_png_and_multipart(server: Server, recognizer: Recognizer, astronaut: np.ndarray) -> None:
    url = f"{server.url}/v1/recognize"
    sent = jpeg(astronaut)
    decoded = cv2.imdecode(np.frombuffer(sent, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    expected = FrameResult(recognizer(decoded)).to_dict()
    assert call("POST", url, data=sent, headers={"Content-Type": "image/jpeg"}) == (200, expected)
    png = cv2.imencode(".png", astronaut)[1].tobytes()
    progressive = cv2.imencode(".jpg", astronaut, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()  # SOF2 header
    for body, content_type in ((png, "image/png"), (progressive, "image/jpeg"), (png, "application/octet-stream")):
        status, doc = call("POST", url, data=body, headers={"Content-Type": content_type})
        assert status == 200 and doc["schema"] == RESULT_SCHEMA and len(doc["faces"]) == 1
    form = aiohttp.FormData()
    form.add_field("image", sent, filename="astronaut.jpg", content_type="image/jpeg")
    assert call("POST", url, data=form) == (200, expected)


def _bad_request(name: str, good: bytes) -> dict[str, Any]:
    """The arguments of one bad POST /v1/recognize, by name."""
    def raw(body: bytes, content_type: str) -> dict[str, Any]:
        return {"data": body, "headers": {"Content-Type": content_type}}

    if name == "no_image_part":
        form = aiohttp.FormData()
        form.add_field("photo", good, filename="a.jpg", content_type="image/jpeg")
        return {"data": form}
    many_pixels = cv2.imencode(".png", np.zeros((1000, 1200), np.uint8))[1].tobytes()  # a few kB, 1.2 Mpixel
    return {"empty": raw(b"", "image/jpeg"), "text_as_jpeg": raw(b"hello, not an image", "image/jpeg"),
            "truncated": raw(good[:len(good) // 3], "image/jpeg"), "wrong_type": raw(good, "text/plain"),
            "gif_type": raw(good, "image/gif"), "too_large": raw(b"\xff\xd8\xff" + bytes(600 * 1024), "image/jpeg"),
            "many_pixels": raw(many_pixels, "image/png")}[name]


@pytest.mark.parametrize(("name", "status", "code"), [
    ("empty", 400, "empty_body"), ("text_as_jpeg", 400, "not_an_image"), ("truncated", 400, "corrupt_image"),
    ("wrong_type", 415, "unsupported_content_type"), ("gif_type", 415, "unsupported_content_type"),
    ("too_large", 413, "too_large"), ("many_pixels", 413, "too_many_pixels"), ("no_image_part", 400, "no_image_part"),
])
def test_bad_bodies_get_4xx_json(server: Server, astronaut: np.ndarray, name: str, status: int, code: str) -> None:
    good = jpeg(astronaut)
    answer, doc = call("POST", f"{server.url}/v1/recognize", **_bad_request(name, good))
    assert (answer, doc["error"]) == (status, code) and doc["message"]
    assert call("POST", f"{server.url}/v1/recognize", data=good, headers={"Content-Type": "image/jpeg"})[0] == 200


def test_unknown_paths_and_methods_answer_json(server: Server) -> None:
    assert call("GET", f"{server.url}/v2/nothing")[0] == 404
    status, doc = call("GET", f"{server.url}/v1/recognize")
    assert status == 405 and doc["error"] == "method_not_allowed"


def test_info_health_and_metrics(server: Server, recognizer: Recognizer) -> None:
    assert call("GET", f"{server.url}/v1/info") == (200, json.loads(json.dumps(recognizer.info())))
    assert call("GET", f"{server.url}/healthz") == (200, {"status": "ok", "source": {"state": "running",
                                                                                      "error": None}})
    asyncio.run(read_events(f"{server.url}/v1/events", 2))
    status, text = call("GET", f"{server.url}/metrics")
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if not line.startswith("#")}
    assert status == 200 and values["fer_edge_frames_total"] >= 2 and values["fer_edge_faces_total"] >= 2
    for stage in ("detect", "infer", "postprocess"):
        assert values[f'fer_edge_stage_seconds_count{{stage="{stage}"}}'] >= 2
    assert {"fer_edge_dropped_frames_total", "fer_edge_queue_depth", "fer_edge_socket_clients"} <= set(values)


def test_frame_queue_drops_the_oldest_and_counts() -> None:
    dropped: list[int] = []
    queue = FrameQueue(2, lambda: dropped.append(1))
    for i in range(5):
        queue.put(np.full((1, 1, 3), i, np.uint8))
    queue.close()
    assert [int(frame[0, 0, 0]) for frame in queue] == [3, 4] and len(dropped) == 3


def _stalled_client(url: str) -> socket.socket:
    """A real WebSocket client that completes the handshake and then never reads."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /v1/events?video=1 HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    return sock


def test_a_stalled_client_does_not_slow_another_and_is_dropped(server: Server) -> None:
    before = server.metrics.count("dropped_clients_total")
    stalled = _stalled_client(server.url)
    try:
        start = time.monotonic()
        events = asyncio.run(read_events(f"{server.url}/v1/events?video=1", 4 * FPS))
        elapsed = time.monotonic() - start
        deadline = time.monotonic() + 10
        while server.metrics.count("dropped_clients_total") == before and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stalled.close()
    indices = [e["frame_index"] for e in events]
    assert indices == list(range(indices[0], indices[0] + len(indices)))  # none skipped for this client
    assert elapsed < 4 * 1.5  # four seconds of video at (close to) the video's own pace
    assert server.metrics.count("dropped_clients_total") == before + 1


def test_rate_limit_and_no_source(recognizer: Recognizer) -> None:
    server = Server(recognizer, ServeConfig(port=0, rate=1.0, burst=3)).start()
    try:
        answers = [call("GET", f"{server.url}/v1/info")[0] for _ in range(5)]
        assert answers[:3] == [200, 200, 200] and answers[-1] == 429
        assert call("GET", f"{server.url}/healthz") == (200, {"status": "ok", "source": None})
    finally:
        server.stop()


def test_a_broken_source_is_reported_and_requests_still_work(recognizer: Recognizer, astronaut: np.ndarray,
                                                             tmp_path: Path) -> None:
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video at all")
    server = Server(recognizer, ServeConfig(port=0), source=broken).start()
    try:
        deadline = time.monotonic() + 10
        while (health := call("GET", f"{server.url}/healthz"))[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, doc = health
        assert status == 503 and doc["source"]["state"] == "failed" and "broken.avi" in doc["source"]["error"]
        status, doc = call("GET", f"{server.url}/v1/events")
        assert (status, doc["error"]) == (410, "source_ended") and "broken.avi" in doc["message"]
        assert call("POST", f"{server.url}/v1/recognize", data=jpeg(astronaut),
                    headers={"Content-Type": "image/jpeg"})[0] == 200
    finally:
        server.stop()


def test_the_end_of_a_video_closes_the_sockets(recognizer: Recognizer, video: Path) -> None:
    server = Server(recognizer, ServeConfig(port=0), source=video).start()  # no loop: it plays once

    async def listen() -> tuple[list[int], Any]:
        indices = []
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{server.url}/v1/events") as ws:
            async for message in ws:
                indices.append(json.loads(message.data)["frame_index"])
            return indices, (ws.close_code, message.extra if message.type == aiohttp.WSMsgType.CLOSE else None)

    try:
        indices, (code, reason) = asyncio.run(listen())
        assert indices[-1] == 2 * FPS - 1 and code == aiohttp.WSCloseCode.OK, (indices, code, reason)
        status, doc = call("GET", f"{server.url}/v1/events")
        assert (status, doc["error"]) == (410, "source_ended")
        assert call("GET", f"{server.url}/healthz")[1]["source"] == {"state": "ended", "error": None}
    finally:
        server.stop()


@pytest.mark.parametrize(("argv", "message"), [
    (["--host", "0.0.0.0"], "--token"),
    (["--source", "missing.mp4"], "does not exist"),
    (["--source", __file__], "not a video"),
    (["--detect-every", "0"], "detect_every"),
    (["--max-pixels", "0"], "max_pixels"),
])
def test_the_command_refuses_bad_settings_before_loading(argv: list[str], message: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FER_EDGE_TOKEN", raising=False)
    assert main(["serve", "--port", "0", *argv]) == 1 and message in capsys.readouterr().err


def test_without_the_serve_extra_the_command_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if aiohttp were not installed
    for name in ("fer_edge.serve.server", "fer_edge.serve.app", "fer_edge.serve.hub"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert main(["serve", "--port", "0"]) == 1 and 'pip install "fer_edge[serve]"' in capsys.readouterr().err


def test_token_required_off_loopback(recognizer: Recognizer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FER_EDGE_TOKEN", raising=False)
    with pytest.raises(InvalidInputError, match="--token"):
        ServeConfig(host="0.0.0.0")
    server = Server(recognizer, ServeConfig(host="0.0.0.0", port=0, token="s3cret")).start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        status, doc = call("GET", f"{url}/v1/info")
        assert (status, doc["error"]) == (401, "unauthorized")
        assert call("GET", f"{url}/v1/info", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert call("GET", f"{url}/v1/info", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert call("GET", f"{url}/v1/events")[0] == 401
        assert call("GET", f"{url}/v1/events?token=s3cret")[0] == 404  # authorised; this server has no source
        assert call("GET", f"{url}/healthz")[0] == 200 and call("GET", f"{url}/")[0] == 200
        status, doc = call("GET", f"{url}/v1/info", headers={"Authorization": "Bearer s3cret",
                                                              "Origin": "http://evil.example"})
        assert (status, doc["error"]) == (403, "cross_origin")
    finally:
        server.stop()


def test_stop_tells_clients_and_leaves_no_thread(recognizer: Recognizer, video: Path) -> None:
    threads = set(threading.enumerate())
    server = Server(recognizer, ServeConfig(port=0), source=video, loop=True).start()

    async def listen() -> Any:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{server.url}/v1/events") as ws:
            await ws.receive_str(timeout=20)
            threading.Thread(target=server.stop).start()
            while True:
                message = await ws.receive(timeout=20)
                if message.type != aiohttp.WSMsgType.TEXT:
                    return message

    closed = asyncio.run(listen())
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == aiohttp.WSCloseCode.GOING_AWAY
    deadline = time.monotonic() + 10
    while set(threading.enumerate()) - threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(threading.enumerate()) - threads == set()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if call("GET", f"{url}/healthz")[0] == 200:
                return
        except aiohttp.ClientConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"fer-edge serve did not become healthy: {process.communicate()[1].decode()[-2000:]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_stops_cleanly_on_signals(video: Path, sig: signal.Signals) -> None:
    port = _free_port()
    command = [sys.executable, "-c", "import sys; from fer_edge.cli import main; sys.exit(main())",
               "serve", "--source", str(video), "--loop", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", process)
        assert len(asyncio.run(read_events(f"http://127.0.0.1:{port}/v1/events", 3))) == 3
        process.send_signal(sig)
        assert process.wait(timeout=20) == 0, process.communicate()[1].decode()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _cdp(ws: Any, ids: Iterator[int], method: str, **params: Any) -> dict[str, Any]:
    """One Chrome DevTools Protocol call: send, then skip events until its answer arrives."""
    call_id = next(ids)
    await ws.send_json({"id": call_id, "method": method, "params": params})
    while True:
        message = await ws.receive_json(timeout=30)
        if message.get("id") == call_id:
            return dict(message.get("result", {}))


OVERLAY = """JSON.stringify({
  faces: [...document.querySelectorAll('#overlay .face')].map((f) => ({
    label: f.dataset.label, text: f.querySelector('.label').textContent,
    bars: f.querySelectorAll('.bar').length, width: f.getBoundingClientRect().width})),
  natural: document.getElementById('video').naturalWidth,
  fps: document.getElementById('fps').textContent, status: document.getElementById('status').textContent})"""


async def _page_in_browser(debug_port: int, url: str) -> tuple[dict[str, Any], bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{debug_port}/json/list") as response:
            target = next(t for t in await response.json() if t["type"] == "page")
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 10**6))
            await _cdp(ws, ids, "Page.navigate", url=url)
            deadline = time.monotonic() + 30
            state: dict[str, Any] = {}
            while time.monotonic() < deadline:
                result = await _cdp(ws, ids, "Runtime.evaluate", expression=OVERLAY)
                value = result.get("result", {}).get("value")  # None while the page is still loading
                state = json.loads(value) if value else {"evaluated": result}
                # naturalWidth reads 0 while the <img> decodes its next frame, so poll until a decoded one shows
                if state.get("faces") and state["fps"][0].isdigit() and state["natural"]:
                    break
                await asyncio.sleep(0.25)
            shot = await _cdp(ws, ids, "Page.captureScreenshot", format="png")
    return state, base64.b64decode(shot["data"])


def test_page_in_headless_chromium_shows_a_labelled_face(server: Server, recognizer: Recognizer,
                                                         tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does this)")
    process = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--remote-debugging-port=0", f"--user-data-dir={tmp_path / 'profile'}",
                                "--window-size=600,560", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = tmp_path / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_file.is_file(), f"{browser} started but opened no debugging port within 30 s"
        state, png = asyncio.run(_page_in_browser(int(port_file.read_text().split()[0]), f"{server.url}/"))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    assert state["status"] == "live" and state["natural"] == 512, state
    assert len(state["faces"]) == 1, state
    face = state["faces"][0]
    assert face["label"] in recognizer.classes and face["text"].startswith(face["label"]) and "#" in face["text"]
    assert face["bars"] == len(recognizer.classes) and face["width"] > 20
    assert png.startswith(b"\x89PNG") and cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) is not None
    if os.environ.get("FER_EDGE_SERVE_SCREENSHOT"):
        Path(os.environ["FER_EDGE_SERVE_SCREENSHOT"]).write_bytes(png)
