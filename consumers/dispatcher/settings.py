"""Dispatcher settings: ``CALLSTREAM_PLATFORM_*``, ``CALLSTREAM_NOTIFY_URL`` and
``CALLSTREAM_DISPATCH_*`` on top of the shared :class:`~callstream.settings.Settings`.

Every field is documented in ``docs/dispatcher.md`` (settings table).
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from callstream.contracts.records import RECEIPTS, Receipt
from callstream.settings import Settings


class DispatchSettings(Settings):
    """Everything ``callstream dispatch`` reads (frozen; the service key is a SecretStr)."""

    platform_url: str = Field(
        "https://api.us.webexconnect.io", description="Platform base URL (the sandbox locally)."
    )
    platform_service_key: SecretStr = Field(description="The `key` header (required).")
    notify_url: str | None = Field(None, description="Default notifyUrl: the gateway's URL.")

    dispatch_group_id: str = Field("callstream-dispatcher", description="Consumer group id.")
    dispatch_max_in_flight: int = Field(64, ge=1, description="Platform requests in flight.")
    dispatch_rate: float | None = Field(
        None, gt=0, description="Calls per second across all replicas; unset = no limit."
    )
    dispatch_connect_timeout_s: float = Field(5.0, gt=0, description="HTTP connect timeout.")
    dispatch_request_timeout_s: float = Field(10.0, gt=0, description="HTTP total timeout.")
    dispatch_max_attempts: int = Field(
        10, ge=1, description="Failed attempts (5xx, timeouts) before FAILED + DLQ."
    )
    dispatch_max_age_s: float = Field(
        3600.0, gt=0, description="Retrying stops (FAILED + DLQ) this long after first seen."
    )
    dispatch_backoff_base_s: float = Field(0.2, gt=0, description="First backoff ceiling.")
    dispatch_backoff_cap_s: float = Field(300.0, gt=0, description="Largest backoff ceiling.")
    dispatch_in_memory_retry_max_s: float = Field(
        5.0, ge=0, description="Waits up to this are held in memory; longer go to the retry topic."
    )
    dispatch_retry_after_cap_s: float = Field(60.0, gt=0, description="Retry-After is capped.")
    dispatch_throttle_min_rate: float = Field(
        1.0, gt=0, description="The rate is never lowered below this on throttling."
    )
    dispatch_default_receipts: list[Receipt] = Field(
        default_factory=lambda: list(RECEIPTS),
        description="requestedReceipts when a request names none (JSON list).",
    )
    dispatch_partition_buffer: int = Field(
        1000, ge=1, description="Unfinished records per partition before it is paused."
    )
    dispatch_commit_interval_s: float = Field(0.5, gt=0, description="Offset commit period.")
    dispatch_shutdown_deadline_s: float = Field(
        20.0, ge=0, description="SIGTERM: in-flight work gets this long, then is abandoned."
    )
    dispatch_revoke_deadline_s: float = Field(
        15.0, ge=0, description="Rebalance: in-flight work of revoked partitions gets this long."
    )
    dispatch_probe_interval_s: float = Field(
        10.0, gt=0, description="While paused by 401/404/405: how often the platform is probed."
    )
    dispatch_poll_batch: int = Field(500, ge=1, description="Records per consume() call.")

    @model_validator(mode="after")
    def _coherent(self) -> DispatchSettings:
        if self.dispatch_backoff_base_s > self.dispatch_backoff_cap_s:
            raise ValueError("dispatch_backoff_base_s must not exceed dispatch_backoff_cap_s")
        if not self.platform_service_key.get_secret_value():
            raise ValueError("CALLSTREAM_PLATFORM_SERVICE_KEY must not be empty")
        return self

    @property
    def messages_url(self) -> str:
        return self.platform_url.rstrip("/") + "/v2/messages"
