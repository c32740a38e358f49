"""The console's web application (FastAPI): pages, JSON API, the live WebSocket.

Errors are answered as JSON ``{"detail": text}`` with a 4xx status (503 when the node does not
answer); the server keeps running whatever a request holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from vos_ros.console.console import Console
from vos_ros.console.live_routes import live_router
from vos_ros.console.offline_jobs import JobError
from vos_ros.console.offline_routes import offline_router
from vos_ros.console.security import AccessGuard
from vos_ros.console.selections import SelectionError
from vos_ros.console.settings import is_loopback
from vos_ros.console.uploads import UploadError

STATIC = Path(str(resources.files("vos_ros.console") / "static"))


def create_app(console: Console) -> FastAPI:
    """The FastAPI app of ``console``, wrapped in the access guard."""

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

    app.include_router(live_router(console))
    app.include_router(offline_router(console))
    loopback = is_loopback(console.settings.host)
    return AccessGuard(app, console.settings.token, loopback)  # type: ignore[return-value]


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
