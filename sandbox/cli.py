"""``callstream sandbox``: every setting is a flag (``--error-503-rate 0.2``) and an environment
variable (``CALLSTREAM_SANDBOX_ERROR_503_RATE``); a flag wins over the variable."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import click
from pydantic import SecretStr

from sandbox.settings import ENV_PREFIX, SandboxSettings


def _click_type(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)])
    if annotation in (int, float, bool):
        return annotation
    return str  # str and SecretStr


def _options(command: Callable[..., Any]) -> Callable[..., Any]:
    for name, info in reversed(SandboxSettings.model_fields.items()):
        flag = name.replace("_", "-")
        default = info.default
        shown = "(secret)" if isinstance(default, SecretStr) else default
        help_text = f"{info.description or ''} [env {ENV_PREFIX}{name.upper()}; default {shown}]"
        if info.annotation is bool:
            command = click.option(f"--{flag}/--no-{flag}", name, default=None, help=help_text)(
                command
            )
        else:
            command = click.option(
                f"--{flag}", name, type=_click_type(info.annotation), default=None, help=help_text
            )(command)
    return command


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@_options
def sandbox(**flags: Any) -> None:
    """A local stand-in for Webex Connect's voice API (POST /v2/messages, callbacks, ledger)."""
    from callstream.log import configure_logging
    from sandbox.app import build_app
    from sandbox.server import run, serve_forever

    settings = SandboxSettings(**{k: v for k, v in flags.items() if v is not None})
    configure_logging(settings.log_level)
    run(serve_forever(build_app(settings), settings.host, settings.port))


def main() -> None:
    sandbox()
