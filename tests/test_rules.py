"""gateway.rules: path normalisation and the first-match rule decision, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import parse_config
from gateway.proxy.rules import BadPath, CompiledRule, Decision, compile_rules, decide, normalize_path


def rules(*specs: dict[str, Any]) -> tuple[CompiledRule, ...]:
    """Rules as config.yaml's ``gateway.rules`` would give them, compiled."""
    return compile_rules(parse_config({"gateway": {"rules": list(specs)}}, {}).gateway.rules)


# normalize_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/admin", "/admin"),
        ("/a/b/c", "/a/b/c"),
        # Merged slashes.
        ("//admin", "/admin"),
        ("/a///b", "/a/b"),
        ("///", "/"),
        # Dot segments.
        ("/a/./b", "/a/b"),
        ("/./admin", "/admin"),
        ("/public/../admin", "/admin"),
        ("/a/b/../../c", "/c"),
        ("/a/b/../c/./d", "/a/c/d"),
        # Never above the root.
        ("/..", "/"),
        ("/../admin", "/admin"),
        ("/../../../etc/passwd", "/etc/passwd"),
        ("/public/../../../admin", "/admin"),
        # A trailing slash is kept, also when a dot segment ends the path.
        ("/admin/", "/admin/"),
        ("/admin//", "/admin/"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/../", "/a/"),
        # Percent-decoding, dot segments and slashes included.
        ("/%61dmin", "/admin"),
        ("/a%20b", "/a b"),
        ("/caf%C3%A9", "/café"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2E/admin", "/admin"),
        ("/public/.%2e/admin", "/admin"),
        ("/public/%2e./admin", "/admin"),
        ("/public/%2e/admin", "/public/admin"),
        ("/public%2F..%2Fadmin", "/admin"),
        ("/public%2f..%2fadmin", "/admin"),
        ("/a%2F%2Fb", "/a/b"),
        ("/%2e%2e/%2e%2e/admin", "/admin"),
        # Query and fragment are dropped before decoding; a decoded %3F stays in the path.
        ("/admin?x=1", "/admin"),
        ("/admin?next=/../public", "/admin"),
        ("/public?x=/../admin", "/public"),
        ("/admin#top", "/admin"),
        ("/admin?x=1#top", "/admin"),
        ("/a/?", "/a/"),
        ("/a%3Fb", "/a?b"),
        ("/a%23b", "/a#b"),
    ],
)
def test_normalize_path(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2e/admin", "/public%2F..%2Fadmin",
        "//public//..//admin", "/public/./../admin", "/public/x/../../admin",
        "/public/%2e%2e%2fadmin", "/public/..%2Fadmin", "/x/%2e%2e/%2e%2e/%2e%2e/admin",
    ],
)
def test_traversal_spellings_all_land_on_the_same_path(raw: str) -> None:
    assert normalize_path(raw) == "/admin"


@pytest.mark.parametrize(
    "raw",
    ["/", "/a//b/./c/../d/", "/%2e%2e/%2e", "/x/%2F%2F/../y", "/..%2f..%2f..", "/a/b/c/../../../../..",
     "/.%2e/a/%2e./b/./"],
)
def test_a_normalised_path_has_no_empty_or_dot_segments(raw: str) -> None:
    path = normalize_path(raw)
    assert path.startswith("/")
    assert "//" not in path
    assert not any(segment in (".", "..") for segment in path.split("/"))
    assert normalize_path(path) == path


@pytest.mark.parametrize(
    "raw",
    [
        "",  # empty
        "admin",  # relative
        "admin/../x",
        "../admin",
        "./admin",
        "?x=/admin",  # only a query: the path is empty
        "#/admin",
        "%2Fadmin",  # a slash only once decoded is not an absolute path
        "http://example.com/admin",  # an absolute URL is not a path
        "/a%00b",  # NUL, encoded
        "/a\x00b",  # NUL, raw
        "/%00",
        "/%ff",  # invalid UTF-8 after decoding
        "/%c3%28",
        "/%e2%82",  # truncated sequence
        "/admin%C0%AE%C0%AE/",  # overlong encoding of '.'
    ],
)
def test_bad_paths_raise(raw: str) -> None:
    with pytest.raises(BadPath):
        normalize_path(raw)


