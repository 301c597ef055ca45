"""Pausing all dispatching while the platform refuses us (401/403/404/405).

Such an answer is about our configuration or account, not the message: dispatching stops (every
partition is paused, ``/readyz`` answers 503), nothing is dead-lettered, and one held request
(the *prober*) is re-sent every probe interval. When it gets any other answer than those
statuses or a 5xx/timeout, the platform is considered healthy again, the prober's answer is its
outcome, and everything resumes. If the prober's task ends (rebalance), another waiting record
takes over within a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from callstream.log import get_logger
from consumers.dispatcher.exceptions import PlatformUnavailableError

if TYPE_CHECKING:
    from consumers.dispatcher.work import Work

log = get_logger(__name__)
LOUD_EVERY_S = 60.0


class PlatformPause:
    def __init__(
        self,
        on_pause: Callable[[], None],
        on_resume: Callable[[], None],
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.paused = False
        self.reason = ""
        self.prober: Work | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._on_pause = on_pause
        self._on_resume = on_resume
        self._on_change = on_change
        self._last_loud = 0.0

    async def gate(self, w: Work) -> bool:
        """Return False when dispatching may go on; True when ``w`` must become the prober."""
        while self.paused:
            prober = self.prober
            if prober is None or prober.task is None or prober.task.done():
                self.prober = w
                return True
            try:
                await asyncio.wait_for(self._resumed.wait(), timeout=1.0)
            except TimeoutError:
                continue
        return False

    def enter(self, exc: PlatformUnavailableError) -> None:
        if self.paused:
            return
        self.paused = True
        self.prober = None
        self.reason = f"platform answered {exc.http_status}: {exc}"
        self._resumed.clear()
        self._last_loud = time.monotonic()
        log.error(
            "PLATFORM REFUSES REQUESTS: dispatching paused (check CALLSTREAM_PLATFORM_URL and "
            "CALLSTREAM_PLATFORM_SERVICE_KEY); nothing is dropped, probing periodically",
            http_status=exc.http_status,
            code=exc.code,
        )
        self._on_pause()
        if self._on_change:
            self._on_change(True)

    def still_paused(self, exc: PlatformUnavailableError) -> None:
        now = time.monotonic()
        if now - self._last_loud >= LOUD_EVERY_S:
            self._last_loud = now
            log.error(
                "platform still refuses requests; dispatching paused", http_status=exc.http_status
            )
        else:
            log.warning("probe refused", http_status=exc.http_status)

    def leave(self) -> bool:
        """The prober got a real answer: resume everything. Returns False (no longer probing)."""
        if self.paused:
            self.paused = False
            self.prober = None
            self.reason = ""
            self._resumed.set()
            log.warning("platform accepts requests again: dispatching resumed")
            self._on_resume()
            if self._on_change:
                self._on_change(False)
        return False

    def released(self, w: Work) -> None:
        """``w`` finished or was cancelled: if it was the prober, let another take over."""
        if self.prober is w:
            self.prober = None
