"""``callstream normalize``: run the normalizer until SIGTERM or SIGINT.

The transactional loop runs on the main thread; the dispatches lookup reader and the health
server (``/healthz``, ``/readyz``, ``/metrics``) run on threads of their own. Signal handlers
only set the stop flag: the loop then commits its open transaction and closes the clients.

Exit codes: 0 after a signal, 0 when fenced by a newer instance with the same transactional id
(it owns the work now; this one must not restart itself into a fencing loop, the orchestrator
decides), 1 on any other error that stops the loop (nothing uncommitted is ever lost: a restart
resumes from the committed offsets).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from types import FrameType

import click
import pydantic

from callstream.exceptions import CallstreamError
from callstream.gc_tuning import tune_gc
from callstream.health import bound_port, start_health_server
from callstream.kafka_config import consumer_config
from callstream.log import configure_logging, get_logger
from callstream.settings import Settings
from callstream.topics import ensure_topics
from consumers.normalizer.exceptions import NormalizerError, ProducerFencedError
from consumers.normalizer.lookup import DispatchLookup
from consumers.normalizer.metrics import NormalizerMetrics
from consumers.normalizer.pipeline import Pipeline
from consumers.normalizer.settings import NormalizerSettings

log = get_logger(__name__)


def _settings_error(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )


class HealthThread:
    """The aiohttp health server on a loop of its own thread."""

    def __init__(self, settings: Settings, metrics: NormalizerMetrics, pipeline: Pipeline) -> None:
        self._settings = settings
        self._metrics = metrics
        self._pipeline = pipeline
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self.port = 0  # the bound port (useful when configured as 0)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10) or self.error is not None:
            raise NormalizerError(f"health server did not start: {self.error}")

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as exc:  # e.g. the port is taken: reported by start()
            self.error = exc
            self._started.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        runner = await start_health_server(
            self._metrics.registry,
            self._pipeline.readiness,
            self._settings.http_host,
            self._settings.http_port,
        )
        self.port = bound_port(runner)
        self._started.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        stopping = self._stopping
        if stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(stopping.set)
        self._thread.join(5)


def run_normalizer(settings: Settings, ns: NormalizerSettings, stop: threading.Event) -> int:
    """Run until ``stop`` is set; returns the process exit code."""
    tune_gc()
    if ns.create_topics:
        ensure_topics(
            settings,
            [
                settings.topic_callbacks_raw,
                settings.topic_callbacks_dlq,
                settings.topic_events,
                settings.topic_dispatches,
            ],
        )
    metrics = NormalizerMetrics()
    lookup = DispatchLookup(
        consumer_config(
            settings,
            group_id=f"{ns.group_id}-lookup",
            client_id=f"callstream-normalizer-{ns.instance_id}-lookup",
        ),
        settings.topic_dispatches,
        capacity=ns.lookup_cache_size,
    )
    lookup.start()
    pipeline = Pipeline(settings, ns, metrics, lookup=lookup)
    metrics.lookup_cache_entries.set_function(lambda: len(lookup))
    health = HealthThread(settings, metrics, pipeline)
    try:
        health.start()
        pipeline.run(stop)
        return 0
    except ProducerFencedError as exc:
        log.error("fenced by a newer instance; stopping", error=str(exc))
        return 0
    except NormalizerError as exc:
        log.error("normalizer stopping", error=str(exc))
        return 1
    finally:
        health.stop()
        lookup.close()


@click.command()
@click.option("--http-port", type=int, default=None, help="Override CALLSTREAM_HTTP_PORT.")
def normalize(http_port: int | None) -> None:
    """Turn the platform's raw callbacks into canonical CallEvents, exactly once."""
    try:
        settings = Settings(**({"http_port": http_port} if http_port is not None else {}))  # type: ignore[arg-type]  # validated by pydantic
        ns = NormalizerSettings()
    except pydantic.ValidationError as exc:
        raise click.UsageError(_settings_error(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    log.info("normalizer settings", **ns.redacted(), transactional_id=ns.transactional_id)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # the handler only flips a flag

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        code = run_normalizer(settings, ns, stop)
    except CallstreamError as exc:  # e.g. Kafka unreachable at start
        log.error("normalizer cannot start", error=str(exc))
        code = 1
    sys.exit(code)
