"""gateway.regulation.ban_remaining: when recent login failures ban an account or address."""

from __future__ import annotations

import pytest

from gateway.regulation import ban_remaining

NOW = 1_000_000.0


def ban(times: list[float], now: float, *, max_retries: int = 5, find_time: float = 120.0,
        ban_time: float = 300.0) -> float:
    return ban_remaining(times, now, max_retries=max_retries, find_time=find_time, ban_time=ban_time)


def failures(*ages: float) -> list[float]:
    """Failure times ``ages`` seconds before NOW, newest first."""
    return sorted((NOW - age for age in ages), reverse=True)


def test_no_failures_no_ban() -> None:
    assert ban([], NOW) == 0.0


def test_below_max_retries_is_not_banned() -> None:
    assert ban(failures(0, 1, 2, 3), NOW) == 0.0


def test_exactly_max_retries_within_find_time_bans() -> None:
    remaining = ban(failures(10, 20, 30, 40, 50), NOW)
    # The ban runs ban_time from the newest failure, which is 10 s old.
    assert remaining == pytest.approx(300.0 - 10)


def test_ban_starts_at_full_length_for_a_failure_just_now() -> None:
    assert ban(failures(0, 0, 0, 0, 0), NOW) == pytest.approx(300.0)


def test_spread_exactly_find_time_still_bans() -> None:
    assert ban(failures(0, 30, 60, 90, 120), NOW) == pytest.approx(300.0)


def test_spread_wider_than_find_time_is_not_banned() -> None:
    assert ban(failures(0, 30, 60, 90, 120.5), NOW) == 0.0
    assert ban(failures(0, 1, 2, 3, 600), NOW) == 0.0


def test_only_the_latest_max_retries_failures_count() -> None:
    # Five recent failures close together ban, whatever older ones there are.
    assert ban(failures(0, 1, 2, 3, 4, 5000, 9000), NOW) == pytest.approx(300.0)


def test_ban_counts_down_and_expires() -> None:
    times = failures(0, 1, 2, 3, 4)
    assert ban(times, NOW + 299) == pytest.approx(1.0)
    assert ban(times, NOW + 300) == 0.0
    assert ban(times, NOW + 3600) == 0.0


def test_max_retries_zero_disables_regulation() -> None:
    many = failures(*range(50))
    assert ban(many, NOW, max_retries=0, find_time=120, ban_time=300) == 0.0


def test_max_retries_one_bans_on_the_first_failure() -> None:
    assert ban(failures(5), NOW, max_retries=1, find_time=0, ban_time=60) == pytest.approx(55.0)


def test_never_negative() -> None:
    assert ban(failures(1000, 1001, 1002, 1003, 1004), NOW) == 0.0
