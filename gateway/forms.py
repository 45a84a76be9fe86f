"""PHP bracket form fields into the structure a JSON body would have. Pure functions.

Symfony clients send ``user[username]=abc``, ``user[roles][]=ROLE_USER``,
``user[roles][0]=ROLE_USER``, ``ipRange[]=10.0.0.0/8`` and ``media[id]=28``. Decoded:

- ``a[b]=x`` makes ``{"a": {"b": "x"}}``; ``a[]=x`` appends to the list ``a``;
- a mapping whose keys are all ``0..n-1`` becomes a list in index order, as in JSON;
- a plain key given more than once becomes a list of its values.

Anything else (unbalanced brackets, a key used both as a value and a container, too deep
or too many fields) raises ``FormError`` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["FormError", "decode_php_form"]

MAX_FIELDS = 200
MAX_DEPTH = 5
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_INDEX = re.compile(r"0|[1-9][0-9]{0,5}", re.ASCII)
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A form field that cannot be decoded; ``field`` is its name as sent."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _path(name: str) -> list[str]:
    match = _KEY.fullmatch(name)
    if not match:
        raise FormError(name, "malformed field name")
    segments = [match.group(1), *_SEGMENT.findall(match.group(2))]
    if len(segments) > MAX_DEPTH + 1:
        raise FormError(name, f"nested deeper than {MAX_DEPTH} levels")
    return segments


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {key: _listify(value) for key, value in node.items()}
        keys = list(converted)
        if keys and all(_INDEX.fullmatch(key) for key in keys) and sorted(
            int(key) for key in keys
        ) == list(range(len(keys))):
            return [converted[str(index)] for index in range(len(keys))]
        return converted
    if isinstance(node, list):
        return [_listify(value) for value in node]
    return node


def decode_php_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Decode ``(name, value)`` pairs, in order, into nested dicts and lists."""
    root: dict[str, Any] = {}
    plain_counts: dict[str, int] = {}
    for count, (name, value) in enumerate(pairs, start=1):
        if count > MAX_FIELDS:
            raise FormError(name, f"more than {MAX_FIELDS} fields")
        segments = _path(name)
        if len(segments) == 1:
            key = segments[0]
            plain_counts[key] = plain_counts.get(key, 0) + 1
            if key not in root:
                root[key] = value
            elif plain_counts[key] == 2 and isinstance(root[key], str):
                root[key] = [root[key], value]
            elif isinstance(root[key], list) and plain_counts[key] > 2:
                root[key].append(value)
            else:
                raise FormError(name, "given both as a value and as a list or mapping")
            continue
        node: Any = root
        for depth, segment in enumerate(segments[:-1]):
            following = segments[depth + 1]
            container: Any = [] if following == "" else {}
            if isinstance(node, list):
                # Only reached through "[]", so this segment is "[]" too: append.
                node.append(container)
                node = container
                continue
            if not isinstance(node, dict):
                raise FormError(name, "given both as a value and as a list or mapping")
            existing = node.get(segment)
            if existing is None:
                node[segment] = container
            elif type(existing) is not type(container):
                raise FormError(name, "given both as a value and as a list or mapping")
            node = node[segment]
        last = segments[-1]
        if isinstance(node, list):
            node.append(value)
        elif isinstance(node, dict):
            if last in node:
                raise FormError(name, "given more than once")
            node[last] = value
        else:
            raise FormError(name, "given both as a value and as a list or mapping")
    return {key: _listify(value) for key, value in root.items()}
