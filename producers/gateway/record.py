"""A callback body turned into the Kafka record written to ``calls.callbacks.raw``.

The value is the body, byte for byte. The key is the ``transid`` (the platform's message id)
when the body is a JSON object holding ``deliveryInfoNotification.transid``, else no key. Request
metadata travels in headers (names from :mod:`callstream.headers`).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from callstream import headers as h


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]
    request_id: str


def callback_key(body: bytes) -> bytes | None:
    """``deliveryInfoNotification.transid`` when the body parses, else ``None``. Never raises."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    notification = doc.get("deliveryInfoNotification")
    if not isinstance(notification, dict):
        return None
    transid = notification.get("transid")
    if isinstance(transid, bool):
        return None
    if isinstance(transid, str) and transid:
        return transid.encode("utf-8", "replace")
    if isinstance(transid, int):
        return str(transid).encode()
    return None


def build_record(
    body: bytes,
    *,
    request_id: str,
    received_at_ms: int,
    remote_addr: str | None,
    content_type: str | None,
    auth_method: str,
) -> CallbackRecord:
    headers: list[tuple[str, bytes]] = [
        (h.RECEIVED_AT, str(received_at_ms).encode()),
        (h.REQUEST_ID, request_id.encode()),
        (h.AUTH_METHOD, auth_method.encode()),
    ]
    if remote_addr:
        headers.append((h.REMOTE_ADDR, remote_addr.encode("utf-8", "replace")))
    if content_type is not None:
        headers.append((h.CONTENT_TYPE, content_type.encode("utf-8", "replace")))
    return CallbackRecord(
        value=body, key=callback_key(body), headers=headers, request_id=request_id
    )
