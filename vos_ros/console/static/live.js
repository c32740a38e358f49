// Live page: newest-frame-only WebSocket view, pause and draw targets, node status and targets.
"use strict";

const view = document.getElementById("view");
const viewCtx = view.getContext("2d");
const message = document.getElementById("message");
const pauseButton = document.getElementById("pause");
const addButton = document.getElementById("add-target");
const sketch = new Sketch(document.getElementById("sketch"), () => {
  addButton.disabled = sketch.isEmpty();
});
bindTools(document.getElementById("tools"), sketch);

// Measured by the page, read by the latency benchmark too.
const stats = { latencies: [], drawn: 0, drawTimes: [], exact: 0 };
window.consoleStats = stats;

let socket = null;
let waiting = false;     // a "next" is outstanding
let paused = false;
let shown = null;        // header of the frame on screen

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/live`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => requestNext();
  socket.onmessage = (event) => {
    if (typeof event.data === "string") return;  // {"idle": true}: the request stays open
    waiting = false;
    showFrame(event.data);
  };
  socket.onclose = () => {
    waiting = false;
    document.getElementById("view-info").textContent = "disconnected; reconnecting";
    setTimeout(connect, 1000);
  };
}

function requestNext() {
  if (paused || waiting || !socket || socket.readyState !== WebSocket.OPEN) return;
  waiting = true;
  socket.send("next");
}

async function showFrame(buffer) {
  const length = new DataView(buffer).getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const bitmap = await createImageBitmap(new Blob([new Uint8Array(buffer, 4 + length)],
    { type: "image/jpeg" }));
  if (paused) { bitmap.close(); return; }
  if (view.width !== header.width || view.height !== header.height) {
    view.width = header.width;
    view.height = header.height;
  }
  sketch.setSize(header.width, header.height);
  viewCtx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const now = Date.now();
  // stamp -> display where the stamp is wall-clock time (a live camera); else console receipt
  const fromStamp = Math.abs(now - header.stamp_ms) < 60000;
  stats.latencies.push(now - (fromStamp ? header.stamp_ms : header.received_ms));
  if (stats.latencies.length > 3000) stats.latencies.shift();
  stats.latencySource = fromStamp ? "stamp → display" : "console receipt → display";
  stats.drawn += 1;
  stats.drawTimes.push(performance.now());
  if (header.masks_exact) stats.exact += 1;
  shown = header;
  if (pauseAsked && (header.masks_exact || performance.now() - pauseAsked > 500)) {
    finishPause();
    return;
  }
  requestNext();
}

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

setInterval(() => {
  const now = performance.now();
  const recent = stats.drawTimes.filter((t) => now - t < 2000);
  stats.drawTimes = recent;
  const fps = recent.length > 1 ? (recent.length - 1) / ((recent[recent.length - 1] - recent[0]) / 1000) : 0;
  document.getElementById("view-fps").textContent = `${fps.toFixed(1)} fps`;
  const latency = median(stats.latencies.slice(-60));
  document.getElementById("view-latency").textContent =
    latency === null ? "–" : `${latency.toFixed(0)} ms (${stats.latencySource})`;
  if (shown) {
    document.getElementById("view-info").textContent =
      `${shown.width}x${shown.height}, stamp ${shown.stamp.sec}.${String(shown.stamp.nanosec).padStart(9, "0")}`;
  }
}, 500);

// Pausing freezes the next frame the node drew masks for (it surely has that frame in its
// buffer; best-effort transport may lose a frame on the way to the node but not to the console),
// or, when the node draws none, the frame on screen after half a second.
let pauseAsked = 0;

function pause() {
  if (paused || pauseAsked) return;
  if (!shown) {
    showMessage(message, "no frame to draw on yet", true);
    return;
  }
  pauseAsked = performance.now();
  showMessage(message, "pausing…");
  if (shown.masks_exact) finishPause();
}

async function finishPause() {
  pauseAsked = 0;
  paused = true;
  pauseButton.textContent = "Resume";
  document.getElementById("paused-badge").hidden = false;
  const stamp = `${shown.stamp.sec}.${String(shown.stamp.nanosec).padStart(9, "0")}`;
  try {
    const answer = await api("POST", "/api/live/pause", { stamp: shown.stamp });
    showMessage(message, `paused on stamp ${stamp}. ${answer.note}`);
  } catch (error) {
    showMessage(message, error.message, true);
  }
}

async function resume() {
  paused = false;
  pauseAsked = 0;
  pauseButton.textContent = "Pause";
  document.getElementById("paused-badge").hidden = true;
  sketch.clear();
  api("POST", "/api/live/resume").catch(() => {});
  requestNext();
}

pauseButton.addEventListener("click", () => (paused ? resume() : pause()));
// A touch on the moving view pauses it; drawing starts on the paused frame (the target belongs
// to the frame on screen).
sketch.beforeDraw = () => {
  if (paused) return true;
  pause();
  return false;
};
document.getElementById("clear-drawing").addEventListener("click", () => sketch.clear());

addButton.addEventListener("click", async () => {
  const target = sketch.target();
  if (!target || !shown) return;
  const body = { stamp: shown.stamp, class_label: document.getElementById("class-label").value };
  const url = { box: "/api/live/box", points: "/api/live/points", mask: "/api/live/mask" }[target.kind];
  Object.assign(body, target);
  delete body.kind;
  addButton.disabled = true;
  showMessage(message, "sending…");
  try {
    const answer = await api("POST", url, body);
    showMessage(message, `${answer.message}${answer.note ? ` (${answer.note})` : ""}`);
    resume();
  } catch (error) {
    showMessage(message, error.message, true);
    addButton.disabled = false;
  }
});

document.getElementById("reset-targets").addEventListener("click", async () => {
  try {
    showMessage(message, (await api("POST", "/api/live/reset")).message);
  } catch (error) {
    showMessage(message, error.message, true);
  }
});

async function removeTarget(id) {
  try {
    showMessage(message, (await api("POST", "/api/live/remove", { ids: [id] })).message);
  } catch (error) {
    showMessage(message, error.message, true);
  }
}

async function renameTarget(id, current) {
  const label = prompt(`New name for target ${id}`, current);
  if (label === null) return;
  try {
    const answer = await api("POST", "/api/live/rename", { id, label });
    showMessage(message, `${answer.message} (${answer.note})`);
  } catch (error) {
    showMessage(message, error.message, true);
  }
}

const nodeSelect = document.getElementById("node-select");
nodeSelect.addEventListener("change", async () => {
  if (!nodeSelect.value) return;
  try {
    await api("POST", "/api/live/select", { node: nodeSelect.value });
    showMessage(message, `showing ${nodeSelect.value}`);
  } catch (error) {
    showMessage(message, error.message, true);
  }
});

const LEVELS = { 0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE" };

function renderState(state) {
  const options = state.nodes;
  const nodesKey = `nodes:${options.join(",")}`;
  if (nodeSelect.dataset.key !== nodesKey) {
    nodeSelect.dataset.key = nodesKey;
    nodeSelect.innerHTML = options.length
      ? options.map((n) => `<option value="${escapeHtml(n)}">${escapeHtml(n)}</option>`).join("")
      : '<option value="">(no vos node found)</option>';
  }
  if (state.selected) nodeSelect.value = state.selected;
  const diag = state.diagnostics;
  const status = document.getElementById("diag-status");
  status.textContent = diag.level >= 0 ? `${LEVELS[diag.level] || diag.level}: ${diag.message}` : diag.message;
  status.className = `status level${diag.level}`;
  const rows = [["camera", `${state.camera_topic || "–"} (${state.camera_hz} Hz here)`]];
  for (const [key, value] of Object.entries(diag.values)) rows.push([key.replace(/_/g, " "), value || "–"]);
  document.getElementById("diag").innerHTML = rows
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join("");
  const body = document.querySelector("#targets tbody");
  const key = JSON.stringify(state.targets.map((t) => [t.id, t.class, t.renamed, t.visible]));
  if (body.dataset.key !== key) renderTargets(body, state.targets, key);
  for (const t of state.targets) {  // scores change every frame: updated in place
    const cell = body.querySelector(`tr[data-id="${t.id}"] td:nth-child(3)`);
    if (cell) cell.textContent = t.score.toFixed(2);
  }
  const buffer = state.buffer;
  document.getElementById("buffer-hint").textContent = buffer.size
    ? `The node keeps its last ${buffer.size} frames${buffer.seconds ? ` (~${buffer.seconds.toFixed(1)} s)` : ""}: a paused frame must be used within that time.`
    : "";
}

// Rebuilt only when the targets change, so a button is not replaced under the pointer.
function renderTargets(body, targets, key) {
  body.dataset.key = key;
  body.innerHTML = targets.map((t) => `<tr data-id="${t.id}">
      <td>${t.id}</td><td>${escapeHtml(t.class)}${t.renamed ? ' <span class="hint">(here)</span>' : ""}</td>
      <td>${t.score.toFixed(2)}</td><td>${t.visible ? "yes" : "no"}</td>
      <td><button class="rename">Rename</button> <button class="remove">Remove</button></td></tr>`).join("");
  for (const row of body.querySelectorAll("tr")) {
    const id = Number(row.dataset.id);
    const target = targets.find((t) => t.id === id);
    row.querySelector(".remove").addEventListener("click", () => removeTarget(id));
    row.querySelector(".rename").addEventListener("click", () => renameTarget(id, target.class));
  }
}

async function poll() {
  try {
    renderState(await api("GET", "/api/live/state"));
  } catch (error) {
    document.getElementById("diag-status").textContent = `console: ${error.message}`;
  }
  setTimeout(poll, 500);
}

connect();
poll();
