"""The dispatcher's errors, split by what the caller should do.

::

    CallstreamError
    +-- PlatformError                  (callstream.exceptions)
        +-- RetryableError             try again later: 5xx, timeouts, connection errors
        |   +-- ThrottledError         429 / 7020: back off (``retry_after``) and slow down
        +-- PermanentError             the request itself is wrong (400, other 4xx): DLQ
        +-- PlatformUnavailableError   401/403/404/405: our configuration or account is wrong;
                                       pause everything, keep the message, probe, resume
    +-- KafkaDeliveryError             (callstream.exceptions) a result was not acknowledged
    +-- DedupeLoadError                calls.dispatches could not be read on assignment
"""

from __future__ import annotations

from callstream.exceptions import CallstreamError, PlatformError


class RetryableError(PlatformError):
    """Try again later (5xx, timeout, connection error).

    ``ambiguous``: the request may have reached the platform (a timeout after sending), so a
    later 409 means our earlier attempt was accepted.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        ambiguous: bool = False,
    ) -> None:
        self.ambiguous = ambiguous
        super().__init__(message, http_status=http_status, code=code)


class ThrottledError(RetryableError):
    """Over the tenant's rate (429 or code 7020); ``retry_after`` in seconds when given."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, http_status=http_status, code=code)


class PermanentError(PlatformError):
    """The platform refused the request itself (400 and other 4xx): never retried."""


class PlatformUnavailableError(PlatformError):
    """401/403/404/405: not the message's fault. Dispatching pauses until a probe succeeds."""


class DedupeLoadError(CallstreamError):
    """The dedupe state could not be rebuilt from calls.dispatches: never dispatch without it."""
