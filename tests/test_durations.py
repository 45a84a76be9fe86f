"""gateway.durations: the one parser of human durations (config.yaml and request bodies)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.durations import MAX_SECONDS, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # The spellings docs/configuration.md and seed 001 promise.
        ("6 hours", 6 * 3600),
        ("1 day 2 hours", 86400 + 2 * 3600),
        ("2h30m", 2 * 3600 + 30 * 60),
        ("90s", 90),
        ("3600", 3600),
        (3600, 3600),
        ("30 minutes", 30 * 60),
        # Neighbours of those spellings.
        ("5 minutes", 300),
        ("1 day", 86400),
        ("365 days", 365 * 86400),
        ("0 seconds", 0),
        (0, 0),
        ("0", 0),
        ("1 week", 7 * 86400),
        ("2 weeks 1 day", 15 * 86400),
        ("1 hour, 5 minutes", 3900),
        ("1h 1m 1s", 3661),
        ("6 HOURS", 6 * 3600),
        ("  90s  ", 90),
        ("1 min", 60),
        ("2 hrs", 7200),
        ("10 sec", 10),
        (MAX_SECONDS, MAX_SECONDS),
        (str(MAX_SECONDS), MAX_SECONDS),
        ("36500 days", MAX_SECONDS),
    ],
)
def test_parses_documented_spellings(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "5 parsecs",
        "1 fortnight",
        "-5",
        -1,
        "-1 hours",
        1.5,
        3600.0,
        "1.5 hours",
        True,
        False,
        None,
        "1 day 2",          # a trailing number without its unit
        "2h30",
        "hours",
        "h",
        "1 day and 2 hours",
        MAX_SECONDS + 1,
        str(MAX_SECONDS + 1),
        "36501 days",
        "1" * 13,           # more digits than any duration needs
        "9" * 300,
        b"3600",
        [3600],
        {"seconds": 3600},
        "٣٦٠٠",             # Arabic-Indic digits are not seconds
        "3600\x00",
    ],
)
def test_refuses_bad_values_with_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_unknown_unit_is_named_in_the_message() -> None:
    with pytest.raises(ValueError, match="parsecs"):
        parse_duration("5 parsecs")


def test_too_long_says_so() -> None:
    with pytest.raises(ValueError, match="100 years"):
        parse_duration(MAX_SECONDS + 1)


def test_negative_says_so() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-60)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (60, "1 minute"),
        (3600, "1 hour"),
        (86400, "1 day"),
        (93600, "1 day 2 hours"),
        (9000, "2 hours 30 minutes"),
        (90061, "1 day 1 hour 1 minute 1 second"),
    ],
)
def test_format_duration_spells_it_for_humans(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_refuses_negative() -> None:
    with pytest.raises(ValueError):
        format_duration(-1)


seconds_in_range = st.integers(min_value=0, max_value=MAX_SECONDS)


@given(seconds_in_range)
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(seconds_in_range)
def test_digit_string_round_trips(seconds: int) -> None:
    assert parse_duration(str(seconds)) == seconds
    assert parse_duration(seconds) == seconds


def _int_in_range_or_value_error(value: object) -> None:
    try:
        result = parse_duration(value)
    except ValueError:
        return
    assert type(result) is int
    assert 0 <= result <= MAX_SECONDS


@given(st.text())
def test_any_text_is_an_int_in_range_or_value_error(value: str) -> None:
    _int_in_range_or_value_error(value)


@given(st.text(alphabet="0123456789 ,smhdwecinoruyaSMHDW", max_size=60))
def test_duration_like_text_is_an_int_in_range_or_value_error(value: str) -> None:
    # st.text() rarely builds something that nearly parses; this alphabet does.
    _int_in_range_or_value_error(value)


anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
    | st.complex_numbers() | st.decimals() | st.fractions(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children)
    | st.tuples(children) | st.frozensets(st.integers()),
    max_leaves=5,
)


@given(anything)
def test_any_object_is_an_int_in_range_or_value_error(value: object) -> None:
    _int_in_range_or_value_error(value)
