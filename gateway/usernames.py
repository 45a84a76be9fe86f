"""Usernames: which strings may be one, and when two name the same user.

Modelled on RFC 8265's UsernameCaseMapped profile, with ``unicodedata`` only: a username is
kept NFKC-normalised (full-width letters, ligatures and other compatibility forms become
their plain form), may hold no control, format, surrogate, private-use or unassigned
character and no space or line separator (a zero-width space or a CR/LF could otherwise make
two names look alike, or break a header that carries the name), and two usernames are the
same when their keys (``username_key``: NFKC, case-folded, NFKC again) are equal. The store
keeps that key in a unique column, so ``admin``, ``Admin`` and a full-width ``admin`` cannot sit
side by side, and looks users up by it, so each of them logs in as the one user.
"""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_USERNAME_LENGTH", "InvalidUsername", "normalize_username", "username_key"]

#: Longest username, in characters after normalisation (as Django's ``User.username``).
MAX_USERNAME_LENGTH = 150

# Control, format, surrogate, private use, unassigned; space, line and paragraph separators.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}


class InvalidUsername(ValueError):
    """A string that cannot be a username; the message says why, without echoing it."""


def normalize_username(text: str) -> str:
    """``text`` as a username is stored: NFKC-normalised, or InvalidUsername.

    Refused: the empty string, more than ``MAX_USERNAME_LENGTH`` characters, and any
    character of category Cc, Cf, Cs, Co, Cn, Zs, Zl or Zp (controls such as CR and LF,
    format characters such as the zero-width space, spaces).
    """
    name = unicodedata.normalize("NFKC", text)
    if not name:
        raise InvalidUsername("a username cannot be empty")
    if len(name) > MAX_USERNAME_LENGTH:
        raise InvalidUsername(f"a username has at most {MAX_USERNAME_LENGTH} characters")
    for char in name:
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            raise InvalidUsername(
                f"a username cannot contain U+{ord(char):04X} "
                f"({_describe(category)}: control, format and space characters are refused)"
            )
    return name


def username_key(text: str) -> str:
    """The form usernames (and logins) are compared in: NFKC, case-folded, NFKC again.

    Total: any string has a key, so a login that could never be a username still gets
    one (it simply matches no user).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _describe(category: str) -> str:
    return {"Cc": "a control character", "Cf": "a format character",
            "Cs": "a surrogate", "Co": "a private-use character",
            "Cn": "an unassigned code point", "Zs": "a space",
            "Zl": "a line separator", "Zp": "a paragraph separator"}[category]
