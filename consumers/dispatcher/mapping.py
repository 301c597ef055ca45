"""A valid CallRequest -> the platform's Make Call body (platform-contract.md section 2).

One canonical form is sent: ``channel`` "voice", ``to`` with one destination carrying the
correlation id, TTS fields inside ``content`` with ``type`` "TTS", receipts in the docs' Title
case, ``sendAt`` as ISO 8601 UTC with milliseconds, ``priority`` 1..3.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from callstream.contracts.records import CallRequest, Receipt, is_tts

RECEIPT_NAMES: dict[str, str] = {
    "OFFERED": "Offered",
    "ACCEPTED": "Accepted",
    "ANSWERED": "Answered",
    "DROPPED": "Dropped",
    "REJECTED": "Rejected",
    "RELEASED": "Released",
    "DISCONNECTED": "Disconnected",
    "TROMBONE_CONNECTED": "Trombone Connected",
    "TROMBONE_RELEASED": "Trombone Released",
    "MESSAGE_EXPIRED": "Message Expired",
}
PRIORITIES = {"LOW": 1, "MEDIUM": 2, "HIGH": 3}


def iso_utc(moment: datetime) -> str:
    """``2026-11-29T20:10:00.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def platform_body(
    request: CallRequest,
    *,
    default_notify_url: str | None,
    default_receipts: Sequence[Receipt],
) -> dict[str, Any]:
    """The JSON object POSTed to ``/v2/messages`` for ``request``."""
    cid = request["correlation_id"]
    content_in = request["content"]
    content: dict[str, Any]
    if is_tts(content_in):
        tts: Any = content_in
        content = {
            "type": "TTS",
            "ttsProcessor": tts.get("tts_processor") or "Azure",
            "language": tts["language"],
            "voice": tts["voice"],
            "region": tts["region"],
            "text": tts["text"],
        }
        if tts.get("voice_type"):
            content["voiceType"] = str(tts["voice_type"]).lower()
        if tts.get("gender"):
            content["gender"] = tts["gender"]
    else:
        media: Any = content_in
        content = {"type": "media", "mediaId": media["media_id"]}
    body: dict[str, Any] = {
        "channel": "voice",
        "from": request["caller_id"],
        "to": [{"msisdn": [request["msisdn"]], "correlationId": cid}],
        "correlationId": cid,
        "content": content,
    }
    receipts = request["requested_receipts"] or list(default_receipts)
    if receipts:
        body["requestedReceipts"] = [RECEIPT_NAMES[r] for r in receipts]
    notify_url = request["notify_url"] or default_notify_url
    if notify_url:
        body["notifyUrl"] = notify_url.strip()
    if request["notify_url_auth_id"]:
        body["notifyUrlAuthId"] = request["notify_url_auth_id"]
    if request["send_at"] is not None:
        body["sendAt"] = iso_utc(request["send_at"])
    if request["priority"] is not None:
        body["priority"] = PRIORITIES[request["priority"]]
    if request["callback_data"] is not None:
        body["callbackData"] = request["callback_data"]
    return body


def encode_body(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)
