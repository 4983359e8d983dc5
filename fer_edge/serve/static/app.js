"use strict";
// fer-edge serve live page. One WebSocket (/v1/events?video=1) carries each frame as a binary
// JPEG followed by its fer_edge.result JSON; the overlay is drawn as DOM elements over the
// image, so boxes stay sharp at any size and tests can read labels from the DOM.
const params = new URLSearchParams(location.search);
const video = document.getElementById("video");
const overlay = document.getElementById("overlay");
const statusText = document.getElementById("status");
const fpsText = document.getElementById("fps");
const stamps = [];
let latest = null;

function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function percent(value, total) {
  return `${(100 * value / total).toFixed(2)}%`;
}

function faceBox(face, width, height) {
  const [x, y, w, h] = face.box;
  const box = element("div", "face");
  Object.assign(box.style, { left: percent(x, width), top: percent(y, height),
                             width: percent(w, width), height: percent(h, height) });
  const probs = face.smoothed || face.probabilities;
  const label = face.smoothed_label || face.label;
  const track = face.track_id === undefined ? "" : ` #${face.track_id}`;
  box.dataset.label = label;
  const score = label in probs ? ` ${probs[label].toFixed(2)}` : "";  // "uncertain" has no probability
  box.appendChild(element("div", "label", `${label}${score}${track}`));
  const bars = element("div", "bars");
  for (const [name, p] of Object.entries(probs)) {
    const bar = element("div", "bar");
    const fill = element("span", "fill");
    fill.style.width = percent(p, 1);
    bar.append(fill, element("span", "name", `${name} ${p.toFixed(2)}`));
    bars.appendChild(bar);
  }
  box.appendChild(bars);
  return box;
}

function render() {
  if (!latest || !video.naturalWidth) return;
  const boxes = latest.faces.map((face) => faceBox(face, video.naturalWidth, video.naturalHeight));
  overlay.replaceChildren(...boxes);
  overlay.dataset.frame = latest.frame_index;
}

function onResult(result) {
  latest = result;
  stamps.push(result.timestamp);
  while (stamps.length > 2 && stamps[stamps.length - 1] - stamps[0] > 2) stamps.shift();
  const span = stamps[stamps.length - 1] - stamps[0];
  if (span > 0) fpsText.textContent = `${((stamps.length - 1) / span).toFixed(1)} frames/s`;
  render();
}

function onFrame(blob) {
  const previous = video.src;
  video.src = URL.createObjectURL(blob);
  if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);  // replaced, so no longer needed
}

function connect() {
  const url = new URL("/v1/events", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("video", "1");
  if (params.get("token")) url.searchParams.set("token", params.get("token"));
  const ws = new WebSocket(url);
  ws.binaryType = "blob";
  ws.onopen = () => { statusText.textContent = "live"; };
  ws.onmessage = (event) => (typeof event.data === "string" ? onResult(JSON.parse(event.data)) : onFrame(event.data));
  ws.onclose = (event) => {
    statusText.textContent = `disconnected (${event.code}${event.reason ? ": " + event.reason : ""}), retrying`;
    setTimeout(connect, 2000);
  };
}

video.onload = render;
connect();
