"""The health and metrics HTTP server every service runs on ``CALLSTREAM_HTTP_PORT``.

``/healthz``: the process is alive. ``/readyz``: the service's own readiness check (e.g. a
producer connected, partitions assigned, not paused by a platform error). ``/metrics``: Prometheus
text format from the given registry.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], tuple[bool, str]]


def health_app(registry: CollectorRegistry, ready: ReadinessCheck) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        ok, reason = ready()
        return web.json_response(
            {"status": "ready" if ok else "not ready", "reason": reason},
            status=200 if ok else 503,
        )

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_health_server(
    registry: CollectorRegistry, ready: ReadinessCheck, host: str, port: int
) -> web.AppRunner:
    """Start the server on the running loop; the caller awaits ``runner.cleanup()`` at shutdown."""
    runner = web.AppRunner(health_app(registry, ready), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful when configured as 0 in tests)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("health server is not listening")
