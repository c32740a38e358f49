"""Live routes: the node's state for the page, target changes, and the newest-frame WebSocket."""

from __future__ import annotations

import json
import struct

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from vos_ros.console.console import Console
from vos_ros.console.live_view import median_or_none
from vos_ros.console.request_models import (
    BoxRequest,
    IdsRequest,
    MaskRequest,
    PauseRequest,
    PointsRequest,
    RenameRequest,
    SelectRequest,
    Stamp,
)
from vos_ros.console.selections import SelectionError, decode_mask_png

RENAME_NOTE = (
    "the node has no rename service: the new name lives in this console (view and list); the "
    "node keeps the class it was given"
)


def live_router(console: Console) -> APIRouter:
    """``/api/live/*`` and ``/ws/live`` of ``console``."""
    router = APIRouter()

    @router.get("/api/live/state")
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

    @router.post("/api/live/select")
    def select(body: SelectRequest) -> dict:
        console.bridge.select(body.node)
        console.names.clear()
        return {"selected": body.node}

    @router.post("/api/live/pause")
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

    @router.post("/api/live/resume")
    def resume() -> dict:
        console.pairer.unpin()
        return {"pinned": False}

    @router.post("/api/live/box")
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

    @router.post("/api/live/mask")
    def add_mask(body: MaskRequest) -> dict:
        frame = _pinned_frame(console, body.stamp)
        mask = decode_mask_png(body.mask_png, frame.shape[:2])
        return _send_mask(console, body.stamp.ns, mask, body.class_label, "")

    @router.post("/api/live/points")
    def add_points(body: PointsRequest) -> dict:
        clicks = [(p.x, p.y, p.positive) for p in body.points]
        response = console.bridge.add_points(body.stamp.ns, clicks, body.class_label)
        console.note_ids([int(response.target_id)])
        return {"message": response.message, "new_ids": [int(response.target_id)]}

    @router.post("/api/live/remove")
    def remove(body: IdsRequest) -> dict:
        response = console.bridge.remove(body.ids)
        for target_id in response.removed_ids:
            console.names.pop(int(target_id), None)
        return {"message": response.message, "removed_ids": list(response.removed_ids)}

    @router.post("/api/live/rename")
    def rename(body: RenameRequest) -> dict:
        console.names[body.id] = body.label
        return {"message": f"target {body.id} is shown as {body.label!r}", "note": RENAME_NOTE}

    @router.post("/api/live/reset")
    def reset() -> dict:
        response = console.bridge.reset()
        console.names.clear()
        return {"message": response.message}

    @router.websocket("/ws/live")
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

    return router


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
