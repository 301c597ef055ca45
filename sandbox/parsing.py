"""Make Call bytes to a :class:`CallRequest`: the request path's entry.

A request of the usual shape (the fields of contract section 2 with the types it gives them) is
decoded and type-checked in one pass by msgspec into the structs below, and only what types
cannot say is checked here (sender and number patterns, lengths, the TTS fields, the spellings).
Anything else (a wrong type, a missing field, several destinations, a rule broken) goes to the
rule-by-rule :func:`sandbox.validation.validate`, which finds the first broken rule in the
contract's order and so gives the platform's code. The usual path only ever accepts what
``validate`` accepts, with an equal result (a differential test holds it to that), so a request
gets the same answer whichever path it takes.

Why: the request path is the sandbox's whole cost in a benchmark; orjson plus the rule-by-rule
checks cost ~3 us per request, the msgspec pass ~1.3 us (``docs/sandbox.md``, "Performance").
"""

from __future__ import annotations

from typing import Any

import msgspec

from sandbox.exceptions import ApiError
from sandbox.validation import (
    CALLBACK_DATA_LIMIT,
    E164,
    TEXT_LIMIT,
    CallRequest,
    Destination,
    check_send_at,
    checked_notify_url,
    parse_body,
    receipts_of,
    validate,
)

_e164 = E164.fullmatch
_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__


class _To(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    msisdn: list[str]
    correlationId: str | None = None  # noqa: N815 - the platform's field names
    correlationid: str | None = None


class _Content(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    type: str
    ttsProcessor: str | None = None  # noqa: N815
    language: str | None = None
    voice: str | None = None
    region: str | None = None
    text: str | None = None
    mediaId: str | None = None  # noqa: N815
    voiceType: str | None = None  # noqa: N815
    gender: str | None = None


class _Body(msgspec.Struct, gc=False, forbid_unknown_fields=True, rename={"sender": "from"}):
    channel: str
    sender: str
    to: list[_To]
    content: _Content
    correlationId: str | None = None  # noqa: N815
    correlationid: str | None = None
    priority: int | None = None
    callbackData: str | None = None  # noqa: N815
    notifyUrl: str | None = None  # noqa: N815
    notifyurl: str | None = None
    notifyUrlAuthId: str | None = None  # noqa: N815
    requestedReceipts: list[str] | None = None  # noqa: N815
    sendAt: Any = None  # noqa: N815 - a number or a string: checked by check_send_at
    contactPolicy: Any = None  # noqa: N815 - any present: left to validate()


_decode = msgspec.json.Decoder(_Body).decode


def parse_request(
    raw: bytes, max_bytes: int, max_destinations: int, tps: float, now: float
) -> CallRequest:
    """Bytes to a valid request, or :class:`ApiError` with the platform's code."""
    if len(raw) > max_bytes:
        raise ApiError("7022", "JSON too large")
    try:
        usual = usual_request(raw, max_destinations, tps, now)
    except (msgspec.DecodeError, ApiError, RecursionError):  # ValidationError is a DecodeError
        usual = None
    if usual is not None:
        return usual
    return validate(parse_body(raw, max_bytes=max_bytes), max_destinations, tps, now)


def usual_request(raw: bytes, max_destinations: int, tps: float, now: float) -> CallRequest | None:
    """``raw`` as a valid request when it has the usual shape: one destination, the types of
    the contract, every rule kept; None (or a msgspec or API error) when it is not so, in which
    case :func:`validate` decides."""
    body = _decode(raw)
    if body.channel != "voice" or not _e164(body.sender) or body.contactPolicy is not None:
        return None
    to = body.to
    if len(to) != 1 or max_destinations < 1 or 0 < tps < 1:
        return None
    entry = to[0]
    msisdns = entry.msisdn
    if len(msisdns) != 1 or not _e164(msisdn := msisdns[0]):
        return None
    cid = entry.correlationId
    if cid is None:
        cid = entry.correlationid
        if cid is None:
            cid = body.correlationId
            if cid is None:
                cid = body.correlationid
    priority = body.priority
    if priority is not None and not 1 <= priority <= 3:
        return None
    callback_data = body.callbackData
    if callback_data is not None and len(callback_data) > CALLBACK_DATA_LIMIT:
        return None
    notify_url = body.notifyUrl
    if notify_url is not None:
        notify_url = checked_notify_url("notifyUrl", notify_url)
    elif body.notifyurl is not None:
        notify_url = checked_notify_url("notifyurl", body.notifyurl)
    receipts = None if body.requestedReceipts is None else receipts_of(body.requestedReceipts)
    if body.sendAt is not None:
        check_send_at(body.sendAt, now)
    content = body.content
    kind = content.type.lower()
    if kind == "tts":
        processor, text = content.ttsProcessor, content.text
        if not (processor and content.language and content.voice and content.region and text):
            return None
        if processor.lower() != "azure" or len(text) > TEXT_LIMIT:
            return None
        voice_type = content.voiceType
        if voice_type is not None and voice_type.lower() not in ("standard", "neural"):
            return None
    elif kind != "media" or not content.mediaId:
        return None
    destinations = (_new_tuple(Destination, (msisdn, cid)),)
    return _new_tuple(
        CallRequest,
        (body.sender, destinations, callback_data, notify_url, receipts, kind),
    )
