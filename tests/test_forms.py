"""gateway.forms: PHP bracket form fields decoded into the structure a JSON body has
(docs/media-tokens.md)."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.config import parse_config
from gateway.forms import MAX_DEPTH, MAX_FIELDS, FormError, decode_php_form
from gateway.media.params import defaults_for, parse_request

# The seed 000 example as its Symfony clients send it (docs/media-tokens.md).
SEED_PAIRS = [
    ("unique", "1"),
    ("kid", "abc"),
    ("ipRange[]", "10.0.0.0/8"),
    ("user[username]", "abc"),
    ("user[roles][]", "ROLE_USER"),
    ("user[roles][]", "ROLE_ADMIN"),
    ("media[id]", "28"),
    ("start", "0"),
    ("expire", "3600"),
    ("algorithm", "RS256"),
]
SEED_JSON: dict[str, Any] = {
    "unique": "1",
    "kid": "abc",
    "ipRange": ["10.0.0.0/8"],
    "user": {"username": "abc", "roles": ["ROLE_USER", "ROLE_ADMIN"]},
    "media": {"id": "28"},
    "start": "0",
    "expire": "3600",
    "algorithm": "RS256",
}


def form_error(pairs: list[tuple[str, str]], field: str) -> FormError:
    """Decode ``pairs``, expecting a FormError that names ``field``."""
    with pytest.raises(FormError) as info:
        decode_php_form(pairs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    return info.value


# The seed example


def test_seed_example_decodes_to_the_json_body_structure() -> None:
    assert decode_php_form(SEED_PAIRS) == SEED_JSON


def test_seed_example_as_a_form_means_what_the_json_body_means() -> None:
    config = parse_config({}, {})
    defaults = defaults_for(config, "default")
    json_body = {"unique": True, "kid": "abc", "ipRange": ["10.0.0.0/8"],
                 "user": {"username": "abc", "roles": ["ROLE_USER", "ROLE_ADMIN"]},
                 "media": {"id": 28}, "start": 0, "expire": 3600, "algorithm": "RS256"}
    from_form = parse_request(decode_php_form(SEED_PAIRS), defaults, config.media.algorithms)
    from_json = parse_request(json_body, defaults, config.media.algorithms)
    assert from_form == from_json
    assert from_form.roles == ("ROLE_USER", "ROLE_ADMIN")
    assert from_form.media == {"id": "28"}


def test_pairs_may_be_any_iterable() -> None:
    assert decode_php_form(iter(SEED_PAIRS)) == SEED_JSON
    assert decode_php_form([]) == {}


# Lists


def test_indexed_list_becomes_a_list_in_index_order() -> None:
    pairs = [("user[roles][0]", "ROLE_USER"), ("user[roles][1]", "ROLE_ADMIN")]
    assert decode_php_form(pairs) == {"user": {"roles": ["ROLE_USER", "ROLE_ADMIN"]}}


def test_indexed_list_given_out_of_order_is_in_index_order() -> None:
    pairs = [("user[roles][1]", "ROLE_ADMIN"), ("user[roles][0]", "ROLE_USER")]
    assert decode_php_form(pairs) == {"user": {"roles": ["ROLE_USER", "ROLE_ADMIN"]}}


def test_indexes_are_ordered_as_numbers_not_as_text() -> None:
    # As text, "10" and "11" would sort between "1" and "2".
    pairs = [(f"ipRange[{index}]", f"v{index}") for index in reversed(range(12))]
    assert decode_php_form(pairs) == {"ipRange": [f"v{index}" for index in range(12)]}


def test_top_level_indexed_list() -> None:
    assert decode_php_form([("ipRange[0]", "a"), ("ipRange[1]", "b")]) == {"ipRange": ["a", "b"]}


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("a[0]", "x"), ("a[2]", "z")], {"a": {"0": "x", "2": "z"}}),
        ([("a[1]", "x"), ("a[2]", "y")], {"a": {"1": "x", "2": "y"}}),
        # "01" is not the index 1: a list would silently reorder or drop it.
        ([("a[0]", "x"), ("a[01]", "y")], {"a": {"0": "x", "01": "y"}}),
        ([("a[0]", "x"), ("a[name]", "y")], {"a": {"0": "x", "name": "y"}}),
    ],
)
def test_keys_that_are_not_exactly_0_to_n_minus_1_stay_a_mapping(
    pairs: list[tuple[str, str]], expected: dict[str, Any]
) -> None:
    assert decode_php_form(pairs) == expected


def test_empty_brackets_append_in_order() -> None:
    pairs = [("ipRange[]", "10.0.0.0/8"), ("ipRange[]", "192.0.2.0/24"), ("ipRange[]", "::1/128")]
    assert decode_php_form(pairs) == {"ipRange": ["10.0.0.0/8", "192.0.2.0/24", "::1/128"]}


def test_a_single_plain_key_stays_a_string() -> None:
    assert decode_php_form([("kid", "abc")]) == {"kid": "abc"}


def test_a_plain_key_given_twice_becomes_a_list() -> None:
    assert decode_php_form([("ipRange", "10.0.0.0/8"), ("ipRange", "192.0.2.0/24")]) == {
        "ipRange": ["10.0.0.0/8", "192.0.2.0/24"]
    }


def test_a_plain_key_given_three_times_becomes_a_list_of_three() -> None:
    pairs = [("ipRange", "a"), ("kid", "k"), ("ipRange", "b"), ("ipRange", "c")]
    assert decode_php_form(pairs) == {"ipRange": ["a", "b", "c"], "kid": "k"}


def test_list_of_mappings() -> None:
    pairs = [("a[][name]", "x"), ("a[][name]", "y")]
    assert decode_php_form(pairs) == {"a": [{"name": "x"}, {"name": "y"}]}


# Mappings


def test_nested_mapping_inside_a_mapping() -> None:
    pairs = [("media[id]", "28"), ("media[meta][x]", "1"), ("media[meta][y]", "2")]
    assert decode_php_form(pairs) == {"media": {"id": "28", "meta": {"x": "1", "y": "2"}}}


def test_nested_indexed_list_inside_nested_mapping() -> None:
    pairs = [("media[meta][tags][1]", "b"), ("media[meta][tags][0]", "a")]
    assert decode_php_form(pairs) == {"media": {"meta": {"tags": ["a", "b"]}}}


def test_an_empty_value_is_kept_as_an_empty_string() -> None:
    pairs = [("kid", ""), ("user[username]", ""), ("ipRange[]", "")]
    assert decode_php_form(pairs) == {"kid": "", "user": {"username": ""}, "ipRange": [""]}


def test_values_are_not_parsed() -> None:
    pairs = [("kid", "a[b]=c&d"), ("media[id]", " 28 ")]
    assert decode_php_form(pairs) == {"kid": "a[b]=c&d", "media": {"id": " 28 "}}


# Errors


@pytest.mark.parametrize(
    "name",
    ["user[roles", "user]roles[", "user[roles]]", "user[[roles]]", "user[roles]x", "user[", "user]",
     "[user]", "[]", ""],
)
def test_unbalanced_or_malformed_brackets(name: str) -> None:
    form_error([("kid", "abc"), (name, "x")], name)


@pytest.mark.parametrize(
    "pairs",
    [
        [("user", "abc"), ("user[username]", "abc")],
        [("user[username]", "abc"), ("user", "abc")],
        [("ipRange", "10.0.0.0/8"), ("ipRange[]", "192.0.2.0/24")],
        [("ipRange[]", "10.0.0.0/8"), ("ipRange", "192.0.2.0/24")],
        [("media[id]", "28"), ("media[id][x]", "1")],
        [("media[id][x]", "1"), ("media[id]", "28")],
        [("user[roles][]", "A"), ("user[roles]", "B")],
        [("user[roles]", "B"), ("user[roles][]", "A")],
        [("a", "1"), ("a", "2"), ("a[x]", "3")],
    ],
)
def test_a_key_used_both_as_a_value_and_as_a_container(pairs: list[tuple[str, str]]) -> None:
    form_error(pairs, pairs[-1][0])


@pytest.mark.parametrize(
    "pairs",
    [
        [("user[username]", "abc"), ("user[username]", "root")],
        [("user[roles][0]", "ROLE_USER"), ("user[roles][0]", "ROLE_ADMIN")],
        [("media[meta][x]", "1"), ("media[meta][x]", "1")],
    ],
)
def test_the_same_nested_key_twice(pairs: list[tuple[str, str]]) -> None:
    # Last-one-wins would let a second field silently widen or change the token.
    form_error(pairs, pairs[-1][0])


@pytest.mark.parametrize(
    "pairs",
    [
        [("user[roles][]", "ROLE_USER"), ("user[roles][name]", "ROLE_ADMIN")],
        [("user[roles][name]", "ROLE_ADMIN"), ("user[roles][]", "ROLE_USER")],
        [("ipRange[]", "10.0.0.0/8"), ("ipRange[0]", "192.0.2.0/24")],
        [("ipRange[0]", "192.0.2.0/24"), ("ipRange[]", "10.0.0.0/8")],
    ],
)
def test_empty_brackets_mixed_with_named_keys(pairs: list[tuple[str, str]]) -> None:
    form_error(pairs, pairs[-1][0])


def test_nesting_up_to_max_depth_is_accepted() -> None:
    name = "a" + "".join(f"[k{level}]" for level in range(MAX_DEPTH))
    decoded = decode_php_form([(name, "x")])
    node: Any = decoded["a"]
    for level in range(MAX_DEPTH - 1):
        node = node[f"k{level}"]
    assert node == {f"k{MAX_DEPTH - 1}": "x"}


def test_nesting_deeper_than_max_depth_is_refused() -> None:
    name = "a" + "".join(f"[k{level}]" for level in range(MAX_DEPTH + 1))
    form_error([(name, "x")], name)


def test_deep_empty_brackets_are_refused_too() -> None:
    name = "a" + "[]" * (MAX_DEPTH + 1)
    form_error([(name, "x")], name)


def test_max_fields_is_accepted() -> None:
    pairs = [(f"f{index}", "v") for index in range(MAX_FIELDS)]
    assert len(decode_php_form(pairs)) == MAX_FIELDS


def test_more_than_max_fields_is_refused_naming_the_first_field_too_many() -> None:
    pairs = [(f"f{index}", "v") for index in range(MAX_FIELDS + 1)]
    error = form_error(pairs, f"f{MAX_FIELDS}")
    assert str(MAX_FIELDS) in str(error)


def test_more_than_max_fields_stops_reading_early() -> None:
    consumed = 0

    def pairs() -> Any:
        nonlocal consumed
        for index in range(100 * MAX_FIELDS):
            consumed += 1
            yield ("ipRange[]", str(index))

    with pytest.raises(FormError):
        decode_php_form(pairs())
    assert consumed == MAX_FIELDS + 1


def test_form_error_is_a_value_error_with_the_field() -> None:
    error = form_error([("a[", "x")], "a[")
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("index", ["²", "①", "1²"])
def test_a_non_decimal_digit_index_is_a_form_error_or_a_key(index: str) -> None:
    name = f"media[{index}]"
    try:
        decoded = decode_php_form([(name, "x")])
    except FormError as exc:
        assert exc.field == name
    else:
        assert decoded == {"media": {index: "x"}}


# Properties

IDENTIFIERS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
SHORT_TEXT = st.text(max_size=12)


@given(st.dictionaries(IDENTIFIERS, st.lists(SHORT_TEXT, min_size=1, max_size=8), max_size=8))
def test_empty_bracket_lists_round_trip(lists: dict[str, list[str]]) -> None:
    # Interleave the fields: each list keeps its own order whatever comes between.
    pairs = []
    longest = max((len(values) for values in lists.values()), default=0)
    for position in range(longest):
        for name, values in lists.items():
            if position < len(values):
                pairs.append((f"{name}[]", values[position]))
    assert decode_php_form(pairs) == lists


@given(st.lists(SHORT_TEXT, min_size=1, max_size=15).flatmap(
    lambda values: st.tuples(st.just(values), st.permutations(range(len(values))))
))
def test_indexed_lists_in_any_order_round_trip(case: tuple[list[str], list[int]]) -> None:
    values, order = case
    pairs = [(f"user[roles][{index}]", values[index]) for index in order]
    assert decode_php_form(pairs) == {"user": {"roles": values}}


@given(st.dictionaries(IDENTIFIERS, st.lists(SHORT_TEXT, min_size=2, max_size=6), max_size=6))
def test_repeated_plain_keys_round_trip(lists: dict[str, list[str]]) -> None:
    pairs = [(name, value) for name, values in lists.items() for value in values]
    assert decode_php_form(pairs) == lists


ASCII_NAMES = st.one_of(
    st.text(alphabet=string.printable, max_size=20),
    st.lists(st.sampled_from(["a", "b", "[", "]", "[]", "0", "1", "01", "x y"]), max_size=10).map("".join),
)


def _decodes_or_form_error(pairs: list[tuple[str, str]]) -> None:
    try:
        decoded = decode_php_form(pairs)
    except FormError as exc:
        assert exc.field in [name for name, _ in pairs]
    else:
        assert isinstance(decoded, dict)


@given(st.lists(st.tuples(ASCII_NAMES, SHORT_TEXT), max_size=20))
def test_arbitrary_ascii_pairs_decode_or_raise_form_error(pairs: list[tuple[str, str]]) -> None:
    _decodes_or_form_error(pairs)


@given(st.lists(st.tuples(st.one_of(st.text(max_size=20), ASCII_NAMES), st.text(max_size=12)),
                max_size=20))
@example([("media[²]", "x")])
def test_arbitrary_text_pairs_decode_or_raise_form_error(pairs: list[tuple[str, str]]) -> None:
    _decodes_or_form_error(pairs)
