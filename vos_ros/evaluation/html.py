"""One self-contained HTML report: tables, plots and per-sequence overlay players.

Everything (CSS, a few lines of JavaScript, PNG plots, JPEG overlay frames) is embedded, so the
file opens from disk in any browser, without a server or network access. Each sequence gets its
trajectory plot, a strip of overlay thumbnails, and a player that animates the overlays.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from vos_ros.evaluation.davis_metrics import GLOBAL_KEYS

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.meta{font-size:12px;color:#555}.warn{background:#fff3cd;padding:8px;border:1px solid #e0c36b}
.strip{display:flex;gap:4px;overflow-x:auto;padding-bottom:4px}.strip img{height:90px}
.player img{max-width:480px;display:block}.plots img{max-width:100%;margin:6px 0}
.bad{color:#b00}
"""

_JS = """
function vosPlay(id){const p=document.getElementById(id);const fr=JSON.parse(p.dataset.frames);
const img=p.querySelector('img'),lab=p.querySelector('span'),rng=p.querySelector('input');
let i=0,t=null;function show(k){i=k;img.src=fr[k][1];lab.textContent=fr[k][0];rng.value=k;}
rng.max=fr.length-1;rng.oninput=()=>show(+rng.value);
p.querySelector('button').onclick=function(){if(t){clearInterval(t);t=null;this.textContent='play';}
else{t=setInterval(()=>show((i+1)%fr.length),200);this.textContent='pause';}};show(0);}
document.querySelectorAll('.player').forEach(p=>vosPlay(p.id));
"""


def _img_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _plot(plots: dict[str, Path], name: str, alt: str) -> str:
    path = plots.get(name)
    if path is None or not Path(path).is_file():
        return ""
    uri = _img_uri(Path(path).read_bytes(), "image/png")
    return f'<img alt="{html.escape(alt)}" src="{uri}">'


def render_html(
    report: dict[str, Any],
    plots: dict[str, Path],
    thumbnails: dict[str, list[tuple[str, bytes]]],
) -> str:
    """The report as one HTML document (string)."""
    meta = report["meta"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>vos_ros evaluation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>vos_ros evaluation report</h1>",
        "<p class='meta'>"
        + " · ".join(
            f"<b>{html.escape(k)}</b>: {_fmt(meta.get(k))}"
            for k in ("mode", "source", "model", "backend", "machine", "date", "command")
            if meta.get(k) is not None
        )
        + "</p>",
    ]
    if meta.get("partial"):
        errors = meta.get("errors") or (["interrupted"] if meta.get("interrupted") else [])
        parts.append(
            "<p class='warn'><b>Partial report.</b> "
            + html.escape("; ".join(errors) or "not every sequence finished")
            + "</p>"
        )
    g = report["davis"]["global"]
    parts.append("<h2>DAVIS J&amp;F (official protocol)</h2>")
    parts.append(_table(list(GLOBAL_KEYS), [[g.get(k) for k in GLOBAL_KEYS]]))

    parts.append("<h2>Per-class IoU</h2>")
    pixels = report["class_pixels"]
    rows = [
        [name, iou, pixels[name]["tp"], pixels[name]["fp"], pixels[name]["fn"]]
        for name, iou in sorted(report["per_class_iou"].items())
    ]
    rows.append(["(mean over classes)", report.get("mean_class_iou"), None, None, None])
    if "background" in pixels:
        b = pixels["background"]
        rows.append(["background", report.get("background_iou"), b["tp"], b["fp"], b["fn"]])
    parts.append(_table(["class", "IoU", "TP px", "FP px", "FN px"], rows))
    parts.append("<div class='plots'>" + _plot(plots, "class_iou", "per-class IoU") + "</div>")

    parts.append("<h2>Per sequence and object</h2>")
    inst = report.get("per_instance_iou", {})
    seq_rows = [
        [
            name,
            r.get("class"),
            r["J&F-Mean"],
            r["J-Mean"],
            r["F-Mean"],
            r["J-Recall"],
            r["J-Decay"],
            (inst.get(name) or {}).get("iou"),
            r["frames"],
        ]
        for name, r in report["davis"]["per_sequence"].items()
    ]
    parts.append(
        _table(
            ["object", "class", "J&F", "J", "F", "J-Recall", "J-Decay", "instance IoU", "frames"],
            seq_rows,
        )
    )
    parts.append("<div class='plots'>" + _plot(plots, "per_frame_j", "per-frame J") + "</div>")

    timing = report["timing"]
    if timing.get("frames"):
        lat = timing["latency_ms"]
        parts.append("<h2>Timing</h2>")
        parts.append(
            _table(
                ["frames", "fps", "p50 ms", "p95 ms", "p99 ms", "max ms", "dropped"],
                [
                    [
                        timing["frames"],
                        timing.get("fps"),
                        lat.get("p50"),
                        lat.get("p95"),
                        lat.get("p99"),
                        lat.get("max"),
                        timing.get("dropped_frames"),
                    ]
                ],
            )
        )
        stages = timing.get("stages_ms") or {}
        if stages:
            parts.append(_table(["stage", "mean ms"], [[k, v] for k, v in stages.items()]))
        parts.append(
            "<div class='plots'>" + _plot(plots, "latency", "latency histogram") + "</div>"
        )

    parts.append("<h2>Sequences</h2>")
    for i, (sequence, info) in enumerate(report["sequences"].items()):
        status = (
            ""
            if info.get("complete")
            else (f" <span class='bad'>({html.escape(info.get('error') or 'incomplete')})</span>")
        )
        parts.append(f"<h3>{html.escape(sequence)}{status}</h3>")
        parts.append(
            "<div class='plots'>"
            + _plot(plots, f"trajectory:{sequence}", f"{sequence} trajectories")
            + "</div>"
        )
        frames = thumbnails.get(sequence) or []
        if frames:
            uris = [(name, _img_uri(data, "image/jpeg")) for name, data in frames]
            step = max(1, len(uris) // 8)
            strip = "".join(
                f'<img title="frame {html.escape(n)}" alt="frame {html.escape(n)}" src="{u}">'
                for n, u in uris[::step]
            )
            parts.append(f"<div class='strip'>{strip}</div>")
            data = html.escape(json.dumps(uris), quote=True)
            parts.append(
                f"<div class='player' id='player{i}' data-frames=\"{data}\">"
                "<img alt='overlay player'><button>play</button> "
                "<input type='range' min='0' value='0'> frame <span></span></div>"
            )
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts)


def write_html_report(
    report: dict[str, Any],
    plots: dict[str, Path],
    thumbnails: dict[str, list[tuple[str, bytes]]],
    path: Path | str,
) -> Path:
    """Write :func:`render_html` to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, plots, thumbnails), encoding="utf-8")
    return path
