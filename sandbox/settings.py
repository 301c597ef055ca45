"""Sandbox settings: environment variables ``CALLSTREAM_SANDBOX_<NAME>`` and ``--<name>`` flags.

:class:`Behaviour` holds what can change while the server runs (``POST /_sandbox/config``);
:class:`SandboxSettings` adds what is fixed at start (address, ledger bounds, concurrency).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from callstream.settings import CallstreamBaseSettings

ENV_PREFIX = "CALLSTREAM_SANDBOX_"
OUTCOMES = ("answered", "no_answer", "busy", "rejected", "expired")


class Behaviour(BaseModel):
    """The sandbox's live behaviour: auth, limits, faults, callbacks. Immutable; replaced whole."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # auth
    service_key: SecretStr = Field(SecretStr("sandbox-key"), description="The `key` header value.")
    jwt_service_id: str = Field("sandbox-service", description="`iss` a Bearer JWT must carry.")
    jwt_secret: SecretStr = Field(
        SecretStr("c2FuZGJveC1zZWNyZXQ="),
        description="Service secret, base64 (decoded before HS256 verification).",
    )
    jwt_max_age_seconds: float = Field(3600.0, gt=0, description="Oldest accepted JWT `iat`.")
    # determinism
    seed: int | None = Field(None, description="Seed of every random choice; unset = random.")
    # limits
    tps: float = Field(0.0, ge=0, description="Accepted destinations per second; 0 = unlimited.")
    burst: float = Field(
        0.0, ge=0, description="Token bucket size; 0 = the platform's min(1.5 x tps, tps + 100)."
    )
    max_destinations: int = Field(1000, ge=1, description="Destinations per request (7009).")
    max_body_bytes: int = Field(1_048_576, ge=1, description="Largest body accepted (7022).")
    duplicate_window_seconds: float = Field(
        86_400.0, ge=0, description="A correlation id accepted within it answers 409; 0 = off."
    )
    # faults
    error_500_rate: float = Field(0.0, ge=0, le=1, description="Share answered 500.")
    error_503_rate: float = Field(0.0, ge=0, le=1, description="Share answered 503.")
    latency_ms: float = Field(0.0, ge=0, description="Fixed latency added to every answer.")
    latency_distribution: Literal["none", "uniform", "exponential"] = Field(
        "none", description="Random latency on top: uniform in [0, p] or exponential of mean p."
    )
    latency_param_ms: float = Field(0.0, ge=0, description="p of latency_distribution (ms).")
    hang_rate: float = Field(0.0, ge=0, le=1, description="Share of requests that hang.")
    hang_seconds: float = Field(30.0, ge=0, description="How long a hanging request hangs.")
    hang_then: Literal["accept", "error"] = Field(
        "accept", description="After hanging: process the request (accept) or answer 503 (error)."
    )
    partial_content_rate: float = Field(
        0.0, ge=0, le=1, description="Share of multi-destination requests answered 206."
    )
    # callbacks
    callbacks: bool = Field(True, description="POST call events to notifyUrl.")
    default_notify_url: str | None = Field(
        None, description="notifyUrl for requests without one (the tenant's webhook)."
    )
    outcome_answered: float = Field(0.6, ge=0, description="Weight of answered calls.")
    outcome_no_answer: float = Field(0.15, ge=0, description="Weight of calls not answered.")
    outcome_busy: float = Field(0.1, ge=0, description="Weight of busy destinations.")
    outcome_rejected: float = Field(0.1, ge=0, description="Weight of rejected calls.")
    outcome_expired: float = Field(0.05, ge=0, description="Weight of expired requests.")
    callback_delay_min_ms: float = Field(5.0, ge=0, description="Least gap between events.")
    callback_delay_max_ms: float = Field(20.0, ge=0, description="Largest gap between events.")
    callback_retries: int = Field(3, ge=0, description="Retries of a failed callback.")
    callback_retry_delay_seconds: float = Field(60.0, ge=0, description="Delay between retries.")
    callback_timeout_seconds: float = Field(10.0, gt=0, description="Receiver must answer within.")
    webhook_secret: SecretStr = Field(
        SecretStr(""), description="Signs callbacks (x-hub-signature) when set."
    )
    webhook_signature_prefix: str = Field(
        "", description='Prefix of the signature, e.g. "sha256="; empty = bare hex.'
    )
    webhook_auth_header: str = Field("", description="Extra header sent with callbacks (name).")
    webhook_auth_value: SecretStr = Field(SecretStr(""), description="Its value.")
    callback_hosts: str = Field(
        "127.0.0.1,localhost,::1",
        description="Hosts callbacks may be sent to, comma-separated; '*' = any. Loopback by "
        "default, so a notifyUrl naming another host is never called by accident.",
    )
    # irregularities (contract section 4), each on by default
    irregular_timestamps: bool = Field(True, description="Timestamps with Z, offset or no zone.")
    irregular_destination: bool = Field(True, description="Destinations with and without '+'.")
    irregular_missing_ids: bool = Field(
        True, description="No correlationid/callbackData on Trombone and Disconnected events."
    )
    irregular_order: bool = Field(True, description="Simultaneous events in random order.")
    irregular_status_sample: bool = Field(
        True, description="GET status says ANSWERED (the doc sample) instead of In-progress."
    )

    @model_validator(mode="after")
    def _coherent(self) -> Behaviour:
        if sum(self.outcome_weights()) <= 0:
            raise ValueError("at least one outcome weight must be positive")
        if self.callback_delay_min_ms > self.callback_delay_max_ms:
            raise ValueError("callback_delay_min_ms must not exceed callback_delay_max_ms")
        if self.error_500_rate + self.error_503_rate + self.hang_rate > 1:
            raise ValueError("error_500_rate + error_503_rate + hang_rate must not exceed 1")
        return self

    def outcome_weights(self) -> tuple[float, ...]:
        return (
            self.outcome_answered,
            self.outcome_no_answer,
            self.outcome_busy,
            self.outcome_rejected,
            self.outcome_expired,
        )

    def effective_burst(self) -> float:
        if self.burst > 0:
            return self.burst
        return min(1.5 * self.tps, self.tps + 100)

    def updated(self, changes: dict[str, Any]) -> Behaviour:
        """A new Behaviour with ``changes`` applied and everything revalidated."""
        return Behaviour.model_validate({**self.model_dump(), **changes})

    def redacted(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = "**********" if value.get_secret_value() else ""
            else:
                out[name] = value
        return out


class SandboxSettings(CallstreamBaseSettings, Behaviour):
    """Everything the sandbox reads at start: the :class:`Behaviour` fields plus these."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8089, ge=0, le=65535, description="Port to bind; 0 = any free port.")
    ledger_limit: int = Field(
        100_000, ge=1, description="Entries kept per ledger list (oldest dropped)."
    )
    ledger_id_limit: int = Field(
        2_000_000,
        ge=1,
        description="Correlation ids counted at most (about 100 B each); past it the oldest "
        "tenth is forgotten and the summary says how many were.",
    )
    callback_concurrency: int = Field(64, ge=1, description="Callback POSTs in flight at most.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR.")

    def behaviour(self) -> Behaviour:
        return Behaviour.model_validate(self.model_dump(include=set(Behaviour.model_fields)))
