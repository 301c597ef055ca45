"""A small synchronous client of the sandbox's control routes (stdlib only), for tests and
scripts: ``SandboxClient("http://127.0.0.1:8089").accepted_correlation_ids()``."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import orjson

from sandbox.exceptions import SandboxClientError


class SandboxClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(  # noqa: S310  (the URL is the sandbox's, http)
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise SandboxClientError(
                f"{method} {path}: {exc.code} {detail}", http_status=exc.code
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SandboxClientError(f"{method} {path}: {exc}") from exc

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/_sandbox/health")
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/_sandbox/config")
        return result

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change live behaviour (e.g. ``error_503_rate=1.0``); returns the effective config."""
        result: dict[str, Any] = self._request("POST", "/_sandbox/config", changes)
        return result

    def ledger(self, since: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/_sandbox/ledger?since={since}")
        return result

    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/_sandbox/ledger/summary")
        return result

    def reset(self, *, config: bool = False) -> None:
        self._request("POST", "/_sandbox/reset" + ("?config=1" if config else ""))

    def accepted_correlation_ids(self) -> Counter[str]:
        """Destinations accepted per correlation id since the last reset: each call placed
        exactly once means every count is 1. Raises :class:`SandboxClientError` when the
        sandbox had to forget ids (``ledger_id_limit``): the counts would prove nothing."""
        summary = self.summary()
        forgotten = summary.get("correlation_ids_forgotten", 0)
        if forgotten:
            raise SandboxClientError(
                f"the sandbox forgot {forgotten} correlation ids (ledger_id_limit): "
                "counts are incomplete; reset it before the run or raise the limit"
            )
        return Counter(summary["accepted_by_correlation_id"])

    def wait_idle(self, timeout: float = 10.0) -> dict[str, Any]:
        """Poll until no callback is planned, in flight or waiting for a retry; return the
        summary (check ``callback_tasks`` to see whether it got there in time)."""
        deadline = time.monotonic() + timeout
        while True:
            summary = self.summary()
            if summary["callback_tasks"] == 0 or time.monotonic() > deadline:
                return summary
            time.sleep(0.02)

    def wait_for_callbacks(self, settled: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll until at least ``settled`` callbacks are no longer pending; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            callbacks: list[dict[str, Any]] = self.ledger()["callbacks"]
            done = sum(c["state"] != "pending" for c in callbacks)
            if done >= settled or time.monotonic() > deadline:
                return callbacks
            time.sleep(0.02)
