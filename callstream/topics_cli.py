"""``callstream topics create``: create every callstream topic that is missing."""

from __future__ import annotations

import click

from callstream.settings import Settings
from callstream.topics import ensure_topics


@click.group()
def topics() -> None:
    """Manage callstream's Kafka topics."""


@topics.command("create")
@click.option("--partitions", type=int, default=None, help="Partitions for new topics.")
def create(partitions: int | None) -> None:
    """Create the topics that do not exist yet (existing ones are left untouched)."""
    settings = Settings()
    created = ensure_topics(settings, partitions=partitions)
    for name in created:
        click.echo(f"created {name}")
    click.echo(f"{len(created)} created, {len(settings.all_topics()) - len(created)} already there")
