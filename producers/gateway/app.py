"""The aiohttp routes of the gateway.

``POST <path>`` (and ``POST <path>/<anything>``): authenticate, bound the size, store the raw body,
answer 200 only once Kafka acknowledged. ``HEAD`` answers 200 (the platform checks the URL so).
Any other method: 405. Every answer carries ``X-Request-Id``, the id written in the record's
headers. Status codes and why:

- 200 stored (the broker acknowledged the record)
- 401 authentication failed; nothing written (the platform retries 401, which is harmless)
- 405 method other than POST/HEAD
- 413 body larger than ``max_body_bytes``; nothing written
- 503 Kafka did not acknowledge within ``write_timeout_seconds``, or the gateway is stopping:
  the platform retries later
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from aiohttp import hdrs, web

from callstream.log import get_logger
from producers.gateway.auth import Authenticator
from producers.gateway.exceptions import WriteNotConfirmedError
from producers.gateway.metrics import GatewayMetrics
from producers.gateway.record import build_record
from producers.gateway.settings import GatewaySettings
from producers.gateway.writer import CallbackWriter

log = get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
_ALLOW = "POST, HEAD"


def _json(http_status: int, request_id: str, **fields: Any) -> web.Response:
    return web.Response(
        status=http_status,
        body=orjson.dumps({**fields, "request_id": request_id}),
        content_type="application/json",
        headers={REQUEST_ID_HEADER: request_id},
    )


class CallbackHandler:
    """One instance per app: holds the configured checks, the writer and the metrics."""

    def __init__(
        self, settings: GatewaySettings, writer: CallbackWriter, metrics: GatewayMetrics
    ) -> None:
        self._auth = Authenticator.from_settings(settings)
        self._max_body = settings.max_body_bytes
        self._writer = writer
        self._metrics = metrics

    def _reject(
        self, request: web.Request, request_id: str, status: int, reason: str, **extra: str
    ) -> web.Response:
        self._metrics.answered(status)
        log.warning(
            "callback rejected",
            status=status,
            reason=reason,
            request_id=request_id,
            method=request.method,
            remote=request.remote,
        )
        response = _json(status, request_id, error=reason)
        response.headers.update(extra)
        return response

    async def handle(self, request: web.Request) -> web.StreamResponse:
        received_at_ms = time.time_ns() // 1_000_000
        request_id = str(uuid.uuid4())
        if request.method == hdrs.METH_HEAD:
            self._metrics.answered(200)
            return web.Response(status=200, headers={REQUEST_ID_HEADER: request_id})
        if request.method != hdrs.METH_POST:
            return self._reject(request, request_id, 405, "method not allowed", Allow=_ALLOW)

        reason = self._auth.check_headers(request.headers)
        if reason is not None:
            return self._unauthorized(request, request_id, reason)

        length = request.content_length
        if length is not None and length > self._max_body:
            response = self._reject(request, request_id, 413, "body too large")
            response.force_close()  # do not read the rest of a body we refuse
            return response
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            response = self._reject(request, request_id, 413, "body too large")
            response.force_close()
            return response

        reason = self._auth.check_body(request.headers, body)
        if reason is not None:
            return self._unauthorized(request, request_id, reason)

        record = build_record(
            body,
            request_id=request_id,
            received_at_ms=received_at_ms,
            remote_addr=request.remote,
            content_type=request.headers.get(hdrs.CONTENT_TYPE),
            auth_method=self._auth.method,
        )
        started = time.perf_counter()
        self._metrics.in_flight.inc()
        try:
            await self._writer.write(record)
        except WriteNotConfirmedError as exc:
            self._metrics.write_failed.observe(time.perf_counter() - started)
            return self._reject(
                request, request_id, 503, f"not stored: {exc}", **{"Retry-After": "30"}
            )
        finally:
            self._metrics.in_flight.dec()
        self._metrics.write_ok.observe(time.perf_counter() - started)
        self._metrics.body_bytes.inc(len(body))
        self._metrics.answered(200)
        return _json(200, request_id, status="stored")

    def _unauthorized(self, request: web.Request, request_id: str, reason: str) -> web.Response:
        self._metrics.auth_failures.labels(self._auth.method).inc()
        extra = {}
        if self._auth.method == "basic":
            extra["WWW-Authenticate"] = 'Basic realm="callstream"'
        return self._reject(request, request_id, 401, reason, **extra)


def create_app(
    settings: GatewaySettings, writer: CallbackWriter, metrics: GatewayMetrics
) -> web.Application:
    """The callbacks app. ``writer`` is any :class:`CallbackWriter` (Kafka in production)."""
    # aiohttp's own limit is the backstop for bodies sent without Content-Length (chunked)
    app = web.Application(client_max_size=settings.max_body_bytes)
    handler = CallbackHandler(settings, writer, metrics)
    app.router.add_route("*", settings.path, handler.handle)
    prefix = "" if settings.path == "/" else settings.path
    app.router.add_route("*", prefix + "/{tail:.+}", handler.handle)
    return app
