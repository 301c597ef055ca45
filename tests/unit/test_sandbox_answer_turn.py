"""The Make Call handler records and builds its answer, then waits one turn of the event loop
before handing it to aiohttp (so the answers to requests that arrived together leave in a
burst): stepped by hand, the handler suspends exactly once, after the ledger has the request."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from sandbox.app import make_call_handler
from sandbox.settings import SandboxSettings
from sandbox.state import SandboxState

BODY = {
    "channel": "voice",
    "from": "+14155550100",
    "to": [{"msisdn": ["+14155550123"], "correlationId": "turn-1"}],
    "content": {
        "type": "tts",
        "ttsProcessor": "Azure",
        "language": "en-US",
        "voice": "GuyNeural",
        "region": "Canada",
        "text": "hello",
    },
}


def _step_through(raw: bytes, key: str) -> tuple[int, int, int]:
    """(suspensions, requests recorded at the first suspension, HTTP status)."""
    state = SandboxState(SandboxSettings(callbacks=False))
    loop = asyncio.new_event_loop()
    try:
        payload = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
        payload.feed_data(raw)
        payload.feed_eof()
        request = make_mocked_request(
            "POST", "/v2/messages", headers={"key": key}, payload=payload, loop=loop
        )
        step = make_call_handler(state)(request).__await__()
        suspensions, recorded = 0, -1
        try:
            while True:
                step.send(None)
                if suspensions == 0:
                    recorded = state.ledger.request_seq
                suspensions += 1
        except StopIteration as done:
            return suspensions, recorded, done.value.status
    finally:
        loop.close()


def test_a_call_is_recorded_before_the_turn_and_answered_after_it() -> None:
    key = SandboxSettings().service_key.get_secret_value()
    assert _step_through(orjson.dumps(BODY), key) == (1, 1, 201)


def test_refusals_wait_the_same_turn() -> None:
    key = SandboxSettings().service_key.get_secret_value()
    assert _step_through(b"{not json", key) == (1, 1, 400)
    assert _step_through(orjson.dumps(BODY), "wrong-key") == (1, 1, 401)