def test_bad_path_is_a_value_error() -> None:
    assert issubclass(BadPath, ValueError)


# compile_rules


def test_compile_rules_keeps_order_and_fields() -> None:
    compiled = rules(
        {"path": "^/a", "policy": "bypass"},
        {"path": "^/b", "methods": ["get", "Post"], "policy": "deny", "roles": ["ROLE_X"],
         "tenant": "acme"},
    )
    assert [rule.pattern.pattern for rule in compiled] == ["^/a", "^/b"]
    first, second = compiled
    assert first.methods is None and first.roles is None and first.tenant is None
    assert first.policy == "bypass"
    # HEAD runs GET handlers upstream, so a GET rule covers it too.
    assert second.methods == frozenset({"GET", "HEAD", "POST"})
    assert second.roles == frozenset({"ROLE_X"})
    assert second.tenant == "acme" and second.policy == "deny"


def test_compile_no_rules() -> None:
    assert rules() == ()


def test_a_rule_without_policy_is_authenticated() -> None:
    (rule,) = rules({"path": "^/x"})
    assert rule.policy == "authenticated"


# decide


@pytest.mark.parametrize("default", ["bypass", "authenticated", "deny"])
def test_the_default_policy_applies_when_nothing_matches(default: str) -> None:
    compiled = rules({"path": "^/admin", "policy": "deny", "roles": ["ROLE_ADMIN"]})
    assert decide(compiled, default, "/other", "GET", "default") == Decision(
        policy=default, roles=None, rule_index=None)
    assert decide((), default, "/admin", "GET", "default") == Decision(
        policy=default, roles=None, rule_index=None)


def test_the_first_matching_rule_wins() -> None:
    compiled = rules(
        {"path": "^/admin/public", "policy": "bypass"},
        {"path": "^/admin", "policy": "deny"},
        {"path": "^/admin/public", "policy": "authenticated"},
    )
    first = decide(compiled, "authenticated", "/admin/public/x", "GET", "default")
    assert first.policy == "bypass" and first.rule_index == 0
    second = decide(compiled, "authenticated", "/admin/secret", "GET", "default")
    assert second.policy == "deny" and second.rule_index == 1


def test_rule_order_decides_between_overlapping_rules() -> None:
    forward = rules({"path": "^/a", "policy": "bypass"}, {"path": "^/a/b", "policy": "deny"})
    backward = rules({"path": "^/a/b", "policy": "deny"}, {"path": "^/a", "policy": "bypass"})
    assert decide(forward, "deny", "/a/b", "GET", "default").policy == "bypass"
    assert decide(backward, "bypass", "/a/b", "GET", "default").policy == "deny"


@pytest.mark.parametrize("method", ["PUT", "put", "Put"])
def test_methods_match_case_insensitively(method: str) -> None:
    compiled = rules({"path": "^/doc", "methods": ["put"], "policy": "deny"})
    decision = decide(compiled, "bypass", "/doc", method, "default")
    assert decision.policy == "deny" and decision.rule_index == 0


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE", "OPTIONS", "PATCH"])
def test_a_rule_for_other_methods_is_skipped(method: str) -> None:
    compiled = rules(
        {"path": "^/doc", "methods": ["PUT"], "policy": "deny"},
        {"path": "^/doc", "policy": "authenticated", "roles": ["ROLE_READER"]},
    )
    decision = decide(compiled, "bypass", "/doc", method, "default")
    assert decision == Decision(policy="authenticated", roles=frozenset({"ROLE_READER"}), rule_index=1)


