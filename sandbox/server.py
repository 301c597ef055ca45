"""Running the sandbox: in the foreground (the CLI) or on a background thread (tests, demos)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from callstream.log import get_logger
from sandbox.exceptions import SandboxError

log = get_logger(__name__)
T = TypeVar("T")


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on host:port (0 = a free port); returns the runner and the bound port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, int(bound)


async def serve_forever(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (the handlers only set an event; teardown is in ``finally``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner, bound = await start_site(app, host, port)
    try:
        log.info("sandbox listening", url=f"http://{host}:{bound}")
        await stop.wait()
    finally:
        await runner.cleanup()


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(main)
        return
    uvloop.run(main)


class BackgroundServer:
    """An aiohttp application served by its own event loop on a daemon thread."""

    def __init__(
        self, app_factory: Callable[[], web.Application], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._factory = app_factory
        self.host = host
        self.port = port
        self.app: web.Application | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sandbox-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> BackgroundServer:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise SandboxError(f"server did not start within {timeout} s")
        if self._error is not None:
            raise SandboxError(f"server failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start() or lost with the daemon thread
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.app = self._factory()
        runner, self.port = await start_site(self.app, self.host, self.port)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 15.0) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        if self._loop is None:
            raise SandboxError("server is not running")
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout)
