"""The console's web application (FastAPI): pages, JSON API, the live WebSocket.

Errors are answered as JSON ``{"detail": text}`` with a 4xx status (503 when the node does not
answer); the server keeps running whatever a request holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketDisconnect

from vos_ros.console.console import Console
from vos_ros.console.live_view import median_or_none
from vos_ros.console.offline_jobs import JobError
from vos_ros.console.security import AccessGuard
from vos_ros.console.selections import (
    Point,
    SelectionError,
    box_mask,
    decode_mask_png,
    points_mask,
)
from vos_ros.console.settings import is_loopback
from vos_ros.console.uploads import UploadError, store_upload

STATIC = Path(str(resources.files("vos_ros.console") / "static"))
JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")]
Label = Annotated[str, Field(max_length=64, pattern=r"^[^\x00-\x1f]*$")]
Coordinate = Annotated[float, Field(ge=-1e5, le=1e5)]
POINTS_NOTE = (
    "the node has no points service: the console made the mask from the points with GrabCut "
    "(seeded by them) and sent it with ~/set_initial_mask"
)
RENAME_NOTE = (
    "the node has no rename service: the new name lives in this console (view and list); the "
    "node keeps the class it was given"
)


class Stamp(BaseModel):
    sec: int = Field(ge=0, le=2**31 - 1)
    nanosec: int = Field(ge=0, lt=1_000_000_000)

    @property
    def ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec


class PointIn(BaseModel):
    x: Coordinate
    y: Coordinate
    positive: bool = True


class BoxRequest(BaseModel):
    stamp: Stamp
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate]
    class_label: Label = ""


class MaskRequest(BaseModel):
    stamp: Stamp
    mask_png: str = Field(max_length=12_000_000)
    class_label: Label = ""


class PointsRequest(BaseModel):
    stamp: Stamp
    points: list[PointIn] = Field(min_length=1, max_length=64)
    class_label: Label = ""


class IdsRequest(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=2**32 - 1)]] = Field(min_length=1, max_length=256)


class RenameRequest(BaseModel):
    id: int = Field(ge=1, le=2**32 - 1)
    label: Label


class SelectRequest(BaseModel):
    node: str = Field(min_length=2, max_length=256, pattern=r"^/[A-Za-z0-9_/]+$")


class PauseRequest(BaseModel):
    stamp: Stamp


class OfflineTarget(BaseModel):
    kind: Literal["box", "points", "mask"]
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] | None = None
    points: list[PointIn] | None = Field(default=None, max_length=64)
    mask_png: str | None = Field(default=None, max_length=12_000_000)
    class_label: Label = ""


class RunRequest(BaseModel):
    targets: list[OfflineTarget] = Field(min_length=1, max_length=32)


def create_app(console: Console) -> FastAPI:
    """The FastAPI app of ``console``, wrapped in the access guard."""
    settings = console.settings

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        # here, not after the server returns: uvicorn re-raises SIGTERM once it has shut down
        await asyncio.to_thread(console.close)

    app = FastAPI(
        title="vos_ros console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    register_errors(app)

    @app.get("/")
    def live_page() -> FileResponse:
        return FileResponse(STATIC / "live.html", headers={"Cache-Control": "no-store"})

    @app.get("/offline")
    def offline_page() -> FileResponse:
        return FileResponse(STATIC / "offline.html", headers={"Cache-Control": "no-store"})

    # -- live ---------------------------------------------------------------------------------

    @app.get("/api/live/state")
    def live_state() -> dict:
        bridge = console.bridge
        latest = console.pairer.latest_instances
        targets = [
            {
                "id": t.target_id,
                "class": console.names.get(t.target_id, t.class_label),
                "node_class": t.class_label,
                "renamed": t.target_id in console.names,
                "score": round(t.score, 3),
                "visible": t.visible,
            }
            for t in (latest.targets if latest is not None else [])
        ]
        status = bridge.status
        keys = (
            "lifecycle_state", "model", "backend", "targets", "input_hz", "output_hz",
            "latency_mean_ms", "latency_p95_ms", "frames_received", "frames_processed",
            "frames_dropped", "frames_failed", "last_error",
        )  # fmt: skip
        return {
            "nodes": bridge.vos_nodes(),
            "selected": bridge.selected,
            "camera_topic": bridge.camera_topic,
            "camera_hz": round(bridge.camera_hz(), 2),
            "diagnostics": {
                "level": status.level,
                "message": status.message,
                "values": {k: status.values[k] for k in keys if k in status.values},
            },
            "targets": targets,
            "buffer": {"size": bridge.buffer_size, "seconds": bridge.buffer_seconds()},
            "render_ms": median_or_none(console.pairer.render_ms),
            "render_error": console.pairer.last_error,
        }

    @app.post("/api/live/select")
    def select(body: SelectRequest) -> dict:
        console.bridge.select(body.node)
        console.names.clear()
        return {"selected": body.node}

    @app.post("/api/live/pause")
    def pause(body: PauseRequest) -> dict:
        kept = console.pairer.pin(body.stamp.ns)
        seconds = console.bridge.buffer_seconds()
        return {
            "pinned": kept,
            "buffer_seconds": seconds,
            "note": (
                f"the node keeps the last {console.bridge.buffer_size} frames (about "
                f"{seconds:.1f} s): draw and send within that time, or start the node with a "
                "larger frame_buffer.size"
                if seconds
                else ""
            ),
        }

    @app.post("/api/live/resume")
    def resume() -> dict:
        console.pairer.unpin()
        return {"pinned": False}

    @app.post("/api/live/box")
    def add_box(body: BoxRequest) -> dict:
        x0, y0, x1, y1 = (round(v) for v in body.box)
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        x0, y0 = max(x0, 0), max(y0, 0)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise SelectionError("the box is too small (drag a larger one)")
        response = console.bridge.add_box(body.stamp.ns, (x0, y0, x1, y1), body.class_label)
        console.note_ids(list(response.new_ids))
        return {"message": response.message, "new_ids": list(response.new_ids)}

    @app.post("/api/live/mask")
    def add_mask(body: MaskRequest) -> dict:
        frame = _pinned_frame(console, body.stamp)
        mask = decode_mask_png(body.mask_png, frame.shape[:2])
        return _send_mask(console, body.stamp.ns, mask, body.class_label, "")

    @app.post("/api/live/points")
    def add_points(body: PointsRequest) -> dict:
        frame = _pinned_frame(console, body.stamp)
        points = [Point(p.x, p.y, p.positive) for p in body.points]
        mask = points_mask(frame, points)
        return _send_mask(console, body.stamp.ns, mask, body.class_label, POINTS_NOTE)

    @app.post("/api/live/remove")
    def remove(body: IdsRequest) -> dict:
        response = console.bridge.remove(body.ids)
        for target_id in response.removed_ids:
            console.names.pop(int(target_id), None)
        return {"message": response.message, "removed_ids": list(response.removed_ids)}

    @app.post("/api/live/rename")
    def rename(body: RenameRequest) -> dict:
        console.names[body.id] = body.label
        return {"message": f"target {body.id} is shown as {body.label!r}", "note": RENAME_NOTE}

    @app.post("/api/live/reset")
    def reset() -> dict:
        response = console.bridge.reset()
        console.names.clear()
        return {"message": response.message}

    @app.websocket("/ws/live")
    async def live_socket(socket: WebSocket) -> None:
        """Newest frame only: a frame is sent when the browser asks for the next one (after it
        drew the previous), and it is always the newest drawn frame; nothing queues."""
        await socket.accept()
        sent = 0
        try:
            while True:
                if await socket.receive_text() != "next":
                    await socket.close(code=1003, reason="send 'next' for the next frame")
                    return
                frame = await console.view.newer_than(sent, timeout=1.0)
                while frame is None:  # nothing new yet: say so, keep the request open
                    await socket.send_text(json.dumps({"idle": True}))
                    frame = await console.view.newer_than(sent, timeout=1.0)
                header = json.dumps(frame.header).encode()
                await socket.send_bytes(struct.pack(">I", len(header)) + header + frame.jpeg)
                sent = frame.version
        except (WebSocketDisconnect, RuntimeError):  # the browser went away
            return

    # -- offline ------------------------------------------------------------------------------

    @app.post("/api/offline/upload")
    async def upload(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HTTPException(400, "Content-Length is not a number")
            if int(declared) > settings.upload_limit_bytes:
                raise UploadError(
                    f"upload is larger than the limit of "
                    f"{settings.upload_limit_bytes / 1024 / 1024:.0f} MB",
                    413,
                )
        folder = console.jobs.new_folder()
        try:
            stored = await store_upload(request.stream(), folder, settings.upload_limit_bytes)
        except BaseException:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = await asyncio.to_thread(console.jobs.add, folder, stored)
        return job.as_json()

    @app.get("/api/offline/{job_id}")
    def job_state(job_id: JobId) -> dict:
        return console.jobs.get(job_id).as_json()

    @app.get("/api/offline/{job_id}/first.jpg")
    def job_first_frame(job_id: JobId) -> FileResponse:
        job = console.jobs.get(job_id)
        return FileResponse(job.folder / "first.jpg", media_type="image/jpeg")

    @app.post("/api/offline/{job_id}/run")
    def job_run(job_id: JobId, body: RunRequest) -> dict:
        job = console.jobs.get(job_id)
        frame = console.jobs.first_frame(job)
        masks, classes = [], []
        for index, target in enumerate(body.targets):
            try:
                masks.append(_offline_mask(frame, target))
            except SelectionError as exc:
                raise SelectionError(f"target {index + 1}: {exc}") from None
            classes.append(target.class_label)
        console.jobs.start(job, masks, classes)
        return job.as_json()

    @app.get("/api/offline/{job_id}/files/{name}")
    def job_file(job_id: JobId, name: str) -> FileResponse:
        job = console.jobs.get(job_id)
        path = console.jobs.output(job, name)
        download = name in ("masks.zip", "report.json")
        return FileResponse(path, filename=name if download else None)

    @app.delete("/api/offline/{job_id}")
    def job_delete(job_id: JobId) -> dict:
        console.jobs.remove(job_id)
        return {"removed": job_id}

    return AccessGuard(app, settings.token, is_loopback(settings.host))  # type: ignore[return-value]


def _pinned_frame(console: Console, stamp: Stamp):
    frame = console.pairer.frame_at(stamp.ns)
    if frame is None:
        raise SelectionError(
            "the console no longer has the frame you drew on; pause the view and draw again"
        )
    return frame


def _send_mask(console: Console, stamp_ns: int, mask, class_label: str, note: str) -> dict:
    from vos_ros.ros.console_bridge import RequestRefusedError

    target_id = console.next_target_id()
    try:
        response = console.bridge.set_mask(stamp_ns, mask, target_id, class_label)
    except RequestRefusedError as exc:
        if "already tracked" not in str(exc):
            raise
        target_id = console.next_target_id()  # an id given out elsewhere meanwhile: next one
        response = console.bridge.set_mask(stamp_ns, mask, target_id, class_label)
    return {"message": response.message, "new_ids": [target_id], "note": note}


def _offline_mask(frame, target: OfflineTarget):
    if target.kind == "box":
        if target.box is None:
            raise SelectionError("a box target needs box = [x0, y0, x1, y1]")
        x0, y0, x1, y1 = target.box
        return box_mask(frame, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    if target.kind == "points":
        if not target.points:
            raise SelectionError("a points target needs points")
        return points_mask(frame, [Point(p.x, p.y, p.positive) for p in target.points])
    if not target.mask_png:
        raise SelectionError("a mask target needs mask_png")
    return decode_mask_png(target.mask_png, frame.shape[:2])


def register_errors(app: FastAPI) -> None:
    """Map the console's errors to JSON 4xx/503 answers."""
    from vos_ros.ros.console_bridge import NodeUnavailableError, RequestRefusedError

    def answer(status: int):
        async def handler(_request: Request, exc: Exception) -> Response:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        return handler

    app.add_exception_handler(NodeUnavailableError, answer(503))

    async def refused(_request: Request, exc: Exception) -> Response:
        text = str(exc)
        if "is not buffered" in text:
            text += (
                " (the node never got that frame, which best-effort transport may lose, or it "
                "has left the node's buffer: resume, pause again and draw on a newer frame)"
            )
        return JSONResponse({"detail": text}, status_code=409)

    app.add_exception_handler(RequestRefusedError, refused)
    app.add_exception_handler(SelectionError, answer(422))

    async def status_of(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)  # type: ignore[attr-defined]

    app.add_exception_handler(UploadError, status_of)
    app.add_exception_handler(JobError, status_of)
