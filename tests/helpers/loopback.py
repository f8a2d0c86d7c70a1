"""Run an ASGI app (Starlette, FastAPI) on 127.0.0.1 in a daemon thread for the duration of a test."""

from __future__ import annotations

import threading
import time

import uvicorn


class LoopbackServer:
    """``with LoopbackServer(app) as server:`` serves ``app`` at ``server.url`` (a free port chosen at bind time).

    Args:
        app: The ASGI application.
        name: Thread name, for debugging.
    """

    def __init__(self, app: object, name: str = "loopback") -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)
        self.port = 0
        self.url = ""

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("loopback server did not start on 127.0.0.1")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
