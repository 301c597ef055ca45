"""Control routes for tests and demos (no auth: a local tool).

- ``GET  /_sandbox/health``: ``{"status": "ok"}``
- ``GET  /_sandbox/config``: the effective behaviour, secrets redacted, plus fixed settings
- ``POST /_sandbox/config``: a JSON object of behaviour fields to change; answers like GET,
  or 400 ``{"error": ...}`` (nothing changed) when a field is unknown or a value invalid
- ``GET  /_sandbox/ledger[?since=SEQ]``: requests (newer than SEQ), callbacks, summary
- ``GET  /_sandbox/ledger/summary``: the summary alone (plus ``callback_tasks``: calls and
  deliveries still running; 0 = every callback sent, retried or given up)
- ``POST /_sandbox/reset[?config=1]``: forget the ledger, the duplicate window and pending
  callbacks; with ``config=1`` also restore the startup behaviour
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pydantic
from aiohttp import web

if TYPE_CHECKING:
    from sandbox.state import SandboxState


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def effective_config(state: SandboxState) -> dict[str, Any]:
    s = state.settings
    fixed = {
        "host": s.host,
        "port": s.port,
        "ledger_limit": s.ledger_limit,
        "callback_concurrency": s.callback_concurrency,
    }
    return {**state.behaviour.redacted(), **fixed}


def add_routes(app: web.Application, key: web.AppKey[SandboxState]) -> None:
    async def health(_: web.Request) -> web.Response:
        return _json(200, {"status": "ok"})

    async def get_config(request: web.Request) -> web.Response:
        return _json(200, effective_config(request.app[key]))

    async def post_config(request: web.Request) -> web.Response:
        state = request.app[key]
        try:
            changes = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _json(400, {"error": "body must be a JSON object"})
        if not isinstance(changes, dict):
            return _json(400, {"error": "body must be a JSON object"})
        try:
            state.configure(changes)
        except pydantic.ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            return _json(400, {"error": "invalid configuration", "details": errors})
        return _json(200, effective_config(state))

    async def ledger(request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return _json(400, {"error": "since must be an integer"})
        state = request.app[key]
        snapshot = state.ledger.snapshot(since=since)
        snapshot["summary"]["callback_tasks"] = state.sender.pending
        return _json(200, snapshot)

    async def summary(request: web.Request) -> web.Response:
        state = request.app[key]
        return _json(200, {**state.ledger.summary(), "callback_tasks": state.sender.pending})

    async def reset(request: web.Request) -> web.Response:
        state = request.app[key]
        await state.reset(config=request.query.get("config", "") in ("1", "true", "yes"))
        return _json(200, {"status": "reset"})

    app.router.add_get("/_sandbox/health", health)
    app.router.add_get("/_sandbox/config", get_config)
    app.router.add_post("/_sandbox/config", post_config)
    app.router.add_get("/_sandbox/ledger", ledger)
    app.router.add_get("/_sandbox/ledger/summary", summary)
    app.router.add_post("/_sandbox/reset", reset)
