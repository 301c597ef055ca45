"""Hostile input: random bytes and random JSON never raise anything but the project's errors."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstream.contracts import (
    CALL_EVENT,
    CALL_REQUEST,
    DISPATCH_RESULT,
    Codec,
    parse_call_request,
)
from callstream.contracts.codecs import SINGLE_OBJECT_MARKER
from callstream.contracts.schemas import default_store
from callstream.exceptions import ContractError
from producers.publisher import prepare_intent

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)
FIELDS = [f["name"] for f in default_store().get(CALL_REQUEST).parsed["fields"]]
request_like = st.dictionaries(
    st.sampled_from([*FIELDS, "type", "media_id", "text", "extra"]), json_values, max_size=14
)


def _only_contract_errors(raw: bytes, name: str = CALL_REQUEST) -> None:
    try:
        if name == CALL_REQUEST:
            parse_call_request(raw)
        else:
            Codec(name).decode(raw)
    except ContractError as exc:
        assert exc.raw == raw or exc.raw is None
        assert str(exc)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    _only_contract_errors(raw)


@settings(max_examples=300)
@given(st.binary(max_size=300), st.sampled_from([CALL_REQUEST, DISPATCH_RESULT, CALL_EVENT]))
def test_random_body_behind_a_valid_single_object_header(body: bytes, name: str) -> None:
    """The hardest case for a decoder: the right marker and fingerprint, garbage after them."""
    raw = SINGLE_OBJECT_MARKER + Codec(name).schema.fingerprint + body
    _only_contract_errors(raw, name)


@settings(max_examples=300)
@given(json_values)
def test_random_json(value: Any) -> None:
    _only_contract_errors(json.dumps(value).encode())


@settings(max_examples=500)
@given(request_like)
def test_request_shaped_json(value: dict[str, Any]) -> None:
    _only_contract_errors(json.dumps(value).encode())
    try:
        prepare_intent(value)
    except ContractError as exc:
        assert exc.errors, "a rejected intent names at least one failing field"
