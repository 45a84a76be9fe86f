"""Brute-force regulation: when do recent login failures ban an account or an address."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ban_remaining"]


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
