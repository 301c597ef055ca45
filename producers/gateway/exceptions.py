"""Errors of the gateway.

::

    CallstreamError
    +-- GatewayError
        +-- WriteNotConfirmedError      the broker did not acknowledge the write: answer 503
            |                           (also a KafkaDeliveryError), the platform retries
            +-- WriteTimeoutError       no delivery report within write_timeout_seconds
            +-- DeliveryFailedError     the delivery report carried an error (``code``)
            +-- ProducerBusyError       the producer's local queue is full
            +-- WriterClosedError       the writer is stopping or hit a fatal error
"""

from __future__ import annotations

from callstream.exceptions import CallstreamError, KafkaDeliveryError


class GatewayError(CallstreamError):
    """Root of the gateway's errors."""


class WriteNotConfirmedError(GatewayError, KafkaDeliveryError):
    """The write of a callback was not acknowledged; the caller answers 503."""


class WriteTimeoutError(WriteNotConfirmedError):
    """No delivery report arrived within the configured write timeout."""


class DeliveryFailedError(WriteNotConfirmedError):
    """The delivery report carried an error."""

    def __init__(self, message: str, *, code: str | None = None, retriable: bool = True) -> None:
        self.code = code
        self.retriable = retriable
        super().__init__(message)


class ProducerBusyError(WriteNotConfirmedError):
    """librdkafka's local queue is full (the broker is slower than the callbacks arrive)."""


class WriterClosedError(WriteNotConfirmedError):
    """The writer is closed, stopping, or its producer hit a fatal error."""
