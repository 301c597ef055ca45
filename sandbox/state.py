"""The sandbox's mutable state: live behaviour, ledger, rate limiter, callback sender."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.callbacks import CallbackSender
from sandbox.faults import any_fault
from sandbox.ledger import Ledger
from sandbox.ratelimit import TokenBucket
from sandbox.settings import Behaviour, SandboxSettings


@dataclass(slots=True)
class SandboxState:
    settings: SandboxSettings
    behaviour: Behaviour = field(init=False)
    ledger: Ledger = field(init=False)
    sender: CallbackSender = field(init=False)
    bucket: TokenBucket | None = field(init=False, default=None)
    has_faults: bool = field(init=False, default=False)
    seen: dict[str, int] = field(init=False, default_factory=dict)  # requests per correlation id
    key_bytes: bytes = field(init=False, default=b"")  # the service key, for the fast auth path
    # no TPS limit, no fault, no seed: the request path may skip straight to acceptance
    plain: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.settings.ledger_limit, self.settings.ledger_id_limit)
        self.sender = CallbackSender(self.ledger, self.settings.callback_concurrency)
        self.apply(self.settings.behaviour())

    def apply(self, behaviour: Behaviour) -> None:
        """Switch to ``behaviour``; the token bucket restarts full when tps or burst changed."""
        old = getattr(self, "behaviour", None)
        self.behaviour = behaviour
        self.has_faults = any_fault(behaviour)
        self.key_bytes = behaviour.service_key.get_secret_value().encode()
        if old is None or (old.tps, old.burst) != (behaviour.tps, behaviour.burst):
            self._new_bucket()
        self._refresh_plain()

    def _new_bucket(self) -> None:
        b = self.behaviour
        self.bucket = (
            TokenBucket(b.tps, b.effective_burst(), time.monotonic()) if b.tps > 0 else None
        )
        self._refresh_plain()

    def _refresh_plain(self) -> None:
        b = self.behaviour
        self.plain = self.bucket is None and not self.has_faults and b.seed is None

    def configure(self, changes: dict[str, Any]) -> Behaviour:
        self.apply(self.behaviour.updated(changes))
        return self.behaviour

    async def reset(self, *, config: bool = False) -> None:
        """Forget everything received (ledger, duplicate window, per-id counts) and cancel the
        callbacks still pending; with ``config`` also return to the startup behaviour."""
        await self.sender.cancel_all()
        self.ledger.reset()
        self.seen.clear()
        if config:
            self.apply(self.settings.behaviour())
        self._new_bucket()
