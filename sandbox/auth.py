"""Request authentication (contract section 1): the ``key`` header, or ``Authorization: Bearer``
with an HS256 JWT (``iss`` = service id, ``iat`` in seconds, key = base64-decoded service
secret). When a Bearer token is present it decides alone: a JWT wins over ``key``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from sandbox.settings import Behaviour

CLOCK_SKEW_SECONDS = 60.0


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def make_jwt(service_id: str, secret_b64: str, iat: float) -> str:
    """An HS256 JWT as the platform expects (for tests and clients)."""

    def enc(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = enc(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    payload = enc(orjson.dumps({"iss": service_id, "iat": int(iat)}))
    mac = hmac.new(base64.b64decode(secret_b64), f"{head}.{payload}".encode(), hashlib.sha256)
    return f"{head}.{payload}.{enc(mac.digest())}"


def verify_jwt(token: str, b: Behaviour, now: float) -> bool:
    try:
        head, payload, signature = token.split(".")
        header: Any = orjson.loads(_b64url(head))
        claims: Any = orjson.loads(_b64url(payload))
        key = base64.b64decode(b.jwt_secret.get_secret_value())
        given = _b64url(signature)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return False
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return False
    expected = hmac.new(key, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, given):
        return False
    if not isinstance(claims, dict) or claims.get("iss") != b.jwt_service_id:
        return False
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        return False
    return now - b.jwt_max_age_seconds <= iat <= now + CLOCK_SKEW_SECONDS


def authorized(headers: Mapping[str, str], b: Behaviour, now: float) -> bool:
    authorization = headers.get("Authorization")
    if authorization is not None and authorization[:7].lower() == "bearer ":
        return verify_jwt(authorization[7:].strip(), b, now)
    key = headers.get("key")
    if key is None:
        return False
    return hmac.compare_digest(key.encode(), b.service_key.get_secret_value().encode())
