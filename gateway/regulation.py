"""Brute-force regulation: when do recent login failures ban a login or an address.

Pure: the caller reads the failure times (``Store.record_login_attempt``) and records an
attempt only when these functions find no ban, so an attempt made during a ban is never
counted and cannot lengthen it: the newest failure is the one that started the ban, which
therefore ends ``ban_time`` after it began.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ban_remaining", "login_ban"]


def ban_remaining(
    failures_newest_first: Sequence[float],
    now: float,
    *,
    max_retries: int,
    find_time: float,
    ban_time: float,
) -> float:
    """Seconds of ban left (0 when not banned).

    Banned when the latest ``max_retries`` failures all fell within ``find_time`` of each
    other and the newest is less than ``ban_time`` old. ``max_retries`` 0 turns it off.
    """
    if max_retries <= 0 or len(failures_newest_first) < max_retries:
        return 0.0
    newest = failures_newest_first[0]
    oldest = failures_newest_first[max_retries - 1]
    if newest - oldest > find_time:
        return 0.0
    return max(0.0, ban_time - (now - newest))


def login_ban(
    login_failures: Sequence[float],
    address_failures: Sequence[float],
    now: float,
    *,
    per_login: int,
    per_address: int,
    find_time: float,
    ban_time: float,
) -> float:
    """Seconds of ban left for an attempt (0 when it may go ahead).

    A login (as typed, case-folded) is banned after ``per_login`` failures within
    ``find_time``; an address after ``per_address`` failures, whatever the logins. Each
    ban lasts ``ban_time`` from the failure that started it. Failure times newest first.
    """
    return max(
        ban_remaining(login_failures, now, max_retries=per_login, find_time=find_time,
                      ban_time=ban_time),
        ban_remaining(address_failures, now, max_retries=per_address, find_time=find_time,
                      ban_time=ban_time),
    )
