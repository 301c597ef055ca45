"""Unit tests of the gateway's authentication checks (pure, no I/O)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from producers.gateway.auth import (
    Authenticator,
    check_apikey,
    check_basic,
    check_hmac,
    hmac_signature,
)
from producers.gateway.settings import GatewaySettings

SECRET = b"s3cret-\xc3\xa9"
BODY = b'{"deliveryInfoNotification": {"transid": "abc"}}'


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_accepts_the_right_credentials() -> None:
    assert check_basic(basic("platform", "pw:with:colons"), b"platform", b"pw:with:colons") is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing authorization"),
        ("", "missing authorization"),
        ("Bearer abc", "not basic authorization"),
        ("Basic !!!not-base64", "malformed basic credentials"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "malformed basic credentials"),
        (basic("platform", "wrong"), "wrong basic credentials"),
        (basic("other", "pw"), "wrong basic credentials"),
    ],
)
def test_basic_rejects(header: str | None, reason: str) -> None:
    assert check_basic(header, b"platform", b"pw") == reason


def test_apikey() -> None:
    assert check_apikey("k-123", b"k-123") is None
    assert check_apikey(" k-123 ", b"k-123") is None
    assert check_apikey("k-124", b"k-123") == "wrong api key"
    assert check_apikey(None, b"k-123") == "missing api key"
    assert check_apikey("", b"k-123") == "missing api key"


@pytest.mark.parametrize(
    "header",
    [
        hmac_signature(BODY, SECRET),
        "sha256=" + hmac_signature(BODY, SECRET),
        "SHA256=" + hmac_signature(BODY, SECRET).upper(),
        "  sha256=" + hmac_signature(BODY, SECRET) + " ",
    ],
)
def test_hmac_accepts_hex_with_or_without_prefix(header: str) -> None:
    assert check_hmac(header, BODY, SECRET) is None


def test_hmac_rejects() -> None:
    good = hmac_signature(BODY, SECRET)
    assert check_hmac(None, BODY, SECRET) == "missing signature"
    assert check_hmac(good, BODY + b" ", SECRET) == "bad signature"
    assert check_hmac(good, BODY, b"other") == "bad signature"
    assert check_hmac("sha1=" + good, BODY, SECRET) == "bad signature"
    assert check_hmac(good[:-1], BODY, SECRET) == "bad signature"


def test_known_vector() -> None:
    # RFC 4231 test case 2
    assert (
        hmac_signature(b"what do ya want for nothing?", b"Jefe")
        == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def _settings(**kwargs: object) -> GatewaySettings:
    return GatewaySettings(**kwargs)  # type: ignore[arg-type]


def test_authenticator_modes() -> None:
    none = Authenticator.from_settings(_settings())
    assert none.check_headers({}) is None
    assert none.check_body({}, b"x") is None

    b = Authenticator.from_settings(
        _settings(auth="basic", basic_username="u", basic_password=SecretStr("p"))
    )
    assert b.check_headers({"authorization": basic("u", "p")}) is None
    assert b.check_headers({}) == "missing authorization"

    k = Authenticator.from_settings(
        _settings(auth="apikey", apikey_header="x-key", apikey=SecretStr("k"))
    )
    assert k.check_headers({"x-key": "k"}) is None
    assert k.check_headers({"x-api-key": "k"}) == "missing api key"

    h = Authenticator.from_settings(_settings(auth="hmac", hmac_secret=SecretStr("s")))
    assert h.needs_body
    assert h.check_headers({}) == "missing signature"
    sig = {"x-hub-signature": "sha256=" + hmac_signature(BODY, b"s")}
    assert h.check_headers(sig) is None
    assert h.check_body(sig, BODY) is None
    assert h.check_body(sig, BODY + b"x") == "bad signature"


def test_secrets_do_not_show_in_repr() -> None:
    s = _settings(auth="hmac", hmac_secret=SecretStr("topsecret"))
    assert "topsecret" not in repr(s)
    assert "topsecret" not in repr(Authenticator.from_settings(s))
    assert "topsecret" not in str(s.redacted())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"auth": "basic"},
        {"auth": "basic", "basic_username": "u"},
        {"auth": "apikey"},
        {"auth": "hmac"},
        {"path": "callbacks"},
    ],
)
def test_incomplete_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _settings(**kwargs)


HOSTILE_TEXT = st.text(max_size=200)


@given(header=st.one_of(st.none(), HOSTILE_TEXT), body=st.binary(max_size=500))
def test_hostile_input_never_raises_and_is_refused(header: str | None, body: bytes) -> None:
    assert check_basic(header, b"platform", b"pw") is not None
    assert check_apikey(header, b"the-real-key-nobody-guesses") is not None
    assert check_hmac(header, body, SECRET) is not None


@given(headers=st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=5), body=st.binary())
def test_authenticators_never_raise(headers: dict[str, str], body: bytes) -> None:
    for kwargs in (
        {"auth": "basic", "basic_username": "u", "basic_password": SecretStr("p")},
        {"auth": "apikey", "apikey": SecretStr("k")},
        {"auth": "hmac", "hmac_secret": SecretStr("s")},
    ):
        auth = Authenticator.from_settings(_settings(**kwargs))
        auth.check_headers(headers)
        auth.check_body(headers, body)


@given(body=st.binary(max_size=2000), secret=st.binary(min_size=1, max_size=64))
def test_hmac_signed_bodies_pass_and_tampered_fail(body: bytes, secret: bytes) -> None:
    sig = hmac_signature(body, secret)
    assert check_hmac("sha256=" + sig, body, secret) is None
    assert check_hmac(sig, body + b"\x00", secret) == "bad signature"
