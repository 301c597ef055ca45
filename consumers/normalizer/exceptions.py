"""The normalizer's errors.

::

    CallstreamError
    +-- ContractError
    |   +-- InvalidCallbackError        a callback body the normalizer cannot turn into an event
    |       +-- CallbackNotJsonError    not JSON at all (the platform's own samples sometimes)
    |       +-- CallbackShapeError      JSON, but not the callback shape, or nothing to identify
    +-- NormalizerError                 the normalizer itself cannot go on
        +-- ProducerFencedError         another instance took over our transactional id: exit
        +-- TransactionAbortedError     a transaction was aborted; its records will be re-read

Bad input is never fatal: an :class:`InvalidCallbackError` sends the original bytes to the
dead-letter topic (``error.class`` names the subclass) and the loop goes on.
"""

from __future__ import annotations

from callstream.exceptions import CallstreamError, ContractError, FieldError


class InvalidCallbackError(ContractError):
    """A callback body that cannot become a CallEvent; keeps ``raw`` for the dead-letter record."""

    stage = "parse"


class CallbackNotJsonError(InvalidCallbackError):
    """The body is not valid JSON (UTF-8)."""


class CallbackShapeError(InvalidCallbackError):
    """Valid JSON, but not a callback: wrong structure, wrong types, or nothing identifies it."""

    @classmethod
    def field(cls, field: str, reason: str, raw: bytes | None = None) -> CallbackShapeError:
        return cls("not a platform callback", (FieldError(field, reason),), raw=raw)


class NormalizerError(CallstreamError):
    """The normalizer cannot go on as it is."""


class ProducerFencedError(NormalizerError):
    """A newer instance with the same transactional id fenced this one: stop without committing."""


class TransactionAbortedError(NormalizerError):
    """A transaction was aborted; the consumer was rewound so its records are processed again."""
