"""Run the console: join the ROS graph, serve the app with uvicorn until Ctrl-C."""

from __future__ import annotations

import threading

import uvicorn

from vos_ros.console.app import create_app
from vos_ros.console.console import Console
from vos_ros.console.settings import ConsoleSettings


def console_url(settings: ConsoleSettings, port: int | None = None) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "<this machine's address>"
    if ":" in host and not host.startswith("<"):
        host = f"[{host}]"
    url = f"http://{host}:{port or settings.port}/"
    return f"{url}?token={settings.token}" if settings.token else url


def serve(settings: ConsoleSettings) -> int:
    """Blocking: the console at ``settings.host:settings.port``; returns the exit code."""
    console = Console(settings)
    console.start()
    try:
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(console), host=settings.host, port=settings.port, log_level="warning"
            )
        )
        print(f"vos-ros console: open {console_url(settings)}", flush=True)
        if settings.token:
            print(f"token (every request needs it): {settings.token}", flush=True)
        server.run()
        return 0 if server.started else 1
    finally:
        console.close()


class BackgroundServer:
    """The console served on a thread (tests, the latency benchmark): port 0 picks a free one."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.console = Console(settings)
        self.console.start()
        config = uvicorn.Config(
            create_app(self.console), host=settings.host, port=settings.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="console_http", daemon=True)
        self._thread.start()
        import time

        deadline = time.monotonic() + 20.0
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.console.close()
                raise RuntimeError("the console's web server did not start")
            time.sleep(0.02)
        sockets = self.server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])
        self.url = f"http://{settings.host}:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10.0)
        self.console.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
