"""Call lifecycles (contract section 4): which events a call produces, in which order, with which
codes; and the call status (contract section 6) at any moment of it. Pure: a seeded
:class:`random.Random` in, a :class:`CallPlan` out.

Sequences (events in brackets share one timestamp and, with ``irregular_order``, come in any
order)::

    answered, normal end  [OFFERED] [ACCEPTED] [ANSWERED] [DROPPED Released]
    answered, hang-up     [OFFERED] [ACCEPTED] [ANSWERED] [Released DISCONNECTED DROPPED]
    answered, trombone    [OFFERED] [ACCEPTED] [ANSWERED] [TROMBONE_CONNECTED]
                          [TROMBONE_RELEASED] [Released DISCONNECTED DROPPED]
    no answer/busy/reject [OFFERED] [ACCEPTED] [DROPPED REJECTED(7401/7402/7406/7404)]
    expired               [Failed(7005)]
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from sandbox.settings import OUTCOMES


@dataclass(frozen=True, slots=True)
class EventKind:
    receipt: str  # normalized requestedReceipts name that asks for it
    description: str
    code: str
    delivery_status: str


OFFERED = EventKind("offered", "Call offered", "7407", "OFFERED")
ACCEPTED = EventKind("accepted", "Call accepted", "7408", "ACCEPTED")
ANSWERED = EventKind("answered", "Answered", "7519", "ANSWERED")
DROPPED = EventKind("dropped", "Call dropped", "7409", "DROPPED")
RELEASED = EventKind("released", "Release", "7405", "Released")
DISCONNECTED = EventKind("disconnected", "Call disconnected", "7410", "DISCONNECTED")
TROMBONE_CONNECTED = EventKind(
    "tromboneconnected", "Trombone connected", "7411", "TROMBONE_CONNECTED"
)
TROMBONE_RELEASED = EventKind("trombonereleased", "Trombone released", "7412", "TROMBONE_RELEASED")
EXPIRED = EventKind("messageexpired", "Request expired", "7005", "Failed")
REJECTED_NO_ANSWER = EventKind("rejected", "No answer", "7401", "REJECTED")
REJECTED_BUSY = EventKind("rejected", "Customer busy", "7402", "REJECTED")
REJECTED_REJECTED = EventKind("rejected", "Rejected", "7406", "REJECTED")
REJECTED_OTHERS = EventKind("rejected", "Others", "7404", "REJECTED")

# events on which the platform leaves out correlationid and callbackData (known bug)
WITHOUT_IDS = frozenset({"tromboneconnected", "trombonereleased", "disconnected"})

TERMINAL_STATUS = {
    "answered": "Completed",
    "no_answer": "No-answer",
    "busy": "Busy",
    "rejected": "Failed",
    "expired": "Failed",
}
_OFFSETS_MINUTES = (330, 60, -240, 0, 120, -300)


@dataclass(frozen=True, slots=True)
class CallPlan:
    """Everything random about one call, decided once at acceptance."""

    outcome: str  # one of settings.OUTCOMES
    ending: str  # normal, hangup, trombone for answered calls; "" otherwise
    steps: tuple[tuple[EventKind, ...], ...]  # delivery order; a step shares one timestamp
    offsets_ms: tuple[float, ...]  # of each step, from acceptance
    ts_style: str  # "Z", "offset" or "naive"
    tz_offset_minutes: int
    destination_plus: bool | None  # None: as sent
    subtid: str

    @property
    def duration_ms(self) -> float:
        return self.offsets_ms[-1] if self.offsets_ms else 0.0

    def status_at(self, elapsed_ms: float, *, sample_case: bool) -> str:
        """The GET status of the call ``elapsed_ms`` after acceptance."""
        done = sum(1 for offset in self.offsets_ms if offset <= elapsed_ms)
        if done == len(self.steps):
            return TERMINAL_STATUS[self.outcome]
        if done == 0 or self.outcome == "expired":
            return "Initiated"
        last = self.steps[done - 1][0]
        if last is ACCEPTED:
            return "Ringing"
        return "ANSWERED" if sample_case else "In-progress"

    def answered_offset_ms(self) -> float | None:
        for step, offset in zip(self.steps, self.offsets_ms, strict=True):
            if step[0] is ANSWERED:
                return offset
        return None


def message_rng(
    seed: int | None, correlation_id: str | None, msisdn: str, nth: int
) -> random.Random:
    """The random source of one destination: derived from the seed and the destination, not from
    arrival order, so concurrent clients get the same outcomes for the same requests."""
    if seed is None:
        return random.Random()
    return random.Random(f"{seed}|{correlation_id}|{msisdn}|{nth}")


def message_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _steps(rng: random.Random, outcome: str) -> tuple[str, tuple[tuple[EventKind, ...], ...]]:
    opening = ((OFFERED,), (ACCEPTED,))
    if outcome == "expired":
        return "", ((EXPIRED,),)
    if outcome == "answered":
        ending = rng.choices(("normal", "hangup", "trombone"), weights=(6, 3, 1))[0]
        end = (RELEASED, DISCONNECTED, DROPPED)
        if ending == "normal":
            return ending, (*opening, (ANSWERED,), (DROPPED, RELEASED))
        if ending == "hangup":
            return ending, (*opening, (ANSWERED,), end)
        return ending, (*opening, (ANSWERED,), (TROMBONE_CONNECTED,), (TROMBONE_RELEASED,), end)
    if outcome == "no_answer":
        rejected = REJECTED_NO_ANSWER
    elif outcome == "busy":
        rejected = REJECTED_BUSY
    else:
        rejected = REJECTED_REJECTED if rng.random() < 0.8 else REJECTED_OTHERS
    return "", (*opening, (DROPPED, rejected))


def plan_call(
    rng: random.Random,
    *,
    weights: tuple[float, ...],
    delay_ms: tuple[float, float],
    irregular_timestamps: bool,
    irregular_destination: bool,
    irregular_order: bool,
) -> CallPlan:
    outcome = rng.choices(OUTCOMES, weights=weights)[0]
    ending, steps = _steps(rng, outcome)
    if irregular_order:
        steps = tuple(tuple(rng.sample(step, len(step))) for step in steps)
    offsets: list[float] = []
    at = 0.0
    for _ in steps:
        at += rng.uniform(*delay_ms)
        offsets.append(at)
    style = rng.choice(("Z", "offset", "naive")) if irregular_timestamps else "Z"
    return CallPlan(
        outcome=outcome,
        ending=ending,
        steps=steps,
        offsets_ms=tuple(offsets),
        ts_style=style,
        tz_offset_minutes=rng.choice(_OFFSETS_MINUTES),
        destination_plus=rng.random() < 0.5 if irregular_destination else None,
        subtid=f"{rng.getrandbits(64):016x}",
    )


def format_timestamp(moment: datetime, style: str, offset_minutes: int) -> str:
    """ISO 8601 with milliseconds: ``...Z``, ``...+05:30`` or no zone (UTC wall time)."""
    if style == "offset":
        local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
        return local.isoformat(timespec="milliseconds")
    naive = moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")
    return naive + "Z" if style == "Z" else naive


def destination_form(msisdn: str, plus: bool | None) -> str:
    if plus is None:
        return msisdn
    bare = msisdn.removeprefix("+")
    return "+" + bare if plus else bare
