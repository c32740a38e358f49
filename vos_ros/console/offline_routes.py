"""Offline routes: upload, first frame, run, progress, outputs, removal of a job."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from vos_ros.click_prompt import ClickPrompt
from vos_ros.console.console import Console
from vos_ros.console.request_models import OfflineTarget, RunRequest
from vos_ros.console.selections import Point, SelectionError, box_mask, decode_mask_png, points_mask
from vos_ros.console.uploads import UploadError, store_upload

JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")]


def offline_router(console: Console) -> APIRouter:
    """``/api/offline/*`` of ``console``."""
    settings = console.settings
    router = APIRouter()

    @router.post("/api/offline/upload")
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
        except BaseException:  # refused or cut off: nothing of it stays
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = await asyncio.to_thread(console.jobs.add, folder, stored)
        return job.as_json()

    @router.get("/api/offline/{job_id}")
    def job_state(job_id: JobId) -> dict:
        return console.jobs.get(job_id).as_json()

    @router.get("/api/offline/{job_id}/first.jpg")
    def job_first_frame(job_id: JobId) -> FileResponse:
        job = console.jobs.get(job_id)
        return FileResponse(job.folder / "first.jpg", media_type="image/jpeg")

    @router.post("/api/offline/{job_id}/run")
    def job_run(job_id: JobId, body: RunRequest) -> dict:
        job = console.jobs.get(job_id)
        frame = console.jobs.first_frame(job)
        encoder = None
        if any(target.kind != "mask" for target in body.targets):
            encoder = console.jobs.prompt_encoder(job)
        masks, classes = [], []
        for index, target in enumerate(body.targets):
            try:
                masks.append(_offline_mask(frame, target, encoder))
            except SelectionError as exc:
                raise SelectionError(f"target {index + 1}: {exc}") from None
            classes.append(target.class_label)
        console.jobs.start(job, masks, classes)
        return job.as_json()

    @router.get("/api/offline/{job_id}/files/{name}")
    def job_file(job_id: JobId, name: str) -> FileResponse:
        job = console.jobs.get(job_id)
        path = console.jobs.output(job, name)
        download = name in ("masks.zip", "report.json")
        return FileResponse(path, filename=name if download else None)

    @router.delete("/api/offline/{job_id}")
    def job_delete(job_id: JobId) -> dict:
        console.jobs.remove(job_id)
        return {"removed": job_id}

    return router


def _offline_mask(
    frame: np.ndarray,
    target: OfflineTarget,
    encoder: Callable[[ClickPrompt], np.ndarray] | None,
) -> np.ndarray:
    """A target's mask on the first frame: boxes and clicks through the model's prompt encoder
    where it has one (``encoder``, the sam2 family), else as the node makes them (GrabCut)."""
    if target.kind == "box":
        if target.box is None:
            raise SelectionError("a box target needs box = [x0, y0, x1, y1]")
        x0, y0, x1, y1 = target.box
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if encoder is not None:
            return encoder(ClickPrompt(box=tuple(round(v) for v in box)))
        return box_mask(frame, box)
    if target.kind == "points":
        if not target.points:
            raise SelectionError("a points target needs points")
        points = [Point(p.x, p.y, p.positive) for p in target.points]
        if encoder is not None:
            xy = tuple((p.x, p.y) for p in points)
            return encoder(ClickPrompt(xy, tuple(int(p.positive) for p in points)))
        return points_mask(frame, points)
    if not target.mask_png:
        raise SelectionError("a mask target needs mask_png")
    return decode_mask_png(target.mask_png, frame.shape[:2])
