"""Access rules of the reverse-proxy gateway, and the paths they match. Pure functions.

Rules come from ``gateway.rules`` in config.yaml, compiled once at start; the first rule
whose path regex, methods and tenant match decides, else ``gateway.default_policy``.
Paths are matched after percent-decoding and dot-segment removal, as the proxy in front
will route them: ``/public/../admin`` is ``/admin`` here too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.config import GatewayRule

__all__ = [
    "CompiledRule",
    "Decision",
    "Route",
    "RuleBook",
    "compile_rules",
    "decide",
    "normalize_path",
]


class BadPath(ValueError):
    """A request path that cannot be normalised (NUL byte, bad encoding, not absolute)."""


@dataclass(frozen=True)
class CompiledRule:
    pattern: re.Pattern[str]
    methods: frozenset[str] | None
    policy: str
    roles: frozenset[str] | None
    tenant: str | None


@dataclass(frozen=True)
class Decision:
    """What applies to a request: the policy, and the roles of which the user needs one."""

    policy: str
    roles: frozenset[str] | None
    rule_index: int | None


def compile_rules(rules: Sequence[GatewayRule]) -> tuple[CompiledRule, ...]:
    """Compile the config's rules once (their regexes were validated with the config)."""
    return tuple(
        CompiledRule(
            pattern=re.compile(rule.path),
            # HEAD runs the GET handler upstream, so a rule about GET covers HEAD too.
            methods=None if rule.methods is None else frozenset(
                rule.methods) | ({"HEAD"} if "GET" in rule.methods else set()),
            policy=rule.policy,
            roles=None if rule.roles is None else frozenset(rule.roles),
            tenant=rule.tenant,
        )
        for rule in rules
    )


def normalize_path(raw: str) -> str:
    """The path part of ``raw`` (a path with an optional query), decoded and normalised.

    Percent-escapes are decoded (``%2F`` too), repeated slashes merged, ``.`` and ``..``
    segments resolved without climbing above ``/``. Raises BadPath for a NUL byte,
    invalid UTF-8 after decoding, or a path that does not start with ``/``.
    """
    path = raw.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        raise BadPath("the path must start with /")
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise BadPath("the path is not valid UTF-8") from None
    if "\x00" in decoded:
        raise BadPath("the path contains a NUL byte")
    if "\\" in decoded:
        # Some servers read a backslash as "/": refused, so no upstream sees another path.
        raise BadPath("the path contains a backslash")
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    trailing = "/" if decoded.endswith(("/", "/.", "/..")) and segments else ""
    return "/" + "/".join(segments) + trailing


def decide(rules: Sequence[CompiledRule], default_policy: str, path: str, method: str,
           tenant: str) -> Decision:
    """The first rule matching ``path`` (searched), ``method`` and ``tenant``; else the default."""
    upper = method.upper()
    for index, rule in enumerate(rules):
        if rule.methods is not None and upper not in rule.methods:
            continue
        if rule.tenant is not None and rule.tenant != tenant:
            continue
        if rule.pattern.search(path):
            return Decision(policy=rule.policy, roles=rule.roles, rule_index=index)
    return Decision(policy=default_policy, roles=None, rule_index=None)


@dataclass(frozen=True, slots=True)
class Route:
    """What the rules say about one original request: its normalised path, the decision,
    and the media id when the path matches ``media.url_pattern``."""

    path: str
    decision: Decision
    media_id: str | None


class RuleBook:
    """``gateway.rules`` and ``media.url_pattern``, compiled once, with answers remembered.

    A route is a pure function of (raw path, method, tenant), and a gateway sees the same
    few over and over; remembering them spares the decoding, normalising and regex work on
    every request. The memory is cleared when it reaches ``size`` entries.
    """

    def __init__(self, rules: Sequence[GatewayRule], default_policy: str, media_pattern: str,
                 size: int = 4096) -> None:
        self.rules = compile_rules(rules)
        self.default_policy = default_policy
        self.media_pattern = re.compile(media_pattern)
        self._size = size
        self._known: dict[tuple[str, str, str], Route] = {}

    def route(self, uri: str, method: str, tenant: str) -> Route:
        """The route of ``method uri`` (a path with an optional query); BadPath if unusable."""
        raw_path = uri.partition("?")[0]
        key = (raw_path, method, tenant)
        known = self._known.get(key)
        if known is not None:
            return known
        path = normalize_path(raw_path)
        match = self.media_pattern.search(path)
        route = Route(path=path, decision=decide(self.rules, self.default_policy, path, method, tenant),
                      media_id=match.group("id") if match is not None else None)
        if len(self._known) >= self._size:
            self._known.clear()
        self._known[key] = route
        return route
