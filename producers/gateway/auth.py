"""Authentication of callbacks: pure functions, constant-time comparisons, no I/O.

Every check returns ``None`` when the request is authentic, else a short reason fit for a log
line (never the secret, never what the caller sent). Hostile input (any header text, any body)
never raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from producers.gateway.settings import AuthMode, GatewaySettings

_SHA256_PREFIX = "sha256="


def _utf8(text: str) -> bytes:
    # "replace" also covers lone surrogates, which header text decoded by the server may hold
    return text.encode("utf-8", "replace")


def check_basic(authorization: str | None, username: bytes, password: bytes) -> str | None:
    """``Authorization: Basic base64(user:password)``."""
    if not authorization:
        return "missing authorization"
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return "not basic authorization"
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "malformed basic credentials"
    user, sep, given_password = decoded.partition(b":")
    if not sep:
        return "malformed basic credentials"
    # both comparisons always run: no timing hint about which half was wrong
    user_ok = hmac.compare_digest(user, username)
    password_ok = hmac.compare_digest(given_password, password)
    return None if user_ok and password_ok else "wrong basic credentials"


def check_apikey(value: str | None, expected: bytes) -> str | None:
    """The API key header holds exactly the configured key."""
    if not value:
        return "missing api key"
    return None if hmac.compare_digest(_utf8(value.strip()), expected) else "wrong api key"


def hmac_signature(body: bytes, secret: bytes) -> str:
    """Hex HMAC-SHA256 of the raw body, as the platform sends it (without the prefix)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def check_hmac(signature: str | None, body: bytes, secret: bytes) -> str | None:
    """``x-hub-signature``: hex HMAC-SHA256 of the raw body, optionally ``sha256=``-prefixed."""
    if not signature:
        return "missing signature"
    given = signature.strip()
    if given[: len(_SHA256_PREFIX)].lower() == _SHA256_PREFIX:
        given = given[len(_SHA256_PREFIX) :]
    expected = hmac_signature(body, secret)
    return None if hmac.compare_digest(_utf8(given.lower()), expected.encode()) else "bad signature"


@dataclass(frozen=True, slots=True)
class Authenticator:
    """The configured check, split in what headers alone decide and what needs the body."""

    method: AuthMode
    header: str = ""
    username: bytes = b""
    secret: bytes = b""

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Authenticator:
        if settings.auth == "basic":
            return cls(
                "basic",
                "authorization",
                _utf8(settings.basic_username),
                _utf8(settings.basic_password.get_secret_value()),
            )
        if settings.auth == "apikey":
            return cls(
                "apikey", settings.apikey_header, secret=_utf8(settings.apikey.get_secret_value())
            )
        if settings.auth == "hmac":
            return cls(
                "hmac", settings.hmac_header, secret=_utf8(settings.hmac_secret.get_secret_value())
            )
        return cls("none")

    @property
    def needs_body(self) -> bool:
        return self.method == "hmac"

    def check_headers(self, headers: Mapping[str, str]) -> str | None:
        """What can be decided before reading the body (for hmac: that a signature is there)."""
        if self.method == "basic":
            return check_basic(headers.get(self.header), self.username, self.secret)
        if self.method == "apikey":
            return check_apikey(headers.get(self.header), self.secret)
        if self.method == "hmac" and not headers.get(self.header):
            return "missing signature"
        return None

    def check_body(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The body-dependent part (hmac); ``None`` for the other modes."""
        if self.method == "hmac":
            return check_hmac(headers.get(self.header), body, self.secret)
        return None

    def __repr__(self) -> str:
        return f"Authenticator(method={self.method!r})"
