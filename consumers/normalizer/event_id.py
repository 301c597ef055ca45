"""Deterministic event ids: the same callback, delivered twice by the platform, gets the same id.

The id is a UUID version 5 over the fields that identify one event of one call, each normalized
so that harmless differences between two deliveries (key order, whitespace, ``7401`` vs
``"7401"``, ``+`` or not, ``Released`` vs ``RELEASED``) do not change it::

    uuid5(NAMESPACE, "<transid or c:correlationid>|<STATUS>|<code>|<when>|<digits of destination>")

``when`` is the timestamp in UTC epoch milliseconds when it parsed, else the raw text. Two
different events of one call always differ in status or timestamp in the documented sequences.
"""

from __future__ import annotations

import uuid
from typing import Final

from callstream.ids import uuid5_text

NAMESPACE: Final = uuid.UUID("5f0c8a52-6f7e-4d6a-9a35-2f1c0b7d8e11")  # callstream callbacks
_NAMESPACE_BYTES: Final = NAMESPACE.bytes


def event_id(
    *,
    transid: str | None,
    correlation_id: str | None,
    status: str | None,
    code: str | None,
    occurred_ms: int | None,
    timestamp: str | None,
    msisdn: str | None,
) -> str:
    call = transid if transid is not None else f"c:{correlation_id}"
    when = str(occurred_ms) if occurred_ms is not None else f"raw:{timestamp}"
    name = f"{call}|{(status or '').upper()}|{code or ''}|{when}|{msisdn or ''}"
    return uuid5_text(_NAMESPACE_BYTES, name)