def test_a_rule_without_methods_matches_every_method() -> None:
    compiled = rules({"path": "^/x", "policy": "deny"})
    for method in ("GET", "POST", "PROPFIND", "get"):
        assert decide(compiled, "bypass", "/x", method, "default").policy == "deny"


def test_a_tenant_rule_applies_to_its_tenant_only() -> None:
    compiled = rules(
        {"path": "^/reports", "tenant": "acme", "policy": "bypass"},
        {"path": "^/reports", "policy": "deny"},
    )
    acme = decide(compiled, "authenticated", "/reports", "GET", "acme")
    assert acme.policy == "bypass" and acme.rule_index == 0
    other = decide(compiled, "authenticated", "/reports", "GET", "default")
    assert other.policy == "deny" and other.rule_index == 1
    assert decide(compiled[:1], "authenticated", "/reports", "GET", "default").rule_index is None


def test_every_filter_must_hold() -> None:
    compiled = rules({"path": "^/x", "methods": ["POST"], "tenant": "acme", "policy": "deny"})
    assert decide(compiled, "bypass", "/x", "POST", "acme").policy == "deny"
    assert decide(compiled, "bypass", "/x", "GET", "acme").policy == "bypass"
    assert decide(compiled, "bypass", "/x", "POST", "default").policy == "bypass"
    assert decide(compiled, "bypass", "/y", "POST", "acme").policy == "bypass"


def test_roles_are_carried_by_the_decision() -> None:
    compiled = rules(
        {"path": "^/admin", "roles": ["ROLE_ADMIN", "ROLE_OPS"]},
        {"path": "^/open", "policy": "authenticated"},
    )
    admin = decide(compiled, "deny", "/admin/users", "GET", "default")
    assert admin.policy == "authenticated"
    assert admin.roles == frozenset({"ROLE_ADMIN", "ROLE_OPS"})
    assert decide(compiled, "deny", "/open", "GET", "default").roles is None


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        # Unanchored patterns are searched: they match anywhere in the path.
        ("admin", "/admin", True),
        ("admin", "/x/admin/y", True),
        ("admin", "/superadmin", True),
        (r"\.php$", "/a/b/index.php", True),
        (r"\.php$", "/a/b/index.php/x", False),
        ("/private/", "/users/1/private/photo", True),
        # Anchored ones do not.
        ("^/admin", "/admin", True),
        ("^/admin", "/admin/users", True),
        ("^/admin", "/x/admin", False),
        ("^/admin$", "/admin", True),
        ("^/admin$", "/admin/", False),
        ("^/admin$", "/admin/users", False),
        ("^/admin/?$", "/admin/", True),
        (r"\A/api/v\d+/", "/api/v2/items", True),
        (r"\A/api/v\d+/", "/x/api/v2/items", False),
    ],
)
def test_patterns_are_searched(pattern: str, path: str, matches: bool) -> None:
    compiled = rules({"path": pattern, "policy": "deny"})
    assert (decide(compiled, "bypass", path, "GET", "default").policy == "deny") is matches


def test_patterns_are_case_sensitive_unless_they_say_otherwise() -> None:
    assert decide(rules({"path": "^/admin", "policy": "deny"}), "bypass", "/ADMIN", "GET",
                  "default").policy == "bypass"
    assert decide(rules({"path": "(?i)^/admin", "policy": "deny"}), "bypass", "/ADMIN", "GET",
                  "default").policy == "deny"


@pytest.mark.parametrize(
    "raw", ["/public/../admin", "/public/%2e%2e/admin", "/public%2F..%2Fadmin", "//admin", "/./admin"],
)
def test_normalised_traversals_meet_the_rule_of_their_target(raw: str) -> None:
    compiled = rules({"path": "^/public", "policy": "bypass"},
                     {"path": "^/admin", "roles": ["ROLE_ADMIN"]})
    decision = decide(compiled, "deny", normalize_path(raw), "GET", "default")
    assert decision.rule_index == 1 and decision.roles == frozenset({"ROLE_ADMIN"})
