"""Deterministic ids: RFC 4122 version-5 UUIDs as text, built without a ``uuid.UUID`` object.

Both writers of ``calls.events`` name each event by a UUID 5 of what identifies it, once per
record: ``str(uuid.uuid5(ns, name))`` spends two thirds of its time building and formatting the
UUID object, so this does the same hashing and bit-setting directly (same text; a unit test
compares them).
"""

from __future__ import annotations

import hashlib
import uuid


def uuid5_text(namespace: uuid.UUID | bytes, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``."""
    prefix = namespace.bytes if isinstance(namespace, uuid.UUID) else namespace
    digest = bytearray(hashlib.sha1(prefix + name.encode()).digest()[:16])  # noqa: S324  # UUID 5 is SHA-1 by definition; not a security use
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
