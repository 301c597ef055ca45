"""Typed shapes of the Avro records, as the codecs read and write them (plain dicts: no per-message
object construction on the hot paths). Timestamps are timezone-aware UTC datetimes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NotRequired, TypedDict, get_args

Priority = Literal["LOW", "MEDIUM", "HIGH"]
VoiceType = Literal["STANDARD", "NEURAL"]
Receipt = Literal[
    "OFFERED",
    "ACCEPTED",
    "ANSWERED",
    "DROPPED",
    "REJECTED",
    "RELEASED",
    "DISCONNECTED",
    "TROMBONE_CONNECTED",
    "TROMBONE_RELEASED",
    "MESSAGE_EXPIRED",
]
RECEIPTS: tuple[Receipt, ...] = get_args(Receipt)
DispatchOutcome = Literal["QUEUED", "REJECTED", "INVALID", "EXPIRED", "DUPLICATE", "FAILED"]
EventType = Literal[
    "DISPATCHED",
    "DISPATCH_FAILED",
    "OFFERED",
    "ACCEPTED",
    "ANSWERED",
    "DROPPED",
    "REJECTED",
    "RELEASED",
    "DISCONNECTED",
    "TROMBONE_CONNECTED",
    "TROMBONE_RELEASED",
    "EXPIRED",
    "FAILED",
    "UNKNOWN",
]
EventSource = Literal["DISPATCHER", "PLATFORM"]
EventReason = Literal["NO_ANSWER", "BUSY", "REJECTED", "OTHER"]


class MediaContent(TypedDict):
    media_id: str


class TtsContent(TypedDict):
    text: str
    language: str
    voice: str
    region: str
    voice_type: VoiceType | None
    gender: str | None
    tts_processor: str


class CallRequest(TypedDict):
    correlation_id: str
    caller_id: str
    msisdn: str
    content: MediaContent | TtsContent
    priority: Priority | None
    callback_data: str | None
    notify_url: str | None
    notify_url_auth_id: str | None
    requested_receipts: list[Receipt]
    send_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    attributes: dict[str, str]


class DispatchResult(TypedDict):
    correlation_id: str
    message_id: str | None
    outcome: DispatchOutcome
    http_status: int | None
    platform_code: str | None
    description: str | None
    attempts: int
    msisdn: str
    requested_at: datetime
    completed_at: datetime
    attributes: dict[str, str]
    callback_data: NotRequired[str | None]
    source_topic: NotRequired[str | None]
    source_partition: NotRequired[int | None]
    source_offset: NotRequired[int | None]


class CallEvent(TypedDict):
    event_id: str
    event_type: EventType
    source: EventSource
    message_id: str | None
    correlation_id: str | None
    msisdn: str | None
    callback_data: str | None
    platform_code: int | None
    platform_status: str | None
    reason: EventReason | None
    description: str | None
    occurred_at: datetime
    received_at: datetime
    terminal: bool
    attributes: dict[str, str]


def is_tts(content: MediaContent | TtsContent) -> bool:
    return "text" in content
