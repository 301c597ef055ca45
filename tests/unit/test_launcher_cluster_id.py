"""The launcher's cluster ids never start with '-' (the storage tool would read one as an option:
a broker start failed that way once), and keep Kafka's shape: 22 URL-safe base64 characters."""

from __future__ import annotations

import re
import uuid
from itertools import chain, repeat

import pytest

from tests.kafka_fixtures import load_launcher


def test_a_leading_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = load_launcher()
    dash = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64url: '-' first
    plain = uuid.UUID(bytes=bytes(16))
    draws = chain(repeat(dash, 3), repeat(plain))
    monkeypatch.setattr(launcher.uuid, "uuid4", lambda: next(draws))
    assert launcher.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_shape() -> None:
    launcher = load_launcher()
    for _ in range(500):
        cluster_id = launcher.new_cluster_id()
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cluster_id)
