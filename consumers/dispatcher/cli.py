"""``callstream dispatch``: run the dispatcher until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

import click
import pydantic
import uvloop

from callstream.exceptions import ConfigError
from callstream.gc_tuning import tune_gc
from callstream.log import configure_logging, get_logger
from consumers.dispatcher.service import DispatchService
from consumers.dispatcher.settings import DispatchSettings

log = get_logger(__name__)


def _settings_error(exc: pydantic.ValidationError) -> str:
    # never echo the input: it may hold the service key
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )


async def run_dispatcher(settings: DispatchSettings) -> int:
    """Run until a signal (the handler only sets an event) or a fatal error; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await DispatchService(settings).run(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@click.command()
@click.option("--port", type=int, default=None, help="Override CALLSTREAM_HTTP_PORT.")
def dispatch(port: int | None) -> None:
    """Dispatch call requests from calls.requests to the voice platform."""
    overrides: dict[str, object] = {}
    if port is not None:
        overrides["http_port"] = port
    try:
        settings = DispatchSettings(**overrides)  # type: ignore[arg-type]  # validated by pydantic
    except pydantic.ValidationError as exc:
        raise click.UsageError(_settings_error(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    tune_gc()
    try:
        code = uvloop.run(run_dispatcher(settings))
    except ConfigError as exc:
        log.critical("dispatcher cannot start", error=str(exc))
        raise click.ClickException(str(exc)) from None
    sys.exit(code)
