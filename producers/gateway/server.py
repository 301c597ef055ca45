"""The running gateway: callbacks server + health server + writer, started and stopped in order.

Shutdown order (SIGTERM): readiness goes false, the callbacks listener closes (no new requests),
in-flight requests finish (each is bounded by the write timeout), the producer is flushed, then
the health server stops.
"""

from __future__ import annotations

from aiohttp import web

from callstream.health import bound_port, start_health_server
from callstream.log import get_logger
from callstream.settings import Settings
from producers.gateway.app import create_app
from producers.gateway.metrics import GatewayMetrics
from producers.gateway.settings import GatewaySettings
from producers.gateway.writer import CallbackWriter, KafkaCallbackWriter

log = get_logger(__name__)


class GatewayServer:
    """``writer`` defaults to a :class:`KafkaCallbackWriter` from the settings; tests and the
    benchmark may pass another :class:`CallbackWriter`."""

    def __init__(
        self,
        settings: Settings,
        gateway: GatewaySettings,
        *,
        writer: CallbackWriter | None = None,
        health: bool = True,
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.metrics = GatewayMetrics()
        self._kafka: KafkaCallbackWriter | None = None
        if writer is None:
            kafka = self._kafka = KafkaCallbackWriter.from_settings(settings, gateway)
            self.metrics.late_acks.set_function(lambda: kafka.late_acks)
            writer = kafka
        self.writer: CallbackWriter = writer
        self._with_health = health
        self._runner: web.AppRunner | None = None
        self._health: web.AppRunner | None = None
        self._stopping = False
        self.port = 0
        self.health_port = 0

    def ready(self) -> tuple[bool, str]:
        if self._stopping:
            return False, "stopping"
        return self.writer.readiness()

    @property
    def fatal_error(self) -> str | None:
        return self._kafka.fatal_error if self._kafka is not None else None

    async def start(self) -> None:
        if self._kafka is not None:
            await self._kafka.start()
        app = create_app(self.gateway, self.writer, self.metrics)
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=self.gateway.shutdown_timeout_seconds
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.gateway.host, self.gateway.port, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        if self._with_health:
            self._health = await start_health_server(
                self.metrics.registry, self.ready, self.settings.http_host, self.settings.http_port
            )
            self.health_port = bound_port(self._health)
        log.info(
            "gateway listening",
            host=self.gateway.host,
            port=self.port,
            path=self.gateway.path,
            auth=self.gateway.auth,
            topic=self.settings.topic_callbacks_raw,
            health_port=self.health_port,
        )

    async def stop(self) -> int:
        """Graceful stop; returns the number of records the producer could not flush."""
        self._stopping = True
        if self._runner is not None:
            await self._runner.cleanup()  # closes the listener, waits for in-flight requests
        undelivered = 0
        if self._kafka is not None:
            undelivered = await self._kafka.close(self.gateway.shutdown_timeout_seconds)
        if self._health is not None:
            await self._health.cleanup()
        log.info("gateway stopped", undelivered=undelivered)
        return undelivered
