"""Human durations ("90s", "6 hours", "1 day 2 hours", "2h30m", 3600) as whole seconds.

One parser for config.yaml and for request bodies (named token lives), so both accept
exactly the same spellings.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SECONDS", "format_duration", "parse_duration"]

#: Upper bound of any duration: 100 years. Larger values are refused, not clamped.
MAX_SECONDS = 100 * 365 * 86400

_UNITS: dict[str, int] = {}
for _names, _seconds in (
    (("s", "sec", "secs", "second", "seconds"), 1),
    (("m", "min", "mins", "minute", "minutes"), 60),
    (("h", "hr", "hrs", "hour", "hours"), 3600),
    (("d", "day", "days"), 86400),
    (("w", "week", "weeks"), 7 * 86400),
):
    for _name in _names:
        _UNITS[_name] = _seconds

_PART = re.compile(r"\s*(\d{1,12})\s*([a-z]+)\s*,?", re.ASCII)
_PLAIN = re.compile(r"\s*(\d{1,12})\s*", re.ASCII)

_EXAMPLES = "e.g. 3600, '90s', '30 minutes', '1 day 2 hours', '2h30m'"


def parse_duration(value: object) -> int:
    """Return ``value`` as a whole number of seconds, or raise ``ValueError``.

    Accepts a non-negative integer (seconds), a digit string (seconds), or a sequence of
    ``<number><unit>`` parts with optional spaces and commas between them. Units are
    s/sec/second(s), m/min/minute(s), h/hr/hour(s), d/day(s), w/week(s), case-insensitive.
    Booleans, floats, negative numbers, unknown units and values above ``MAX_SECONDS`` are
    refused with a message that says what was expected.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r} ({_EXAMPLES})")
    if isinstance(value, int):
        total = value
    elif isinstance(value, str):
        total = _parse_text(value)
    else:
        raise ValueError(f"invalid duration {value!r} ({_EXAMPLES})")
    if total < 0:
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    if total > MAX_SECONDS:
        raise ValueError(f"invalid duration {value!r}: longer than 100 years")
    return total


def _parse_text(text: str) -> int:
    if len(text) > 200:
        raise ValueError(f"invalid duration: too long ({_EXAMPLES})")
    lowered = text.lower()
    plain = _PLAIN.fullmatch(lowered)
    if plain:
        return int(plain.group(1))
    total = 0
    position = 0
    for match in _PART.finditer(lowered):
        if match.start() != position:
            break
        unit = _UNITS.get(match.group(2))
        if unit is None:
            raise ValueError(f"invalid duration {text!r}: unknown unit {match.group(2)!r}")
        total += int(match.group(1)) * unit
        position = match.end()
    if position == 0 or position != len(lowered):
        raise ValueError(f"invalid duration {text!r} ({_EXAMPLES})")
    return total


def format_duration(seconds: int) -> str:
    """Return ``seconds`` spelled the way ``parse_duration`` reads it ("1 day 2 hours")."""
    if seconds < 0:
        raise ValueError("duration must not be negative")
    if seconds == 0:
        return "0 seconds"
    parts = []
    remaining = seconds
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return " ".join(parts)
