"""The ``callstream`` command. Each subcommand lives beside the service it runs and is imported
only when invoked, so ``callstream publish`` does not pay for the gateway's imports."""

from __future__ import annotations

import importlib
from typing import Any

import click

from callstream import __version__

# subcommand -> "module:attribute" of a click.Command
SUBCOMMANDS: dict[str, str] = {
    "publish": "producers.publish_cli:publish",
    "gateway": "producers.gateway.cli:gateway",
    "dispatch": "consumers.dispatcher.cli:dispatch",
    "normalize": "consumers.normalizer.cli:normalize",
    "sandbox": "sandbox.cli:sandbox",
    "topics": "callstream.topics_cli:topics",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="callstream")
def main() -> None:
    """callstream: outbound voice calls through Kafka (Webex Connect "Make Call")."""
