"""Request rules of ``POST /v2/messages`` (contract section 2), each broken rule mapped to the
platform's error code. Pure: a decoded body in, a :class:`CallRequest` or an :class:`ApiError` out
(:func:`sandbox.parsing.parse_request` is the request path's entry: bytes in).

Rules are checked in the order of the contract's table (channel, from, to, request fields,
content), so a request breaking several rules always gets the same code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from sandbox.exceptions import ApiError

E164 = re.compile(r"\+?[1-9][0-9]{6,14}")
_e164 = E164.fullmatch
TEXT_LIMIT = 2000
CALLBACK_DATA_LIMIT = 2000
SEND_AT_EXPIRY = 24 * 3600.0  # sendAt older than this: 7005 Request expired

# requestedReceipts names, normalized (lowercase, no spaces/underscores/dashes)
RECEIPTS = frozenset(
    {
        "offered",
        "accepted",
        "answered",
        "dropped",
        "rejected",
        "released",
        "disconnected",
        "tromboneconnected",
        "trombonereleased",
        "messageexpired",
    }
)
_TTS_REQUIRED = ("ttsProcessor", "language", "voice", "region", "text")
_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (5x faster)


class Destination(NamedTuple):
    msisdn: str
    correlation_id: str | None


class CallRequest(NamedTuple):
    """A valid Make Call request, as much as the sandbox needs of it."""

    sender: str
    destinations: tuple[Destination, ...]
    callback_data: str | None
    notify_url: str | None
    receipts: frozenset[str] | None  # normalized names; None = every event
    content_type: str  # "media" or "tts"


def normalize_receipt(name: str) -> str:
    return name.lower().replace(" ", "").replace("_", "").replace("-", "")


def missing(name: str) -> ApiError:
    return ApiError("7003", f"Mandatory parameter missing: {name}")


def invalid(name: str) -> ApiError:
    return ApiError("7004", f"Invalid parameter - {name}")


def parse_body(raw: bytes, *, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise ApiError("7022", "JSON too large")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError("7000", "Invalid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError("7000", "Invalid JSON")
    return body


def _optional_str(body: dict[str, Any], name: str, other: str | None = None) -> str | None:
    value = body.get(name)
    if value is None and other is not None:
        value = body.get(other)
        name = other
    if value is None or value.__class__ is str:
        return value
    raise invalid(name)


def _required_str(body: dict[str, Any], name: str, label: str | None = None) -> str:
    value = body.get(name)
    if value is None or value == "":
        raise missing(label or name)
    if not isinstance(value, str):
        raise invalid(label or name)
    return value


def _destinations(
    to: Any, default_cid: str | None, *, max_destinations: int, tps: float
) -> tuple[Destination, ...]:
    if to is None:
        raise missing("to")
    if not isinstance(to, list) or not to:
        raise invalid("to")
    out: list[Destination] = []
    for entry in to:
        if not isinstance(entry, dict):
            raise invalid("to")
        msisdns = entry.get("msisdn")
        if msisdns is None:
            raise missing("to.msisdn")
        if not isinstance(msisdns, list) or not msisdns:
            raise invalid("to.msisdn")
        cid = _optional_str(entry, "correlationId", "correlationid")
        cid = default_cid if cid is None else cid
        for msisdn in msisdns:
            if msisdn.__class__ is not str or not _e164(msisdn):
                raise ApiError("7102", "Invalid destination")
            out.append(_new_tuple(Destination, (msisdn, cid)))
    if len(out) > max_destinations or (tps > 0 and len(out) > tps):
        raise ApiError("7009", "Maximum destinations exceeded")
    return tuple(out)


def check_send_at(value: Any, now: float) -> None:
    when: datetime
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            when = datetime.fromtimestamp(float(value), tz=UTC)
        elif isinstance(value, str):
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
        else:
            raise ValueError(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise invalid("sendAt") from exc
    if when.timestamp() < now - SEND_AT_EXPIRY:
        raise ApiError("7005", "Request expired")


def receipts_of(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid("requestedReceipts")
    names: set[str] = set()
    for item in value:
        if not isinstance(item, str) or normalize_receipt(item) not in RECEIPTS:
            raise invalid("requestedReceipts")
        names.add(normalize_receipt(item))
    return frozenset(names)


def _content(content: Any) -> str:
    if content is None:
        raise missing("content")
    if not isinstance(content, dict):
        raise invalid("content")
    ctype = content.get("type")
    if ctype is None or ctype == "":
        raise missing("content.type")
    if ctype.__class__ is not str:
        raise ApiError("7126", "Invalid content type")
    kind = ctype.lower()
    if kind != "tts" and kind != "media":
        raise ApiError("7126", "Invalid content type")
    if kind == "media":
        _required_str(content, "mediaId", "content.mediaId")
        return kind
    get = content.get
    processor: Any = get("ttsProcessor")
    text: Any = get("text")
    language, voice, region = get("language"), get("voice"), get("region")
    if not (
        processor.__class__ is str
        and language.__class__ is str
        and voice.__class__ is str
        and region.__class__ is str
        and text.__class__ is str
        and processor
        and language
        and voice
        and region
        and text
    ):  # something missing or of the wrong type: find the first, in the contract's order
        for name in _TTS_REQUIRED:
            value = get(name)
            if value.__class__ is not str or value == "":
                _required_str(content, name, f"content.{name}")
    if processor.lower() != "azure":
        raise invalid("content.ttsProcessor")
    if len(text) > TEXT_LIMIT:
        raise ApiError("7107", "Length exceeded - text")
    voice_type = get("voiceType")
    if voice_type is not None and (
        not isinstance(voice_type, str) or voice_type.lower() not in ("standard", "neural")
    ):
        raise invalid("content.voiceType")
    gender = get("gender")
    if gender is not None and not isinstance(gender, str):
        raise invalid("content.gender")
    return kind


def _notify_url(body: dict[str, Any]) -> str | None:
    name, value = "notifyUrl", body.get("notifyUrl")
    if value is None:
        name, value = "notifyurl", body.get("notifyurl")
        if value is None:
            return None
    return checked_notify_url(name, value)


def checked_notify_url(name: str, value: Any) -> str:
    """``value`` of the field ``name`` (either spelling) if it is an http(s) URL, else 7004."""
    if (
        not isinstance(value, str)
        or value != value.strip()
        or not value.startswith(("http://", "https://"))
        or len(value.split("://", 1)[1]) == 0
    ):
        raise invalid(name)
    return value


def validate(body: dict[str, Any], max_destinations: int, tps: float, now: float) -> CallRequest:
    """Check a decoded body against the Make Call rules; raise :class:`ApiError` on the first
    broken one. ``now`` is the epoch time in seconds (for sendAt).

    Written for the request path (arguments by position there): one ``body.get`` per field, the
    usual shapes tested inline (exact classes, as decoded by orjson) and the helpers only called
    for the unusual ones."""
    get = body.get
    channel = get("channel")
    if channel != "voice":
        if channel is None or channel == "":
            raise missing("channel")
        if not isinstance(channel, str) or channel.lower() != "voice":
            raise invalid("channel")
    sender = get("from")
    if sender.__class__ is not str or not _e164(sender):
        if sender is None or sender == "":
            raise missing("from")
        raise ApiError("7101", "Invalid sender")
    default_cid = get("correlationId")  # as _optional_str(body, "correlationId", "correlationid")
    if default_cid is None:
        default_cid = get("correlationid")
        if default_cid is not None and default_cid.__class__ is not str:
            raise invalid("correlationid")
    elif default_cid.__class__ is not str:
        raise invalid("correlationId")
    to = get("to")
    if (
        to.__class__ is list
        and len(to) == 1
        and (entry := to[0]).__class__ is dict
        and (msisdns := entry.get("msisdn")).__class__ is list
        and len(msisdns) == 1
        and (msisdn := msisdns[0]).__class__ is str
        and _e164(msisdn)
        and max_destinations >= 1
        and not 0 < tps < 1
    ):  # one valid destination, within the limits: the common case, checked as below
        cid = entry.get("correlationId")
        if cid.__class__ is not str:
            cid = _optional_str(entry, "correlationId", "correlationid")
        destinations: tuple[Destination, ...] = (
            _new_tuple(Destination, (msisdn, default_cid if cid is None else cid)),
        )
    else:
        destinations = _destinations(to, default_cid, max_destinations=max_destinations, tps=tps)
    priority = get("priority")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 3
    ):
        raise invalid("priority")
    callback_data = get("callbackData")
    if callback_data is not None:
        if not isinstance(callback_data, str):
            raise invalid("callbackData")
        if len(callback_data) > CALLBACK_DATA_LIMIT:
            raise ApiError("7107", "Length exceeded - callbackData")
    notify_url = _notify_url(body) if "notifyUrl" in body or "notifyurl" in body else None
    if get("notifyUrlAuthId") is not None:
        _optional_str(body, "notifyUrlAuthId")
    receipts = get("requestedReceipts")
    if receipts is not None:
        receipts = receipts_of(receipts)
    send_at = get("sendAt")
    if send_at is not None:
        check_send_at(send_at, now)
    policy = get("contactPolicy")
    if policy is not None and not isinstance(policy, dict):
        raise invalid("contactPolicy")
    content_type = _content(get("content"))
    return _new_tuple(
        CallRequest,
        (sender, destinations, callback_data, notify_url, receipts, content_type),
    )
