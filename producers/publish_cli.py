"""``callstream publish FILE|-``: JSON lines of call intents into ``calls.requests``.

Each line is validated; valid ones are produced (key = correlation id, generated when absent),
invalid ones are reported on stderr with their line number and every failing field. A summary
ends the run; the exit code is 1 when any line was rejected or not acknowledged, else 0.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import IO

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from callstream.contracts import WireFormat
from callstream.exceptions import CallstreamError, ContractError
from callstream.log import configure_logging
from callstream.settings import Settings
from producers.exceptions import PublishError
from producers.publisher import Publisher, Receipt, prepare_intent

PROGRESS_MIN_BYTES = 256 * 1024  # inputs at least this large get a progress bar on a terminal


@dataclass
class Tally:
    read: int = 0
    published: int = 0
    rejected: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def delivered(self, receipt: Receipt | None, error: PublishError | None) -> None:
        if error is not None:
            self.failed += 1
            self.failures.append(str(error))
        elif receipt is not None:
            self.published += 1


def _reject(err: Console, line_no: int, reasons: list[str], cid: object = None) -> None:
    who = f" (correlation_id {cid})" if isinstance(cid, str) and cid else ""
    err.print(
        f"line {line_no}{who}: rejected: " + "; ".join(reasons), markup=False, highlight=False
    )


def publish_lines(
    stream: IO[bytes],
    publisher: Publisher | None,
    err: Console,
    progress: Progress | None = None,
    task: object = None,
) -> Tally:
    """Validate and (unless ``publisher`` is None: dry run) send each line. Pure of I/O setup."""
    tally = Tally()
    for line_no, line in enumerate(stream, start=1):
        if progress is not None and task is not None:
            progress.advance(task, len(line))  # type: ignore[arg-type]
        if not line.strip():
            continue
        tally.read += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            tally.rejected += 1
            _reject(err, line_no, [f"invalid JSON: {exc}"])
            continue
        cid = obj.get("correlation_id") if isinstance(obj, dict) else None
        try:
            request = publisher.prepare(obj) if publisher else prepare_intent(obj)
        except ContractError as exc:
            tally.rejected += 1
            _reject(err, line_no, [str(e) for e in exc.errors] or [str(exc)], cid)
            continue
        if publisher is None:
            tally.published += 1
            continue
        publisher.send(request, tally.delivered)
        publisher.poll(0)
    return tally


@click.command()
@click.argument("source", type=click.Path(allow_dash=True, dir_okay=False), default="-")
@click.option(
    "--topic", default=None, help="Topic to publish to (default CALLSTREAM_TOPIC_REQUESTS)."
)
@click.option(
    "--format",
    "wire_format",
    type=click.Choice([f.value for f in WireFormat]),
    default=None,
    help="Wire form: avro (single-object; default), confluent (needs a registry), json.",
)
@click.option(
    "--bootstrap-servers", default=None, help="Overrides CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS."
)
@click.option("--dry-run", is_flag=True, help="Validate only; publish nothing.")
@click.option(
    "--timeout", default=60.0, show_default=True, help="Seconds to wait for acknowledgements."
)
def publish(
    source: str,
    topic: str | None,
    wire_format: str | None,
    bootstrap_servers: str | None,
    dry_run: bool,
    timeout: float,
) -> None:
    """Publish call intents (JSON lines) from SOURCE (a file, or - for stdin)."""
    overrides = {"kafka_bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings.log_level, settings.log_format)
    err = Console(stderr=True, soft_wrap=True)
    if wire_format is None:
        form = WireFormat.CONFLUENT if settings.schema_registry_url else WireFormat.AVRO
    else:
        form = WireFormat(wire_format)
    try:
        publisher = None if dry_run else Publisher(settings, wire_format=form, topic=topic)
    except CallstreamError as exc:
        raise click.ClickException(str(exc)) from exc

    stream: IO[bytes]
    size = 0
    if source == "-":
        stream = sys.stdin.buffer
    else:
        stream = open(source, "rb")  # noqa: SIM115  (closed in finally)
        size = os.fstat(stream.fileno()).st_size
    show = err.is_terminal and size >= PROGRESS_MIN_BYTES
    try:
        with Progress(
            TextColumn("publishing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not show,
            transient=True,
        ) as progress:
            task = progress.add_task("publish", total=size or None)
            tally = publish_lines(stream, publisher, err, progress, task)
            if publisher is not None:
                remaining = publisher.flush(timeout)
                if remaining:
                    tally.failed += remaining
                    tally.failures.append(f"{remaining} not acknowledged within {timeout}s")
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()

    for failure in tally.failures[:20]:
        err.print(f"not acknowledged: {failure}", markup=False, highlight=False)
    verb = "valid" if dry_run else "published"
    click.echo(
        f"{tally.read} read, {tally.published} {verb}, {tally.rejected} rejected, "
        f"{tally.failed} failed",
        err=True,
    )
    if tally.rejected or tally.failed:
        sys.exit(1)
