"""A callback receiver for tests and demos: records every request it gets and answers the
statuses it is told to (200 by default). HEAD answers 200, as the platform checks URLs that way.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return orjson.loads(self.body)


class CallbackReceiver:
    """Thread-safe: the server runs on its own loop; tests read from any thread."""

    def __init__(self, default_status: int = 200, delay_seconds: float = 0.0) -> None:
        self.default_status = default_status
        self.delay_seconds = delay_seconds
        self._planned: deque[int] = deque()
        self._received: list[Received] = []
        self._cond = threading.Condition()

    def respond_with(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order, then ``default_status``."""
        with self._cond:
            self._planned.extend(statuses)

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    def bodies(self) -> list[Any]:
        """JSON bodies of the POSTs answered 2xx (what a gateway would have accepted)."""
        return [r.json() for r in self.received if r.method == "POST" and 200 <= r.status < 300]

    def clear(self) -> None:
        with self._cond:
            self._received.clear()
            self._planned.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` POSTs arrived (any answer); return all received so far."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(r.method == "POST" for r in self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._received)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        with self._cond:
            status = self._planned.popleft() if self._planned else self.default_status
            if request.method == "HEAD":
                status = 200
            self._received.append(
                Received(request.method, request.path_qs, dict(request.headers), body, status)
            )
            self._cond.notify_all()
        return web.Response(status=status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app
