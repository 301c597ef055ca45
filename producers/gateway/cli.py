"""``callstream gateway``: run the callbacks gateway until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

import click
import pydantic
import uvloop

from callstream.log import configure_logging, get_logger
from callstream.settings import Settings
from producers.gateway.server import GatewayServer
from producers.gateway.settings import GatewaySettings

log = get_logger(__name__)


def _settings_error(exc: pydantic.ValidationError) -> str:
    # never echo the input: it may hold a secret
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )


async def run_gateway(settings: Settings, gateway: GatewaySettings) -> int:
    """Serve until a signal (or a fatal producer error); returns the process exit code."""
    server = GatewayServer(settings, gateway)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)  # the handler only flips a flag
    code = 0
    try:
        await server.start()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                if server.fatal_error is not None:
                    log.critical("gateway stopping on fatal producer error")
                    code = 1
                    break
    finally:
        undelivered = await server.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return code if not undelivered else 1


@click.command()
@click.option("--host", default=None, help="Override CALLSTREAM_GATEWAY_HOST.")
@click.option("--port", type=int, default=None, help="Override CALLSTREAM_GATEWAY_PORT.")
def gateway(host: str | None, port: int | None) -> None:
    """Receive the platform's callbacks and store them raw in calls.callbacks.raw."""
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    try:
        settings = Settings()
        gateway_settings = GatewaySettings(**overrides)  # type: ignore[arg-type]  # validated by pydantic
    except pydantic.ValidationError as exc:
        raise click.UsageError(_settings_error(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    log.info("gateway settings", **gateway_settings.redacted())
    sys.exit(uvloop.run(run_gateway(settings, gateway_settings)))
