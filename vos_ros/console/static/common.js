// Shared by the live and offline pages: JSON requests and the drawing tools (pointer events,
// so mouse, pen and touch work alike). No framework, no build step.
"use strict";

async function api(method, url, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    let detail = data && data.detail !== undefined ? data.detail : response.statusText;
    if (Array.isArray(detail)) {  // a validation error: name the fields
      detail = detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    }
    throw new Error(`${response.status}: ${detail}`);
  }
  return data;
}

function showMessage(element, text, isError) {
  element.textContent = text;
  element.className = isError ? "message error" : "message";
}

// Drawing on a canvas that lies over an image of width x height pixels. Coordinates are kept in
// image pixels; the mask of the paint and outline tools is drawn at the image's resolution.
class Sketch {
  constructor(canvas, onChange) {
    this.canvas = canvas;
    this.onChange = onChange || (() => {});
    this.tool = "box";
    this.brush = 12;
    this.width = 0;
    this.height = 0;
    this._forget();
    canvas.addEventListener("pointerdown", (e) => this._down(e));
    canvas.addEventListener("pointermove", (e) => this._move(e));
    canvas.addEventListener("pointerup", (e) => this._up(e));
    canvas.addEventListener("pointercancel", (e) => this._up(e));
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  }

  setSize(width, height) {
    if (width === this.width && height === this.height) return;
    this.width = width;
    this.height = height;
    this.canvas.width = width;
    this.canvas.height = height;
    this.clear();
  }

  setTool(tool) {
    const kind = (t) => ({ box: "box", positive: "points", negative: "points" }[t] || "mask");
    const changed = kind(tool) !== kind(this.tool);
    this.tool = tool;
    if (changed) this.clear();  // positive and negative points (or paint and outline) combine
  }

  _forget() {
    this.box = null;
    this.points = [];
    this.strokes = [];  // {kind: "paint"|"outline", path: [[x, y], ...]}
    this.active = null;
  }

  clear() {
    this._forget();
    this.redraw();
    this.onChange();
  }

  isEmpty() {
    return !this.box && this.points.length === 0 && this.strokes.length === 0;
  }

  _pos(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * this.width;
    const y = ((event.clientY - rect.top) / rect.height) * this.height;
    return [Math.max(0, Math.min(this.width - 1, x)), Math.max(0, Math.min(this.height - 1, y))];
  }

  _down(event) {
    if (!this.width || (this.beforeDraw && !this.beforeDraw())) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    const [x, y] = this._pos(event);
    if (this.tool === "box") {
      this.box = null;
      this.active = { start: [x, y], end: [x, y] };
    } else if (this.tool === "positive" || this.tool === "negative") {
      // a right click (or the negative tool) marks background
      const positive = this.tool === "positive" && event.button !== 2;
      this.points.push({ x, y, positive });
      this.onChange();
    } else {
      this.active = { kind: this.tool, path: [[x, y]] };
    }
    this.redraw();
  }

  _move(event) {
    if (!this.active) return;
    const [x, y] = this._pos(event);
    if (this.tool === "box") this.active.end = [x, y];
    else this.active.path.push([x, y]);
    this.redraw();
  }

  _up(event) {
    if (!this.active) return;
    const [x, y] = this._pos(event);
    if (this.tool === "box") {
      const [x0, y0] = this.active.start;
      if (Math.abs(x - x0) >= 3 && Math.abs(y - y0) >= 3) {
        this.box = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)];
      }
    } else {
      this.active.path.push([x, y]);
      this.strokes.push(this.active);
    }
    this.active = null;
    this.redraw();
    this.onChange();
  }

  _paintMask(ctx, colour) {
    for (const stroke of this.strokes) {
      ctx.fillStyle = colour;
      ctx.strokeStyle = colour;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.beginPath();
      stroke.path.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (stroke.kind === "outline") {
        ctx.closePath();
        ctx.fill();
      } else {
        ctx.lineWidth = this.brush;
        ctx.stroke();
      }
    }
  }

  redraw() {
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const scale = Math.max(1, this.width / 640);
    this._paintMask(ctx, "rgba(0, 200, 255, 0.45)");
    if (this.active && this.tool !== "box") {
      ctx.strokeStyle = "rgba(0, 200, 255, 0.9)";
      ctx.lineWidth = this.tool === "paint" ? this.brush : 2 * scale;
      ctx.beginPath();
      this.active.path.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
    }
    const box = this.active && this.tool === "box"
      ? [...this.active.start, ...this.active.end] : this.box;
    if (box) {
      ctx.strokeStyle = "#ffd400";
      ctx.lineWidth = 2 * scale;
      ctx.setLineDash([8 * scale, 5 * scale]);
      ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
      ctx.setLineDash([]);
    }
    for (const p of this.points) {
      ctx.fillStyle = p.positive ? "#2ecc40" : "#ff4136";
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 1.5 * scale;
      ctx.beginPath();
      ctx.arc(p.x, p.y, 6 * scale, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
  }

  // What was drawn, as the server's target description (null when nothing is drawn).
  target() {
    if (this.box) return { kind: "box", box: this.box.map(Math.round) };
    if (this.points.length) {
      return { kind: "points", points: this.points.map((p) => ({ ...p })) };
    }
    if (this.strokes.length) {
      const off = document.createElement("canvas");
      off.width = this.width;
      off.height = this.height;
      this._paintMask(off.getContext("2d"), "#ffffff");
      return { kind: "mask", mask_png: off.toDataURL("image/png") };
    }
    return null;
  }
}

function bindTools(container, sketch) {
  for (const button of container.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => {
      for (const other of container.querySelectorAll("[data-tool]")) other.classList.remove("on");
      button.classList.add("on");
      sketch.setTool(button.dataset.tool);
    });
  }
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
