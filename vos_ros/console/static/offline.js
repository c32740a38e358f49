// Offline page: upload, first-frame targets, run with progress, results.
"use strict";

const message = document.getElementById("offline-message");
const addButton = document.getElementById("add-target");
const runButton = document.getElementById("run");
const firstFrame = document.getElementById("first-frame");
const sketch = new Sketch(document.getElementById("sketch"), () => {
  addButton.disabled = sketch.isEmpty();
});
bindTools(document.getElementById("tools"), sketch);

let job = null;
const targets = [];

document.getElementById("upload-button").addEventListener("click", async () => {
  const file = document.getElementById("upload-file").files[0];
  if (!file) {
    showMessage(message, "choose a file first", true);
    return;
  }
  showMessage(message, `uploading ${file.name} (${(file.size / 1e6).toFixed(1)} MB)…`);
  document.getElementById("results").hidden = true;
  document.getElementById("targets-step").hidden = true;
  try {
    const response = await fetch("/api/offline/upload", {
      method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" },
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${response.status}: ${data.detail || response.statusText}`);
    job = data;
  } catch (error) {
    showMessage(message, `upload refused: ${error.message}`, true);
    return;
  }
  targets.length = 0;
  renderTargets();
  const notes = job.notes.length ? ` Notes: ${job.notes.join("; ")}.` : "";
  document.getElementById("job-info").textContent =
    `${job.kind}: ${job.frames} frames, ${job.width}x${job.height}, ` +
    `${job.has_ground_truth ? "with ground truth (the evaluator will score it)" : "no ground truth"}.${notes}`;
  firstFrame.onload = () => sketch.setSize(job.width, job.height);
  firstFrame.src = `/api/offline/${job.id}/first.jpg`;
  document.getElementById("targets-step").hidden = false;
  showMessage(message, "uploaded: draw the targets on the first frame, add each, then run");
});

document.getElementById("clear-drawing").addEventListener("click", () => sketch.clear());

addButton.addEventListener("click", () => {
  const target = sketch.target();
  if (!target) return;
  target.class_label = document.getElementById("class-label").value;
  targets.push(target);
  sketch.clear();
  renderTargets();
});

function renderTargets() {
  const list = document.getElementById("offline-targets");
  list.innerHTML = targets.map((t, i) =>
    `<li>${t.kind} <b>${escapeHtml(t.class_label || "object")}</b> <button data-i="${i}">Remove</button></li>`).join("");
  for (const button of list.querySelectorAll("button")) {
    button.addEventListener("click", () => {
      targets.splice(Number(button.dataset.i), 1);
      renderTargets();
    });
  }
  runButton.disabled = targets.length === 0;
}

runButton.addEventListener("click", async () => {
  runButton.disabled = true;
  document.getElementById("results").hidden = true;
  try {
    job = await api("POST", `/api/offline/${job.id}/run`, { targets });
    showMessage(message, "running…");
    watch();
  } catch (error) {
    showMessage(message, error.message, true);
    runButton.disabled = false;
  }
});

async function watch() {
  try {
    job = await api("GET", `/api/offline/${job.id}`);
  } catch (error) {
    showMessage(message, error.message, true);
    return;
  }
  const { done, total } = job.progress;
  const bar = document.getElementById("progress");
  bar.max = Math.max(total, 1);
  bar.value = done;
  document.getElementById("progress-text").textContent = `${done} / ${total} frames`;
  if (job.state === "running") {
    setTimeout(watch, 400);
    return;
  }
  runButton.disabled = false;
  if (job.state === "failed") {
    showMessage(message, job.message, true);
    return;
  }
  showResults();
}

function showResults() {
  const base = `/api/offline/${job.id}/files`;
  const bust = `?v=${Date.now()}`;
  document.getElementById("overlay-video").src = `${base}/overlay.webm${bust}`;
  document.getElementById("trajectory").src = `${base}/trajectory.png${bust}`;
  document.getElementById("download-masks").href = `${base}/masks.zip`;
  document.getElementById("download-report").href = `${base}/report.json`;
  document.getElementById("open-report").href = `${base}/report.html`;
  const s = job.summary;
  const parts = [`${s.frames} frames at ${Number(s.fps).toFixed(1)} frames/s`];
  if (s["J&F-Mean"] !== null && s["J&F-Mean"] !== undefined) parts.push(`DAVIS J&F ${Number(s["J&F-Mean"]).toFixed(3)}`);
  if (s.mean_class_iou !== null && s.mean_class_iou !== undefined) parts.push(`mean class IoU ${Number(s.mean_class_iou).toFixed(3)}`);
  document.getElementById("report-summary").textContent = parts.join(" · ");
  document.getElementById("results").hidden = false;
  showMessage(message, "done");
}
