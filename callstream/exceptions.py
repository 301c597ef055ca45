"""The project's error tree. Every error callstream raises derives from :class:`CallstreamError`.

::

    CallstreamError
    +-- ConfigError                 settings are missing or wrong; fix the deployment
    +-- ContractError               a record does not meet the contract (schemas + semantic rules)
    |   +-- DecodeError             the bytes are not a record of any known wire form
    |   +-- ValidationError         decoded, but fields break the schema or the semantic rules
    +-- KafkaDeliveryError          the broker did not acknowledge a write
    +-- PlatformError               the voice platform answered with an error (subpackages refine)

Third-party errors are converted at the boundary with ``raise X(...) from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass


class CallstreamError(Exception):
    """Root of every error raised by callstream."""


class ConfigError(CallstreamError):
    """The configuration is missing something or holds a wrong value."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failing field of a record: where (dotted path) and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ContractError(CallstreamError):
    """A record does not meet the contract. Keeps the raw bytes so it can be dead-lettered."""

    def __init__(
        self,
        message: str,
        errors: tuple[FieldError, ...] = (),
        raw: bytes | None = None,
    ) -> None:
        self.errors = errors
        self.raw = raw
        detail = "; ".join(str(e) for e in errors)
        super().__init__(f"{message}: {detail}" if detail else message)


class DecodeError(ContractError):
    """The bytes are not a record in any known wire form (Avro, Confluent framing, JSON)."""


class ValidationError(ContractError):
    """Decoded, but breaks the schema or the semantic rules; ``errors`` names each field.

    ``partial`` holds what could be read of the record (for reporting its id), when anything.
    """

    def __init__(
        self,
        message: str,
        errors: tuple[FieldError, ...] = (),
        raw: bytes | None = None,
        partial: dict[str, object] | None = None,
    ) -> None:
        self.partial = partial
        super().__init__(message, errors, raw)


class KafkaDeliveryError(CallstreamError):
    """The broker did not acknowledge a write (delivery report error or flush timeout)."""


class PlatformError(CallstreamError):
    """The voice platform answered with an error."""

    def __init__(
        self, message: str, *, http_status: int | None = None, code: str | None = None
    ) -> None:
        self.http_status = http_status
        self.code = code
        super().__init__(message)
