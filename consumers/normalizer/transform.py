"""One raw callback record -> one CallEvent (Avro bytes) or one dead-letter decision.

Pure and fast: no I/O, no pydantic, no per-message allocation beyond the event dict itself. The
pipeline runs it in three steps per batch so that the dispatches lookup can be done once per
batch: :meth:`Transformer.build` (parse and map), :func:`fill_from_dispatch`, :meth:`encode`.
:meth:`Transformer.decide` chains them for one record and never raises: anything unexpected
becomes a dead-letter decision too (the hypothesis tests hold it to that).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import NamedTuple

from callstream.contracts import call_event_codec
from callstream.contracts.codecs import Codec
from callstream.contracts.records import CallEvent
from consumers.normalizer.callback_parser import parse_callback
from consumers.normalizer.event_id import event_id
from consumers.normalizer.exceptions import InvalidCallbackError
from consumers.normalizer.mapping import classify, normalize_msisdn, parse_code, parse_timestamp


class DispatchInfo(NamedTuple):
    """What ``calls.dispatches`` knows of a message_id that callbacks may lack."""

    correlation_id: str
    callback_data: str | None
    msisdn: str | None
    attributes: dict[str, str]


class Emit(NamedTuple):  # one per record: cheaper to build than a frozen dataclass
    event: CallEvent
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    error: BaseException
    stage: str


def _utc_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def fill_from_dispatch(event: CallEvent, info: DispatchInfo | None) -> None:
    """Set what the callback left out (never overwrite what it said)."""
    if info is None:
        return
    if event["correlation_id"] is None:
        event["correlation_id"] = info.correlation_id
    if event["callback_data"] is None:
        event["callback_data"] = info.callback_data
    if event["msisdn"] is None:
        event["msisdn"] = info.msisdn
    if not event["attributes"]:
        event["attributes"] = dict(info.attributes)


def event_key(event: CallEvent) -> bytes | None:
    """calls.events key: message_id, else correlation_id."""
    key = event["message_id"] or event["correlation_id"]
    return key.encode() if key is not None else None


class Transformer:
    def __init__(self, naive_zone: tzinfo = UTC, codec: Codec | None = None) -> None:
        self.naive_zone = naive_zone
        self.codec = codec or call_event_codec()
        self._encode: Callable[[CallEvent], bytes] = self.codec.encode
        self.timestamp_fallbacks = 0  # callbacks whose timeStamp was missing or unreadable
        self.bad_destinations = 0  # destinations that were not E.164 numbers

    def build(self, raw: bytes | None, received_at_ms: int) -> CallEvent:
        """Parse and map; raises :class:`InvalidCallbackError` for what cannot be an event."""
        callback = parse_callback(raw if raw is not None else b"")
        code = parse_code(callback.code)
        event_type, reason, terminal = classify(callback.status, code)
        occurred = parse_timestamp(callback.timestamp, self.naive_zone)
        occurred_ms: int | None = None
        if occurred is None:
            self.timestamp_fallbacks += 1
            occurred = _utc_from_ms(received_at_ms)
        else:
            occurred_ms = int(occurred.timestamp() * 1000)
        msisdn = normalize_msisdn(callback.destination)
        if msisdn is None and callback.destination is not None:
            self.bad_destinations += 1
        return {
            "event_id": event_id(
                transid=callback.transid,
                correlation_id=callback.correlation_id,
                status=callback.status,
                code=str(code) if code is not None else callback.code,
                occurred_ms=occurred_ms,
                timestamp=callback.timestamp,
                msisdn=msisdn,
            ),
            "event_type": event_type,
            "source": "PLATFORM",
            "message_id": callback.transid,
            "correlation_id": callback.correlation_id,
            "msisdn": msisdn,
            "callback_data": callback.callback_data,
            "platform_code": code,
            "platform_status": callback.status,
            "reason": reason,
            "description": callback.description,
            "occurred_at": occurred,
            "received_at": _utc_from_ms(received_at_ms),
            "terminal": terminal,
            "attributes": {},
        }

    def encode(self, event: CallEvent) -> Emit:
        return Emit(event, event_key(event), self._encode(event))

    def decide(
        self, raw: bytes | None, received_at_ms: int, info: DispatchInfo | None = None
    ) -> Emit | DeadLetter:
        """The whole transformation of one record; never raises."""
        try:
            event = self.build(raw, received_at_ms)
        except InvalidCallbackError as exc:
            return DeadLetter(exc, exc.stage)
        except Exception as exc:  # a bug must not stop the stream: dead-letter, replay later
            return DeadLetter(exc, "transform")
        fill_from_dispatch(event, info)
        try:
            return self.encode(event)
        except Exception as exc:  # e.g. a value Avro refuses: dead-letter the original bytes
            return DeadLetter(exc, "encode")
