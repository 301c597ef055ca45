"""Errors of the producers package (publisher); the gateway has its own beside it."""

from __future__ import annotations

from callstream.exceptions import KafkaDeliveryError


class PublishError(KafkaDeliveryError):
    """A call intent was valid but the broker did not acknowledge it."""
