"""gateway.regulation: when recent login failures ban a login or an address."""

from __future__ import annotations

import pytest

from gateway.regulation import ban_remaining, login_ban

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


# login_ban: a login after 5 failures, an address after 50, each for ban_time


def login_and_address(login: list[float], address: list[float], now: float = NOW) -> float:
    return login_ban(login, address, now, per_login=5, per_address=50, find_time=120.0,
                     ban_time=300.0)


def test_five_failures_of_a_login_ban_it() -> None:
    assert login_and_address(failures(0, 1, 2, 3, 4), failures(0, 1, 2, 3, 4)) == pytest.approx(300)


def test_an_address_needs_fifty_failures() -> None:
    assert login_and_address([], failures(*range(49))) == 0.0
    assert login_and_address([], failures(*range(50))) == pytest.approx(300)


def test_the_longer_ban_wins() -> None:
    login = failures(100, 101, 102, 103, 104)
    address = failures(*range(10, 60))
    assert login_and_address(login, address) == pytest.approx(290)


def test_a_ban_ends_ban_time_after_the_failure_that_started_it() -> None:
    # No attempt made during a ban is recorded, so the newest failure started it.
    started = failures(0, 1, 2, 3, 4)
    assert login_and_address(started, [], NOW + 299.5) == pytest.approx(0.5)
    assert login_and_address(started, [], NOW + 300) == 0.0


def test_a_zero_threshold_turns_that_counter_off() -> None:
    many = failures(*range(60))
    assert login_ban(many, many, NOW, per_login=0, per_address=50, find_time=120,
                     ban_time=300) == pytest.approx(300)
    assert login_ban(many, many, NOW, per_login=5, per_address=0, find_time=120,
                     ban_time=300) == pytest.approx(300)
    assert login_ban([], many, NOW, per_login=5, per_address=0, find_time=120,
                     ban_time=300) == 0.0
