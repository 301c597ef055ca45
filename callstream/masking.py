"""Masking of personal data in logs: phone numbers never appear whole."""

from __future__ import annotations


def mask_msisdn(number: str | None) -> str | None:
    """Keep the leading ``+`` and country prefix digits and the last two digits.

    ``+14155550123`` -> ``+141*******23``. Short or odd values are masked whole.
    """
    if number is None:
        return None
    n = str(number)
    plus = "+" if n.startswith("+") else ""
    digits = n[1:] if plus else n
    if len(digits) <= 5:
        return plus + "*" * len(digits)
    return plus + digits[:3] + "*" * (len(digits) - 5) + digits[-2:]
