"""Schemathesis hooks for tests/test_schemathesis.py, loaded by the schemathesis CLI.

They shape test data the document cannot describe, and nothing else: every generated
value still reaches the server, and every answer is still checked.

- The fuzzing identity is never the target of ``PATCH``/``DELETE /admin/users/{username}``
  (or of its ``/tokens``): the stateful phase finds usernames in ``GET /admin/users`` and
  would otherwise disable the admin, change its password or revoke its Bearer token, and
  every later request of the run would be a 401. Other users are fair game.
- A form body carries flat fields (PHP bracket names build nesting, tested in
  test_forms.py and test_body_encodings.py); schemathesis would send a nested object or a
  null as a form by iterating the object's keys or dropping the field, which no client
  does. Such a body goes as JSON, which carries the same structure.
- Media tokens need ``start < expire``, a rule between two fields the document cannot
  state; a schema-valid pair that breaks it is moved to ``start = expire - 1``.
- The server takes whole seconds and counts as integers only JSON integers: ``60.0`` is
  refused like ``1.5`` (test_durations.py, test_media_params.py), while JSON Schema
  cannot tell ``60.0`` from ``60``. A whole float in a body is sent spelled as an integer.
- Named-token descriptions and media-token kids are unique per user / tenant, so a value
  the run already used is rightly a 400; a schema-valid one gets a fresh suffix.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import schemathesis

from gateway.usernames import username_key

#: The user the run authenticates as (set by the test).
FUZZ_USER = os.environ.get("GATEWAY_FUZZ_USER", "admin")
_SPARE = "someone-else"
_KID = re.compile(r"[A-Za-z0-9._:~-]{1,120}")
_counter = itertools.count()
_FORM_NAME = re.compile(r"[A-Za-z0-9_.:~-]{1,64}")
_SCALAR = (str, int, float)


def _form_safe(body: object) -> bool:
    if not isinstance(body, dict):
        return False
    for name, value in body.items():
        if not isinstance(name, str) or not _FORM_NAME.fullmatch(name):
            return False
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(item, _SCALAR) and not isinstance(item, bool) for item in values):
            return False
    return True


def _integral(node: object) -> object:
    if isinstance(node, float) and node.is_integer():
        return int(node)
    if isinstance(node, dict):
        return {key: _integral(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_integral(value) for value in node]
    return node


def _seconds(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,12}\s*", value):
        return int(value)
    return None


def _is_fuzz_user(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return username_key(value) == username_key(FUZZ_USER)
    except ValueError:
        return False


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    path = case.operation.path
    if path.startswith("/admin/users/{username}") and case.method.upper() in {"PATCH", "DELETE"}:
        if _is_fuzz_user((case.path_parameters or {}).get("username")):
            case.path_parameters["username"] = _SPARE
    if isinstance(case.body, dict | list | float):
        case.body = _integral(case.body)
    body = case.body
    if case.media_type in {"application/x-www-form-urlencoded", "multipart/form-data"} and (
        not _form_safe(body)
    ):
        case.media_type = "application/json"
    if not isinstance(body, dict):
        return
    if path.startswith("/api/v1alpha/token") and case.method.upper() == "POST":
        description = body.get("jwt_token_description")
        if isinstance(description, str) and description.strip() and len(description) <= 240:
            body["jwt_token_description"] = f"{description} #{next(_counter)}"
    if path == "/token" and case.method.upper() == "POST":
        kid = body.get("kid")
        if isinstance(kid, str) and _KID.fullmatch(kid):
            body["kid"] = f"{kid}-{next(_counter)}"
        start, expire = _seconds(body.get("start", 0)), _seconds(body.get("expire", 3600))
        if start is not None and expire is not None and 0 < expire <= start:
            body["start"] = expire - 1
